package hostile_test

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wasiserve/wasiserve/guest/echo"
	"github.com/wasiserve/wasiserve/guest/wasisock"
	"github.com/wasiserve/wasiserve/hostharness/engine"
	"github.com/wasiserve/wasiserve/internal/enginetest"
)

var floodConns = flag.Int("hostile.conns", 2000, "connections opened at once by the flood case")

// readHeaderTimeout is given to every server so slowloris is cut quickly.
const readHeaderTimeout = 2 * time.Second

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(enginetest.Main(m))
}

// target is one server under attack.
type target struct {
	name string
	addr string
}

// nativeTarget serves the echo handler in-process with the guest's server
// configuration: the reference for what a correct server answers.
func nativeTarget(t *testing.T) target {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := echo.DefaultServerConfig()
	cfg.ReadHeaderTimeout = readHeaderTimeout
	srv := echo.NewServer(echo.NewHandler(wasisock.Info{Source: wasisock.SourceAddress, FD: -1}, nil), cfg)
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return target{name: "native", addr: ln.Addr().String()}
}

// wasmTarget serves the echo guest under the named engine.
func wasmTarget(t *testing.T, name string) target {
	t.Helper()
	eng, err := enginetest.NewEngine(t, name)
	if err != nil {
		t.Fatal(err)
	}
	inst, err := enginetest.Serve(t, eng, enginetest.Echo.Path(t), engine.Config{
		Env: []string{echo.EnvReadHeaderTimeout + "=" + readHeaderTimeout.String()},
	})
	if err != nil {
		t.Fatal(err)
	}
	return target{name: name, addr: inst.Addr}
}

// attack is one hostile behaviour; it returns what the client observed,
// compared between native and wasm targets when comparable is set.
type attack struct {
	name       string
	comparable bool
	run        func(t *testing.T, addr string) string
}

