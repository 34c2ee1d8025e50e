package wasiserve_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wasiserve/wasiserve"
	"github.com/wasiserve/wasiserve/hostharness/engine"
	"github.com/wasiserve/wasiserve/internal/enginetest"
	"github.com/wasiserve/wasiserve/internal/syncbuf"
)

// serveFD3 runs the fd3 guest, which has no route of its own for health
// (it answers every path with "fd3:" and the body), on engine name with
// an admin listener, until the test ends.
func serveFD3(t testing.TB, name string, opts wasiserve.Options) *running {
	t.Helper()
	opts.AdminAddr = "127.0.0.1:0"
	return launch(t, name, enginetest.FD3.Path(t), opts)
}

// get GETs url on a fresh connection and returns the status code and
// body, or an error.
func get(url string) (int, string, error) {
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(body)), err
}

// want GETs url and checks its answer.
func want(t *testing.T, url string, code int, body string) {
	t.Helper()
	got, text, err := get(url)
	if err != nil || got != code || text != body {
		t.Fatalf("GET %s: %d %q (%v), want %d %q", url, got, text, err, code, body)
	}
}

// waitFor GETs url until it answers code and body.
func waitFor(t *testing.T, url string, code int, body string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		got, text, err := get(url)
		if err == nil && got == code && text == body {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: %d %q (%v) after 30s, want %d %q", url, got, text, err, code, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestAdminHealthNeverReady: an instance that exits before it is ever
// ready, restarted over and over, leaves /readyz at 503 "starting" while
// /livez says the host runs; both come from the host, the guest has no
// such route.
func TestAdminHealthNeverReady(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: serves guests on every engine")
	}
	for _, name := range enginetest.Engines().With(engine.HostListener) {
		t.Run(name, func(t *testing.T) {
			s := serveFD3(t, name, wasiserve.Options{Restart: true, Env: []string{"EXIT_CODE=3"}})
			waitLog(t, s.log, "restarting guest")
			want(t, s.admin+"/livez", http.StatusOK, "ok")
			want(t, s.admin+"/readyz", http.StatusServiceUnavailable, "starting")
			if ok, reason := s.srv.Readiness(); ok || reason != "starting" {
				t.Errorf("Readiness() = %v, %q; want false, starting", ok, reason)
			}
		})
	}
}

// TestAdminInstanceNotRunning: of two instances, one answers a connection
// and exits (no --restart): /readyz turns 503 naming it, while the other
// still serves.
func TestAdminInstanceNotRunning(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: serves guests on every engine")
	}
	for _, name := range enginetest.Engines().With(engine.HostListener) {
		t.Run(name, func(t *testing.T) {
			s := serveFD3(t, name, wasiserve.Options{Instances: 2, Env: []string{"BLOCKING_ACCEPT=1"}})
			s.waitReady(t)
			want(t, s.admin+"/readyz", http.StatusOK, "ok")
			want(t, s.url+"/", http.StatusOK, "blocked")
			deadline := time.Now().Add(30 * time.Second)
			for {
				code, body, err := get(s.admin + "/readyz")
				if err == nil && code == http.StatusServiceUnavailable && strings.HasPrefix(body, "instance ") && strings.HasSuffix(body, " of 2 not running") {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("GET /readyz: %d %q (%v) 30s after an instance exited, want 503 instance N of 2 not running", code, body, err)
				}
				time.Sleep(20 * time.Millisecond)
			}
			want(t, s.admin+"/livez", http.StatusOK, "ok")
			want(t, s.url+"/", http.StatusOK, "blocked") // the other instance
		})
	}
}

