package wasiserve_test

import (
	"context"
	"log/slog"
	"net"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/wasiserve/wasiserve"
	"github.com/wasiserve/wasiserve/internal/enginetest"
	"github.com/wasiserve/wasiserve/internal/syncbuf"
)

// adminLine is the log line with the admin listener's address.
var adminLine = regexp.MustCompile(`msg="serving metrics" at=http://(127\.0\.0\.1:\d+)/metrics`)

// running is a Server that a test runs until it ends (launch,
// startServer), with its addresses, its log and Run's result.
type running struct {
	srv    *wasiserve.Server
	url    string // http://HOST:PORT of the guest's listener
	admin  string // http://HOST:PORT of the admin listener, where Options.AdminAddr was set
	log    *syncbuf.Buffer
	ready  chan struct{} // closed at OnReady
	done   chan struct{} // closed once Run returned
	err    error         // Run's result, once done is closed
	cancel context.CancelFunc
}

// launch runs the guest at path on the named engine with opts (Engines,
// Engine, Listener, CacheDir, Logger and OnReady filled in) on a fresh
// 127.0.0.1 listener until the test ends, when it stops it (skipping any
// shutdown delay) and waits for Run. It waits for nothing else but, with
// opts.AdminAddr set, the admin listener's address in the log.
func launch(t testing.TB, engineName, path string, opts wasiserve.Options) *running {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	r := &running{url: "http://" + ln.Addr().String(), log: &syncbuf.Buffer{},
		ready: make(chan struct{}), done: make(chan struct{})}
	var readyOnce sync.Once
	opts.Engines, opts.Engine, opts.Listener, opts.CacheDir = enginetest.Engines(), engineName, ln, enginetest.CacheDir()
	opts.Logger = slog.New(slog.NewTextHandler(r.log, nil))
	opts.OnReady = func(wasiserve.Ready) { readyOnce.Do(func() { close(r.ready) }) }
	if r.srv, err = wasiserve.New(path, opts); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { r.err = r.srv.Run(ctx); close(r.done) }()
	t.Cleanup(func() {
		cancel()
		r.srv.SkipShutdownDelay()
		r.wait(t)
	})
	if opts.AdminAddr == "" {
		return r
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		if m := adminLine.FindStringSubmatch(r.log.String()); m != nil {
			r.admin = "http://" + m[1]
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("no admin listener logged in 60s:\n%s", r.log.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// startServer is launch, then waitReady.
func startServer(t testing.TB, engineName, path string, opts wasiserve.Options) *running {
	t.Helper()
	r := launch(t, engineName, path, opts)
	r.waitReady(t)
	return r
}

// waitReady waits (bounded) for OnReady.
func (r *running) waitReady(t testing.TB) {
	t.Helper()
	select {
	case <-r.ready:
	case <-r.done:
		t.Fatalf("Run returned before ready: %v; log:\n%s", r.err, r.log.String())
	case <-time.After(5 * time.Minute): // a compile under -race on a busy machine is slow
		t.Fatalf("not ready in 5m; log:\n%s", r.log.String())
	}
}

// wait waits (bounded) for Run to return and reports its error; it may be
// called again (the cleanup does).
func (r *running) wait(t testing.TB) error {
	t.Helper()
	select {
	case <-r.done:
		return r.err
	case <-time.After(60 * time.Second):
		t.Fatalf("Run did not return in 60s; log:\n%s", r.log.String())
		return nil
	}
}

// stop cancels Run, waits for it and checks that it returned nil.
func (r *running) stop(t testing.TB) {
	t.Helper()
	r.cancel()
	if err := r.wait(t); err != nil {
		t.Errorf("Run: %v", err)
	}
}

// ended reports whether Run has returned, and its error if so.
func (r *running) ended() (bool, error) {
	select {
	case <-r.done:
		return true, r.err
	default:
		return false, nil
	}
}
