package builtin_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wasiserve/wasiserve/guest/echo"
	"github.com/wasiserve/wasiserve/hostharness/engine"
	"github.com/wasiserve/wasiserve/internal/enginetest"
)

// hostileModule is the path of testdata/hostile/name.wasm.
func hostileModule(name string) string {
	return enginetest.Testdata(filepath.Join("hostile", name+".wasm"))
}

// procStatus returns a field of /proc/self/status in bytes (VmRSS, ...),
// or skips the test where there is no such file.
func procStatus(t *testing.T, field string) int64 {
	t.Helper()
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Skip("no /proc/self/status to measure the host's memory:", err)
	}
	defer f.Close()
	for s := bufio.NewScanner(f); s.Scan(); {
		if v, ok := strings.CutPrefix(s.Text(), field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatalf("%s: %v", field, err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no %s in /proc/self/status", field)
	return 0
}

// maxRSSGrowth is how far the host's resident memory may grow while a
// hostile module runs. Past it, the allocation is taken to be unbounded:
// the test binary panics rather than take the machine's memory.
const maxRSSGrowth = 256 << 20

// watchRSS samples the host's RSS until the returned stop is called, which
// returns the largest growth seen over base.
func watchRSS(t *testing.T) (stop func() int64) {
	t.Helper()
	base := procStatus(t, "VmRSS")
	done, peak := make(chan struct{}), make(chan int64, 1)
	go func() {
		var grown int64
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				peak <- grown
				return
			case <-tick.C:
			}
			grown = max(grown, procStatus(t, "VmRSS")-base)
			if grown > maxRSSGrowth {
				panic(fmt.Sprintf("%s: the host's RSS grew by %d MB: an unbounded allocation", t.Name(), grown>>20))
			}
		}
	}()
	return func() int64 { close(done); return <-peak }
}

// checkEchoes posts to an echo guest and fails unless it answers.
func checkEchoes(t *testing.T, inst *engine.Instance) {
	t.Helper()
	if resp, body := post(t, inst.URL(), "text/plain", []byte("still here")); resp.StatusCode != http.StatusOK || string(body) != "still here" {
		t.Fatalf("echo beside the hostile guest: %d %q", resp.StatusCode, body)
	}
}

// hostSocketEngines are the embedded engines with the project's socket
// layer, which serves the socket extensions the hostile modules import.
func hostSocketEngines() []string {
	return engines.With(engine.SocketExtensions)
}

// TestAddrinfoCycle runs a guest that calls sock_getaddrinfo 10,000 times
// with max_res_len 2^32-1 and a result chain whose addrinfo points to
// itself, beside an echo guest: each call must answer its one result, the
// host's memory stay bounded and the echo keep answering.
func TestAddrinfoCycle(t *testing.T) {
	for _, name := range hostSocketEngines() {
		t.Run(name, func(t *testing.T) {
			eng := newEngine(t, name)
			echoInst := serve(t, eng, enginetest.Echo.Path(t), engine.Config{})
			stop := watchRSS(t)
			start := time.Now()
			err := runToExit(t, name, hostileModule("addrinfo_cycle"), engine.Config{})
			grown := stop()
			t.Logf("10,000 calls in %s, host RSS grew by at most %.1f MB", time.Since(start).Round(time.Millisecond), float64(grown)/(1<<20))
			if code := engine.ExitCode(err); code != 11 {
				t.Fatalf("guest exited %d (%v), want 11: no error and one result", code, err)
			}
			checkEchoes(t, echoInst)
		})
	}
}

// TestSockOpenFlood runs a guest that accepts one connection, then opens
// 100,000 sockets and keeps them, beside an echo guest: the host must
// answer EMFILE past its cap per instance (the connection counting with
// MaxConns), its descriptors stay bounded, and the echo keep answering.
func TestSockOpenFlood(t *testing.T) {
	for _, name := range hostSocketEngines() {
		t.Run(name, func(t *testing.T) {
			for _, tc := range []struct {
				name     string
				maxConns int
				cap      int
			}{
				{"default cap", 0, 4096}, // hostsock's cap without MaxConns
				{"max-conns", 100, 100},
			} {
				t.Run(tc.name, func(t *testing.T) {
					eng := newEngine(t, name)
					echoInst := serve(t, eng, enginetest.Echo.Path(t), engine.Config{})
					base := enginetest.OpenFDs(t)
					mod, err := eng.Load(context.Background(), hostileModule("sock_flood"))
					if err != nil {
						t.Fatal(err)
					}
					defer mod.Close(context.Background())
					ln := listen(t)
					// Serve returns once the guest waits in sock_accept.
					inst, err := engine.Serve(context.Background(), mod, engine.Config{Listener: ln, MaxConns: tc.maxConns})
					if err != nil {
						t.Fatal(err)
					}
					defer inst.Stop()
					c, err := net.Dial("tcp", inst.Addr)
					if err != nil {
						t.Fatal(err)
					}
					defer c.Close()
					start := time.Now()
					c.SetDeadline(time.Now().Add(time.Minute))
					if _, err := c.Read(make([]byte, 1)); err != nil { // the guest's sockets are open
						t.Fatalf("waiting for the guest to open its sockets: %v", err)
					}
					held := enginetest.OpenFDs(t) - base - 2 // less the test's connection and its accepted end
					t.Logf("100,000 sock_open in %s: the host holds %d more descriptors", time.Since(start).Round(time.Millisecond), held)
					if held > tc.cap+16 {
						t.Errorf("the guest holds %d host descriptors, want at most its cap %d", held, tc.cap)
					}
					checkEchoes(t, echoInst)
					c.Write([]byte("!"))
					if code := engine.ExitCode(inst.Wait()); code != 33 {
						t.Errorf("the guest's last failed sock_open gave errno %d, want EMFILE (33)", code)
					}
				})
			}
		})
	}
}