// TestAdminShutdownDelay serves a guest without a health route of its own
// on every project engine: /readyz is 200 once ready; on cancel it turns
// 503 "draining" at once while the guest still answers new connections
// throughout the shutdown delay; once the delay ends (cut short by
// SkipShutdownDelay) the listener refuses connections, Run returns after
// the drain and the admin listener is closed.
func TestAdminShutdownDelay(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: serves guests on every engine")
	}
	for _, name := range enginetest.Engines().With(engine.HostListener) {
		t.Run(name, func(t *testing.T) {
			s := serveFD3(t, name, wasiserve.Options{ShutdownDelay: time.Hour})
			s.waitReady(t)
			want(t, s.admin+"/readyz", http.StatusOK, "ok")
			want(t, s.admin+"/livez", http.StatusOK, "ok")
			want(t, s.url+"/readyz", http.StatusOK, "fd3:") // the guest's, not the host's

			s.cancel()
			waitFor(t, s.admin+"/readyz", http.StatusServiceUnavailable, "draining")
			waitLog(t, s.log, "shutdown delay: not ready, still serving")
			// Served during the delay: on new connections, several times.
			for i := range 5 {
				want(t, s.url+"/", http.StatusOK, "fd3:")
				want(t, s.admin+"/readyz", http.StatusServiceUnavailable, "draining")
				want(t, s.admin+"/livez", http.StatusOK, "ok")
				if i == 0 && strings.Contains(s.log.String(), "msg=draining") {
					t.Fatalf("the drain began during the delay:\n%s", s.log.String())
				}
			}
			if !s.srv.SkipShutdownDelay() {
				t.Error("SkipShutdownDelay during the delay reported none in progress")
			}
			if err := s.wait(t); err != nil {
				t.Fatalf("Run: %v\n%s", err, s.log.String())
			}
			if _, _, err := get(s.url + "/"); err == nil {
				t.Error("the guest's listener still answers after Run returned")
			}
			if _, _, err := get(s.admin + "/livez"); err == nil {
				t.Error("the admin listener still answers after Run returned")
			}
			logs := s.log.String()
			if i, j := strings.Index(logs, "shutdown delay cut short"), strings.Index(logs, "msg=draining"); i < 0 || j < i {
				t.Errorf("want the delay cut short, then the drain:\n%s", logs)
			}
		})
	}
}

// TestAdminShutdownDelayEnds: a delay that nothing cuts short ends by
// itself, then the drain runs and Run returns; a second skip reports no
// delay in progress.
func TestAdminShutdownDelayEnds(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: serves a guest")
	}
	s := serveFD3(t, defaultHostEngine(t), wasiserve.Options{ShutdownDelay: 300 * time.Millisecond})
	s.waitReady(t)
	s.cancel()
	if err := s.wait(t); err != nil {
		t.Fatalf("Run: %v\n%s", err, s.log.String())
	}
	logs := s.log.String()
	if !strings.Contains(logs, "shutdown delay: not ready, still serving") || strings.Contains(logs, "cut short") {
		t.Errorf("want a delay that ended by itself:\n%s", logs)
	}
	if s.srv.SkipShutdownDelay() {
		t.Error("SkipShutdownDelay after Run reported a delay in progress")
	}
}

