package wasiserve_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wasiserve/wasiserve"
	"github.com/wasiserve/wasiserve/hostharness/engine"
	"github.com/wasiserve/wasiserve/hostharness/engine/wazy"
	"github.com/wasiserve/wasiserve/hostharness/listener"
	"github.com/wasiserve/wasiserve/internal/enginetest"
)

func TestMain(m *testing.M) { os.Exit(enginetest.Main(m)) }

// TestValidate: every check of the options, each error naming the option
// it is about, before anything is bound or loaded.
func TestValidate(t *testing.T) {
	engines := enginetest.Engines()
	guest := filepath.Join(t.TempDir(), "guest.wasm")
	if err := os.WriteFile(guest, []byte("\x00asm\x01\x00\x00\x00"), 0o644); err != nil {
		t.Fatal(err)
	}
	unix, _ := listener.Parse("unix:/tmp/x.sock")
	dir := t.TempDir()
	file := guest
	worldWritable := t.TempDir()
	os.Chmod(worldWritable, 0o777)
	for _, tc := range []struct {
		name   string
		opts   wasiserve.Options
		guest  string
		option string // the OptionError's, or "" for an UnsupportedError
		want   string
	}{
		{"no engines", wasiserve.Options{}, guest, "Engines", "no engine"},
		{"unknown engine", wasiserve.Options{Engine: "nosuch"}, guest, "Engine", "unknown engine"},
		{"renamed engine", wasiserve.Options{Engine: "wazero"}, guest, "Engine", `now called "wazy"`},
		{"negative instances", wasiserve.Options{Instances: -1}, guest, "Instances", "want 1 to 1024"},
		{"too many instances", wasiserve.Options{Instances: 2000}, guest, "Instances", "want 1 to 1024"},
		{"negative drain timeout", wasiserve.Options{DrainTimeout: -time.Second}, guest, "DrainTimeout", "want a duration of 0 or more"},
		{"tiny memory", wasiserve.Options{MaxMemory: 1000}, guest, "MaxMemory", "want a size from 1MiB"},
		{"huge memory", wasiserve.Options{MaxMemory: 5 << 30}, guest, "MaxMemory", "to 4GiB"},
		{"negative conns", wasiserve.Options{MaxConns: -2}, guest, "MaxConns", "want 0 or more"},
		{"negative output rate", wasiserve.Options{GuestOutputRate: -2}, guest, "GuestOutputRate", "want bytes per second"},
		{"negative reclaim rate", wasiserve.Options{Reclaim: engine.Reclaim{MinRate: -1}}, guest, "Reclaim", "want bytes per second"},
		{"admin without port", wasiserve.Options{AdminAddr: "nocolon"}, guest, "AdminAddr", "want HOST:PORT"},
		{"negative shutdown delay", wasiserve.Options{ShutdownDelay: -time.Second}, guest, "ShutdownDelay", "want a duration of 0 or more"},
		{"watch without a guest", wasiserve.Options{Watch: true}, "", "Watch", "needs a guest file"},
		{"env without =", wasiserve.Options{Env: []string{"NOEQUALS"}}, guest, "Env", "want KEY=VALUE"},
		{"bad dial pattern", wasiserve.Options{AllowDial: []string{"nocolon"}}, guest, "AllowDial", "nocolon"},
		{"bad listen pattern", wasiserve.Options{AllowListen: []string{"x:y"}}, guest, "AllowListen", "x:y"},
		{"mounted twice", wasiserve.Options{Dirs: []engine.Mount{{Host: dir, Guest: "/d"}, {Host: dir, Guest: "/d"}}}, guest, "Dirs", "mounted twice"},
		{"missing dir", wasiserve.Options{Dirs: []engine.Mount{{Host: filepath.Join(dir, "nope"), Guest: "/d"}}}, guest, "Dirs", "no such file"},
		{"file as dir", wasiserve.Options{Dirs: []engine.Mount{{Host: file, Guest: "/d"}}}, guest, "Dirs", "is not a directory"},
		{"ready file in a missing dir", wasiserve.Options{ReadyFile: filepath.Join(dir, "nope", "ready")}, guest, "ReadyFile", "no such file"},
		{"missing guest", wasiserve.Options{}, filepath.Join(dir, "nope.wasm"), "Guest", "no such file"},
		{"guest not a regular file", wasiserve.Options{}, "/dev/zero", "Guest", "not a regular file"},
		{"cache others can write", wasiserve.Options{CacheDir: worldWritable}, guest, "CacheDir", "not private"},
		{"bad notify socket", wasiserve.Options{NotifySocket: "vsock:1:2"}, guest, "NotifySocket", "want the path"},
		{"unix socket on wazy-sock", wasiserve.Options{Engine: wazy.SockName, Listen: unix}, guest, "", "Listen needs a host-owned listener"},
		{"instances on wazy-sock", wasiserve.Options{Engine: wazy.SockName, Instances: 2}, guest, "", "Instances needs a host-owned listener"},
		{"conns on wazy-sock", wasiserve.Options{Engine: wazy.SockName, MaxConns: 5}, guest, "", "MaxConns needs a connection limit"},
		{"dials on wazy-sock", wasiserve.Options{Engine: wazy.SockName, AllowDial: []string{"*:80"}}, guest, "", "AllowDial needs the WasmEdge socket extensions"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name != "no engines" {
				tc.opts.Engines = engines
			}
			if tc.opts.CacheDir == "" {
				tc.opts.CacheDir = enginetest.CacheDir()
			}
			err := tc.opts.Validate(tc.guest)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate = %v, want an error mentioning %q", err, tc.want)
			}
			var opt *wasiserve.OptionError
			var unsupported *engine.UnsupportedError
			switch {
			case tc.option == "" && !errors.As(err, &unsupported):
				t.Errorf("%v is not an *engine.UnsupportedError", err)
			case tc.option == "" && len(unsupported.Engines) == 0:
				t.Errorf("%v names no engine that would do", err)
			case tc.option != "" && (!errors.As(err, &opt) || opt.Option != tc.option):
				t.Errorf("%v: want an *OptionError about %s", err, tc.option)
			}
		})
	}
}