func attacks() []attack {
	return []attack{
		{"random bytes", true, func(t *testing.T, addr string) string {
			garbage := make([]byte, 4096)
			rand.Read(garbage)
			garbage[0] = 0x01 // never a valid method byte
			return statusLines(t, addr, garbage)
		}},
		{"truncated request line", false, func(t *testing.T, addr string) string {
			return statusLines(t, addr, []byte("GET /trunc")) // then half-close: EOF mid-line
		}},
		{"oversized request line", true, func(t *testing.T, addr string) string {
			return statusLines(t, addr, []byte("GET /"+strings.Repeat("a", 2<<20)+" HTTP/1.1\r\nHost: x\r\n\r\n"))
		}},
		{"oversized header", true, func(t *testing.T, addr string) string {
			return statusLines(t, addr, []byte("GET / HTTP/1.1\r\nHost: x\r\nX-Big: "+strings.Repeat("b", 2<<20)+"\r\n\r\n"))
		}},
		{"CL and TE together", true, func(t *testing.T, addr string) string {
			return statusLines(t, addr, []byte("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"+
				"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"))
		}},
		{"duplicate Content-Length", true, func(t *testing.T, addr string) string {
			return statusLines(t, addr, []byte("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 40\r\n\r\nabcd"))
		}},
		{"obs-fold header", true, func(t *testing.T, addr string) string {
			return statusLines(t, addr, []byte("GET / HTTP/1.1\r\nHost: x\r\nX-Fold: a\r\n b\r\n\r\n"))
		}},
		{"slowloris", false, func(t *testing.T, addr string) string {
			conn := dial(t, addr)
			defer conn.Close()
			start := time.Now()
			// One header byte every 200ms: the server must cut the
			// connection at its ReadHeaderTimeout, not wait forever.
			for i := 0; time.Since(start) < 5*readHeaderTimeout; i++ {
				if _, err := conn.Write([]byte{"GET / HTTP/1.1\r\nX-Slow: "[i%24]}); err != nil {
					break
				}
				conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
				if _, err := conn.Read(make([]byte, 512)); err != nil && !isTimeout(err) {
					break // closed by the server
				}
			}
			if elapsed := time.Since(start); elapsed >= 5*readHeaderTimeout {
				t.Errorf("slowloris connection still open after %s (ReadHeaderTimeout %s)", elapsed, readHeaderTimeout)
			}
			return ""
		}},
		{"slow reader of a large response", false, func(t *testing.T, addr string) string {
			conn := dial(t, addr)
			defer conn.Close()
			body := make([]byte, 8<<20)
			go func() {
				fmt.Fprintf(conn, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", len(body))
				conn.Write(body)
			}()
			buf := make([]byte, 16<<10)
			for range 10 {
				conn.SetReadDeadline(time.Now().Add(5 * time.Second))
				if _, err := conn.Read(buf); err != nil {
					t.Errorf("slow read: %v", err)
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			return "" // then hang up with most of the response unread
		}},
		{"reset mid-body", false, func(t *testing.T, addr string) string {
			for range 20 {
				conn := dial(t, addr)
				fmt.Fprintf(conn, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", 1<<20)
				conn.Write(make([]byte, 64<<10))
				conn.(*net.TCPConn).SetLinger(0) // close sends RST
				conn.Close()
			}
			return ""
		}},
		{"connection flood", false, func(t *testing.T, addr string) string {
			flood(t, addr, *floodConns)
			return ""
		}},
	}
}

func TestHostileInput(t *testing.T) {
	native := nativeTarget(t)
	for _, name := range enginetest.Engines().EmbeddedNames() {
		t.Run(name, func(t *testing.T) {
			if k, _ := enginetest.Engines().Lookup(name); !k.Capabilities.Has(engine.HostListener) {
				t.Skipf("%s is the reference peer with wazero's own sockets, whose known bugs (docs/COMPARE.md) this project cannot fix; the suite covers the engines with the project's socket layer", name)
			}
			wasm := wasmTarget(t, name)
			checkEcho(t, wasm.addr)
			baseline := enginetest.OpenFDs(t)
			for _, a := range attacks() {
				t.Run(a.name, func(t *testing.T) {
					got := a.run(t, wasm.addr)
					if a.comparable {
						if want := a.run(t, native.addr); got != want {
							t.Errorf("%s answered %q, native answered %q", name, got, want)
						}
						t.Logf("answered %q, as native does", got)
					}
					checkEcho(t, wasm.addr)
					waitFDs(t, baseline)
				})
			}
		})
	}
}

// statusLines sends payload on a fresh connection, half-closes it, and
// returns the status lines of every response read until the server closes
// (or 10 s pass), joined by "|".
func statusLines(t *testing.T, addr string, payload []byte) string {
	t.Helper()
	conn := dial(t, addr)
	defer conn.Close()
	go func() {
		conn.Write(payload)
		conn.(*net.TCPConn).CloseWrite()
	}()
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(conn)
	var lines []string
	for {
		resp, err := http.ReadResponse(r, nil)
		if err != nil {
			break
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		lines = append(lines, resp.Status)
	}
	return strings.Join(lines, "|")
}

// flood opens n connections at once, sends a request on each, and checks
// every one is answered.
func flood(t *testing.T, addr string, n int) {
	t.Helper()
	var wg sync.WaitGroup
	var mu sync.Mutex
	failures := map[string]int{}
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := floodOne(addr, i)
			if err != nil {
				mu.Lock()
				failures[err.Error()]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(failures) > 0 {
		t.Errorf("%d concurrent connections: failures %v", n, failures)
	}
}

func floodOne(addr string, i int) error {
	conn, err := net.DialTimeout("tcp", addr, 30*time.Second)
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(60 * time.Second))
	body := fmt.Sprintf("flood-%d", i)
	fmt.Fprintf(conn, "POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return fmt.Errorf("read: %w", err)
	}
	got, err := io.ReadAll(resp.Body)
	if err != nil || string(got) != body {
		return fmt.Errorf("body mismatch or %v", err)
	}
	return nil
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return conn
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// checkEcho is the normal request that must work after every attack.
func checkEcho(t *testing.T, addr string) {
	t.Helper()
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	body := make([]byte, 64<<10)
	rand.Read(body)
	resp, err := client.Post("http://"+addr, "application/octet-stream", bytes.NewReader(body))
	if err != nil {
		t.Fatalf("echo after attack: %v", err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 || !bytes.Equal(got, body) {
		t.Fatalf("echo after attack: status %d, %d bytes, %v", resp.StatusCode, len(got), err)
	}
}

// waitFDs waits up to 15 s for the descriptor count to come back to
// baseline (closes are asynchronous), then fails naming the leak.
func waitFDs(t *testing.T, baseline int) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		n := enginetest.OpenFDs(t)
		if n <= baseline {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("descriptor leak: %d open, baseline %d", n, baseline)
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}