// TestAdminConnectionCap opens more idle keep-alive connections to the
// admin listener than it holds (scrapers that keep their connections):
// the oldest are closed for the newer ones, so that a scrape and the
// guest are still answered at once, well before the idle timeout, and the
// host holds at most AdminMaxConns of them.
func TestAdminConnectionCap(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: serves a guest")
	}
	s := serveFD3(t, defaultHostEngine(t), wasiserve.Options{})
	s.waitReady(t)
	addr := strings.TrimPrefix(s.admin, "http://")
	const extra = 40
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := range wasiserve.AdminMaxConns + extra {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		fmt.Fprintf(c, "GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, 512)
		if n, err := c.Read(buf); err != nil || !strings.HasPrefix(string(buf[:n]), "HTTP/1.1 200") {
			t.Fatalf("connection %d: %q, %v", i, buf[:n], err)
		}
	}
	// The scrape and the guest are answered at once: each within the
	// client's 10s timeout, below the admin listener's idle timeout,
	// which would otherwise be what frees a slot.
	want(t, s.admin+"/readyz", http.StatusOK, "ok")
	want(t, s.url+"/", http.StatusOK, "fd3:")
	if code, _, err := get(s.admin + "/metrics"); err != nil || code != http.StatusOK {
		t.Fatalf("GET /metrics: %d, %v", code, err)
	}
	// The oldest were closed: one for each connection over the bound,
	// and one for the first request above (which closed its connection
	// after, leaving its slot to the next).
	closed := make(chan bool, len(conns))
	for _, c := range conns {
		go func() {
			c.SetReadDeadline(time.Now().Add(2 * time.Second))
			_, err := c.Read(make([]byte, 1))
			closed <- err == io.EOF
		}()
	}
	n := 0
	for range conns {
		if <-closed {
			n++
		}
	}
	if n < extra+1 {
		t.Errorf("%d of %d idle admin connections closed, want at least %d", n, len(conns), extra+1)
	}
	if open := len(conns) - n; open > wasiserve.AdminMaxConns {
		t.Errorf("%d idle admin connections open, want at most %d", open, wasiserve.AdminMaxConns)
	}
}

// defaultHostEngine is the first project engine with a host-owned
// listener.
func defaultHostEngine(t *testing.T) string {
	names := enginetest.Engines().With(engine.HostListener)
	if len(names) == 0 {
		t.Skip("no engine with a host-owned listener runs here")
	}
	return names[0]
}

// waitLog waits until the logs say text.
func waitLog(t *testing.T, logs *syncbuf.Buffer, text string) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for !strings.Contains(logs.String(), text) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in the logs after 3 minutes:\n%s", text, logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// BenchmarkAdminScrapeFlood measures what a flood of scrapes takes from
// the guest: requests/s of 8 keep-alive clients of the fd3 guest, alone and with 32 clients scraping /metrics in a loop, on each
// project engine.
//
//	go test -run - -bench AdminScrapeFlood -benchtime 20000x .
func BenchmarkAdminScrapeFlood(b *testing.B) {
	for _, name := range enginetest.Engines().With(engine.HostListener) {
		for _, scrapers := range []int{0, 32} {
			b.Run(fmt.Sprintf("%s/scrapers=%d", name, scrapers), func(b *testing.B) {
				s := serveFD3(b, name, wasiserve.Options{})
				s.waitReady(b)
				stop := make(chan struct{})
				var scrapes, failed atomic.Int64
				var scraping sync.WaitGroup
				for range scrapers {
					scraping.Go(func() {
						client := &http.Client{Timeout: 30 * time.Second}
						for {
							select {
							case <-stop:
								return
							default:
							}
							resp, err := client.Get(s.admin + "/metrics")
							if err != nil {
								continue
							}
							io.Copy(io.Discard, resp.Body)
							resp.Body.Close()
							scrapes.Add(1)
						}
					})
				}
				var next atomic.Int64
				var clients sync.WaitGroup
				b.ResetTimer()
				start := time.Now()
				for range 8 {
					clients.Go(func() {
						client := &http.Client{Timeout: 30 * time.Second}
						for next.Add(1) <= int64(b.N) {
							resp, err := client.Get(s.url + "/")
							if err != nil {
								failed.Add(1)
								continue
							}
							got, _ := io.ReadAll(resp.Body)
							resp.Body.Close()
							if string(got) != "fd3:" {
								failed.Add(1)
							}
						}
					})
				}
				clients.Wait()
				took := time.Since(start)
				b.StopTimer()
				close(stop)
				scraping.Wait()
				if n := failed.Load(); n != 0 {
					b.Fatalf("%d of %d requests failed", n, b.N)
				}
				b.ReportMetric(float64(b.N)/took.Seconds(), "req/s")
				b.ReportMetric(float64(scrapes.Load())/took.Seconds(), "scrapes/s")
			})
		}
	}
}
