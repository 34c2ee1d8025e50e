package builtin_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wasiserve/wasiserve/hostharness/engine"
	"github.com/wasiserve/wasiserve/hostharness/listener"
	"github.com/wasiserve/wasiserve/internal/enginetest"
)

// TestSharedListener serves one host listener with two instances of a
// guest: connections reach both, and when one stops the other serves alone.
func TestSharedListener(t *testing.T) {
	for _, name := range socketEngines {
		t.Run(name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			eng := newEngine(t, name)
			a := serve(t, eng, enginetest.FD3.Path(t), engine.Config{Listener: ln, Env: []string{"REPLY_PREFIX=a:"}})
			serve(t, eng, enginetest.FD3.Path(t), engine.Config{Listener: ln, Env: []string{"REPLY_PREFIX=b:"}})
			url := "http://" + ln.Addr().String()
			if a.Addr != ln.Addr().String() {
				t.Fatalf("instance address %s, want the listener's %s", a.Addr, ln.Addr())
			}
			client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
			seen := map[string]int{}
			for i := 0; i < 400 && (seen["a"] == 0 || seen["b"] == 0); i++ {
				seen[echoPrefix(t, client, url, fmt.Sprint(i))]++
			}
			if seen["a"] == 0 || seen["b"] == 0 {
				t.Fatalf("answers by instance: %v; want both instances to accept from the shared listener", seen)
			}
			if err := a.Stop(); err != nil {
				t.Fatal(err)
			}
			for i := range 20 {
				if who := echoPrefix(t, client, url, fmt.Sprint(i)); who != "b" {
					t.Fatalf("request %d after instance a stopped was answered by %q", i, who)
				}
			}
		})
	}
}

// echoPrefix posts body to the fd3 guest and returns the instance prefix
// of its answer.
func echoPrefix(t *testing.T, client *http.Client, url, body string) string {
	t.Helper()
	resp, err := client.Post(url, "text/plain", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	who, echoed, ok := strings.Cut(string(got), ":")
	if err != nil || !ok || echoed != body {
		t.Fatalf("answer %q, %v; want PREFIX:%s", got, err, body)
	}
	return who
}

// TestUnixListener serves the echo guest on a Unix socket.
func TestUnixListener(t *testing.T) {
	for _, name := range socketEngines {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "echo.sock")
			ln, err := net.Listen("unix", path)
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			inst := serve(t, newEngine(t, name), enginetest.Echo.Path(t), engine.Config{Listener: ln})
			if inst.Network != "unix" || inst.URL() != "unix:"+path {
				t.Fatalf("instance %s %s, URL %s; want unix %s", inst.Network, inst.Addr, inst.URL(), path)
			}
			client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
				DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
					return (&net.Dialer{}).DialContext(ctx, "unix", path)
				},
			}}
			resp, err := client.Post("http://echo/", "text/plain", strings.NewReader("over unix"))
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(got) != "over unix" {
				t.Fatalf("echo over a Unix socket: %q", got)
			}
		})
	}
}

// TestOwnedListenerRefused checks that engines which bind their listener
// themselves refuse one that only the host can hold (a Unix socket),
// naming the engines that can.
func TestOwnedListenerRefused(t *testing.T) {
	ln, err := enginetest.Listen(t, "unix:"+filepath.Join(t.TempDir(), "s.sock"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range engines.EmbeddedNames() {
		if capabilitiesOf(name).Has(engine.HostListener) {
			continue
		}
		t.Run(name, func(t *testing.T) {
			err := runToExit(t, name, enginetest.Echo.Path(t), engine.Config{Listener: ln})
			wantUnsupported(t, err, engine.HostListener, "Listener")
		})
	}
}

// TestDrain starts a request, stops the listener as its owner does on a
// graceful stop, drains the guest, and checks that new connections are
// refused while the request in flight completes and the guest then exits
// by itself, on each engine that can drain.
func TestDrain(t *testing.T) {
	for _, name := range engines.EmbeddedNames() {
		t.Run(name, func(t *testing.T) {
			ln := listen(t)
			inst := serve(t, newEngine(t, name), enginetest.Echo.Path(t), engine.Config{Listener: ln})
			if !capabilitiesOf(name).Has(engine.Drain) {
				// The engine's listener is out of the host's reach.
				if inst.Drain() {
					t.Fatalf("Drain on %s = true, want false: it cannot drain", name)
				}
				return
			}
			conn, err := net.Dial("tcp", inst.Addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			finish := enginetest.StartEcho(t, conn)
			if capabilitiesOf(name).Has(engine.HostListener) {
				if err := listener.StopAccepting(ln); err != nil {
					t.Fatal(err)
				}
			}
			if !inst.Drain() {
				t.Fatal("Drain = false, want true")
			}
			refused := waitFor(10*time.Second, func() bool {
				c, err := net.DialTimeout("tcp", inst.Addr, time.Second)
				if err == nil {
					c.Close()
				}
				return err != nil
			})
			if !refused {
				t.Error("the draining guest's listener still accepts connections")
			}
			select {
			case <-inst.Done():
				t.Fatalf("the guest exited with a request in flight: %v", inst.Wait())
			default:
			}
			if rest := finish(); rest != "-last" {
				t.Fatalf("the request in flight ended with %q, want the rest of its echo", rest)
			}
			select {
			case <-inst.Done():
				if err := inst.Wait(); err != nil {
					t.Fatalf("drained guest: %v, want a clean exit", err)
				}
			case <-time.After(20 * time.Second):
				t.Fatal("the drained guest did not exit")
			}
		})
	}
}

// TestReadyWhenAccepting checks that Serve on wasiserve waits for the guest
// to wait for a connection, not just for the kernel to queue one: a guest
// that never accepts never becomes ready.
func TestReadyWhenAccepting(t *testing.T) {
	for _, name := range socketEngines {
		t.Run(name, func(t *testing.T) {
			eng := newEngine(t, name)
			mod, err := eng.Load(context.Background(), enginetest.FD3.Path(t))
			if err != nil {
				t.Fatal(err)
			}
			defer mod.Close(context.Background())
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			inst, err := engine.Serve(ctx, mod, engine.Config{Listener: listen(t), Env: []string{"NO_ACCEPT=never"}})
			if err == nil {
				inst.Stop()
				t.Fatal("Serve reported ready a guest that never waits for a connection")
			}
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Serve: %v, want it to wait until the context's deadline", err)
			}
		})
	}
}
