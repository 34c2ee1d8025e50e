package wasiserve_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wasiserve/wasiserve"
	"github.com/wasiserve/wasiserve/guest/echo"
	"github.com/wasiserve/wasiserve/hostharness/engine"
	"github.com/wasiserve/wasiserve/hostharness/engine/wazy"
	"github.com/wasiserve/wasiserve/hostharness/listener"
	"github.com/wasiserve/wasiserve/internal/enginetest"
)

// TestValidateProxyFrom: ProxyFrom's prefixes must be valid, its listener
// TCP, and its engine one that reads the headers.
func TestValidateProxyFrom(t *testing.T) {
	guest := filepath.Join(t.TempDir(), "guest.wasm")
	if err := os.WriteFile(guest, []byte("\x00asm\x01\x00\x00\x00"), 0o644); err != nil {
		t.Fatal(err)
	}
	unixSpec, _ := listener.Parse("unix:/tmp/x.sock")
	unixLn, err := net.Listen("unix", filepath.Join(t.TempDir(), "s.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer unixLn.Close()
	lb := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	for _, tc := range []struct {
		name   string
		opts   wasiserve.Options
		option string // the OptionError's, or "" for an UnsupportedError
		want   string
	}{
		{"zero prefix", wasiserve.Options{ProxyFrom: []netip.Prefix{{}}}, "ProxyFrom", "not a valid IP prefix"},
		{"Unix listen", wasiserve.Options{ProxyFrom: lb, Listen: unixSpec}, "ProxyFrom", "needs a TCP listener"},
		{"Unix listener", wasiserve.Options{ProxyFrom: lb, Listener: unixLn}, "ProxyFrom", "needs a TCP listener"},
		{"on wazy-sock", wasiserve.Options{ProxyFrom: lb, Engine: wazy.SockName}, "", "ProxyFrom needs PROXY protocol from trusted peers"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.Engines, tc.opts.CacheDir = enginetest.Engines(), enginetest.CacheDir()
			err := tc.opts.Validate(guest)
			var opt *wasiserve.OptionError
			var unsupported *engine.UnsupportedError
			switch {
			case err == nil || !strings.Contains(err.Error(), tc.want):
				t.Fatalf("Validate = %v, want an error mentioning %q", err, tc.want)
			case tc.option == "" && !errors.As(err, &unsupported):
				t.Errorf("%v is not an *engine.UnsupportedError", err)
			case tc.option != "" && (!errors.As(err, &opt) || opt.Option != tc.option):
				t.Errorf("%v: want an *OptionError about %s", err, tc.option)
			}
		})
	}
	ok := wasiserve.Options{Engines: enginetest.Engines(), CacheDir: enginetest.CacheDir(), ProxyFrom: lb}
	if err := ok.Validate(guest); err != nil {
		t.Fatalf("Validate with ProxyFrom on the default engine: %v", err)
	}
}

// TestServeProxyFrom serves the echo guest through the library with
// ProxyFrom trusting loopback, on every engine that reads the headers:
// a balancer's v2 header is the client the guest reports.
func TestServeProxyFrom(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: serves guests on every engine")
	}
	for _, name := range enginetest.Engines().With(engine.ProxyProtocol) {
		t.Run(name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			ready := make(chan wasiserve.Ready, 1)
			srv, err := wasiserve.New(enginetest.Echo.Path(t), wasiserve.Options{Engines: enginetest.Engines(), Engine: name,
				Listener: ln, CacheDir: enginetest.CacheDir(), ProxyFrom: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
				OnReady: func(r wasiserve.Ready) { ready <- r }})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- srv.Run(ctx) }()
			defer func() {
				cancel()
				if err := <-done; err != nil {
					t.Errorf("Run: %v", err)
				}
			}()
			select {
			case <-ready:
			case err := <-done:
				t.Fatalf("Run before ready: %v", err)
			}
			conn, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(30 * time.Second))
			const header = "\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0c\xcb\x00\x71\x07\xc6\x33\x64\x01\x10\x92\x00\x50"
			io.WriteString(conn, header+"GET /listener HTTP/1.1\r\nHost: guest\r\nConnection: close\r\n\r\n")
			resp, _ := io.ReadAll(conn)
			_, body, _ := strings.Cut(string(resp), "\r\n\r\n")
			var report echo.Report
			if err := json.Unmarshal([]byte(body), &report); err != nil || report.RemoteAddr != "203.0.113.7:4242" {
				t.Fatalf("GET /listener behind a balancer: %q (%v), want remote_addr 203.0.113.7:4242", resp, err)
			}
		})
	}
}