// TestValidateDefaults: the zero Options but for the engines are valid,
// and so are options that pick an engine that has what they need.
func TestValidateDefaults(t *testing.T) {
	opts := wasiserve.Options{Engines: enginetest.Engines(), CacheDir: enginetest.CacheDir()}
	if err := opts.Validate(""); err != nil {
		t.Fatal(err)
	}
	unix, _ := listener.Parse("unix:/tmp/x.sock")
	opts.Listen, opts.Instances, opts.MaxConns = unix, 2, 8
	srv, err := wasiserve.New(enginetest.Testdata("exit7.wasm"), opts)
	if err != nil {
		t.Fatal(err)
	}
	if k, _ := enginetest.Engines().Lookup(srv.Engine()); !k.Capabilities.Has(engine.HostListener) || !k.Capabilities.Has(engine.ConnLimit) {
		t.Errorf("picked engine %s, which lacks what the options need", srv.Engine())
	}
}

// TestDefaultMaxConns: without MaxConns, connections may take half the
// instance's memory budget at 2 MiB each, at most 4096, and all instances
// together half the descriptor limit.
func TestDefaultMaxConns(t *testing.T) {
	for _, tc := range []struct {
		maxMemory uint64
		instances int
		nofile    uint64
		want      int
	}{
		{0, 1, 0, 1024}, {4 << 30, 1, 1 << 20, 1024}, {1 << 30, 1, 0, 256}, {256 << 20, 1, 0, 64},
		{64 << 20, 1, 0, 16}, {1 << 20, 1, 0, 1}, {64 << 10, 1, 0, 1},
		{0, 2, 20000, 1024}, {0, 5, 4000, 400}, {0, 4, 1024, 128}, {0, 1024, 1024, 1},
	} {
		if got := wasiserve.DefaultMaxConns(tc.maxMemory, tc.instances, tc.nofile); got != tc.want {
			t.Errorf("DefaultMaxConns(%d, %d instances, nofile %d) = %d, want %d", tc.maxMemory, tc.instances, tc.nofile, got, tc.want)
		}
	}
}

// TestServerReloadAndDrain serves the echo guest on every project engine,
// reloads it to the marked guest by renaming the file under it, with a
// keep-alive connection open throughout, and drains it on cancel with a
// request in flight, which is answered whole.
func TestServerReloadAndDrain(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: serves guests on every engine")
	}
	for _, name := range enginetest.Engines().With(engine.HostListener) {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			guest := filepath.Join(dir, "app.wasm")
			copyFile(t, enginetest.Echo.Path(t), guest)
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			ready := make(chan wasiserve.Ready, 1)
			srv, err := wasiserve.New(guest, wasiserve.Options{Engines: enginetest.Engines(), Engine: name, Listener: ln,
				CacheDir: enginetest.CacheDir(), OnReady: func(r wasiserve.Ready) { ready <- r }})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- srv.Run(ctx) }()
			r := <-ready
			if r.Engine != name || r.URL != "http://"+ln.Addr().String() || r.Guest != guest {
				t.Errorf("Ready = %+v", r)
			}
			client := &http.Client{Timeout: 30 * time.Second}
			if got := header(t, client, r.URL, "X-Guest"); got != "" {
				t.Fatalf("X-Guest %q before the reload", got)
			}
			copyFile(t, enginetest.Marked.Path(t), guest+".new")
			if err := os.Rename(guest+".new", guest); err != nil {
				t.Fatal(err)
			}
			srv.Reload()
			deadline := time.Now().Add(60 * time.Second)
			for header(t, client, r.URL, "X-Guest") != "marked" {
				if time.Now().After(deadline) {
					t.Fatal("the reloaded guest never answered")
				}
			}
			// The reload counts once the old instances have drained.
			for st := srv.Stats(); st.ReloadsOK != 1; st = srv.Stats() {
				if st.ReloadsFailed != 0 || time.Now().After(deadline) {
					t.Fatalf("reloads ok %d, failed %d; want 1, 0", st.ReloadsOK, st.ReloadsFailed)
				}
				time.Sleep(10 * time.Millisecond)
			}
			conn, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			finish := enginetest.StartEcho(t, conn)
			cancel()
			if rest := finish(); rest != "-last" {
				t.Errorf("the request in flight during the drain ended with %q, want -last", rest)
			}
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("Run after the drain: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("Run did not return after the drain")
			}
		})
	}
}

// header is the named header of a GET of url.
func header(t *testing.T, client *http.Client, url, name string) string {
	t.Helper()
	resp, err := client.Get(url + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.Header.Get(name)
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o644); err != nil {
		t.Fatal(err)
	}
}