// TestPollHuge: one poll_oneoff with 80,000,000 subscriptions gets EINVAL
// without the host allocating for them.
func TestPollHuge(t *testing.T) {
	for _, name := range engines.With(engine.HostListener) {
		t.Run(name, func(t *testing.T) {
			stop := watchRSS(t)
			err := runToExit(t, name, hostileModule("poll_huge"), engine.Config{})
			grown := stop()
			t.Logf("host RSS grew by at most %.1f MB", float64(grown)/(1<<20))
			if code := engine.ExitCode(err); code != 28 {
				t.Fatalf("poll_oneoff of 80,000,000 subscriptions: errno %d (%v), want EINVAL (28)", code, err)
			}
		})
	}
}

// TestTrapBounded: a stack overflow's trap message, which on wasmtime
// carries a backtrace of 16,370 frames, is bounded on every engine: its
// first and last frames, a count of those elided, and the cause. So is
// that of an overflow in the start function, while the engine
// instantiates the guest.
func TestTrapBounded(t *testing.T) {
	for _, module := range []string{"stack_overflow", "start_stack_overflow"} {
		for _, name := range engines.EmbeddedNames() {
			t.Run(module+"/"+name, func(t *testing.T) {
				err := runToExit(t, name, hostileModule(module), engine.Config{})
				var exit *engine.ExitError
				if !errors.As(err, &exit) || exit.Trap == "" {
					t.Fatalf("Serve of a guest whose stack overflows: %.2000v, want a trap", err)
				}
				lines := strings.Count(exit.Trap, "\n") + 1
				t.Logf("trap message: %d bytes, %d lines", len(exit.Trap), lines)
				if len(exit.Trap) > engine.MaxTrapBytes || lines > 32 {
					t.Errorf("trap message of %d bytes, %d lines, want at most %d bytes and 32 lines:\n%.2000s", len(exit.Trap), lines, engine.MaxTrapBytes, exit.Trap)
				}
				if len(err.Error()) > 2*engine.MaxTrapBytes {
					t.Errorf("error of %d bytes, want at most %d", len(err.Error()), 2*engine.MaxTrapBytes)
				}
				if !strings.Contains(exit.Trap, "stack") {
					t.Errorf("the trap message lost its cause:\n%s", exit.Trap)
				}
			})
		}
	}
}

// TestSlowClientsCannotLockOut fills the guest's connection limit with
// clients that send their bodies at 5 bytes/s: with the echo guest's
// request read timeout of 2 s, a normal client must still be answered
// within that timeout (and some slack), not after the slow bodies end.
func TestSlowClientsCannotLockOut(t *testing.T) {
	const (
		maxConns    = 3
		readTimeout = 2 * time.Second
	)
	for _, name := range engines.With(engine.ConnLimit) {
		t.Run(name, func(t *testing.T) {
			inst := serve(t, newEngine(t, name), enginetest.Echo.Path(t), engine.Config{
				MaxConns: maxConns,
				Env:      []string{echo.EnvReadTimeout + "=" + readTimeout.String()},
			})
			done := make(chan struct{})
			defer close(done)
			for range maxConns {
				c, err := net.Dial("tcp", inst.Addr)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				fmt.Fprintf(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
				go func() { // 1,000 bytes at 5 bytes/s: 200 s
					for {
						select {
						case <-done:
							return
						case <-time.After(200 * time.Millisecond):
						}
						if _, err := c.Write([]byte("x")); err != nil {
							return // cut by the guest
						}
					}
				}()
			}
			// The slow clients hold every connection the guest may have.
			if !waitFor(10*time.Second, func() bool { st, _ := inst.Stats(); return st.OpenConns == maxConns }) {
				st, _ := inst.Stats()
				t.Fatalf("the guest has %d connections open, want the %d slow ones", st.OpenConns, maxConns)
			}
			start := time.Now()
			c, err := net.Dial("tcp", inst.Addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(readTimeout + 10*time.Second))
			fmt.Fprintf(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\nnormal")
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatalf("a normal client behind %d slow ones: %v after %s", maxConns, err, time.Since(start).Round(time.Millisecond))
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			waited := time.Since(start)
			t.Logf("a normal client behind %d slow ones was answered after %s (read timeout %s)", maxConns, waited.Round(time.Millisecond), readTimeout)
			if string(body) != "normal" {
				t.Fatalf("answered %q", body)
			}
			if waited > readTimeout+5*time.Second {
				t.Errorf("answered after %s, more than the read timeout %s and slack", waited, readTimeout)
			}
		})
	}
}

// TestNoMemoryCall: a module without a linear memory that calls fd_write
// on stdout, which the host's Table leaves to the engine's own function,
// gets EFAULT (or EINVAL) back as an errno and returns from _start: no trap
// and no nil dereference in the host.
func TestNoMemoryCall(t *testing.T) {
	for _, name := range engines.With(engine.HostListener) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			mod, err := newEngine(t, name).Load(ctx, hostileModule("fd_write_nomem"))
			if err != nil {
				t.Fatal(err)
			}
			defer mod.Close(ctx)
			if err := mod.Run(ctx, engine.Config{Listener: listen(t)}); err != nil {
				t.Fatalf("fd_write from a module without memory: %.500v; want EFAULT (21) or EINVAL (28) answered, and _start to return", err)
			}
		})
	}
}
