package wasiserve

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// countingGatherer is a registry with one gauge that counts its gathers.
type countingGatherer struct {
	*prometheus.Registry
	gauge   prometheus.Gauge
	gathers atomic.Int64
}

func newCountingGatherer() *countingGatherer {
	g := &countingGatherer{Registry: prometheus.NewRegistry(),
		gauge: prometheus.NewGauge(prometheus.GaugeOpts{Name: "test_value", Help: "A value the test sets."})}
	g.MustRegister(countingCollector{g})
	return g
}

// countingCollector collects the gauge, counting each gather.
type countingCollector struct{ g *countingGatherer }

func (c countingCollector) Describe(ch chan<- *prometheus.Desc) { c.g.gauge.Describe(ch) }

func (c countingCollector) Collect(ch chan<- prometheus.Metric) {
	c.g.gathers.Add(1)
	c.g.gauge.Collect(ch)
}

// serveTest serves h on 127.0.0.1 until the test ends, at most max
// connections at once.
func serveTest(t *testing.T, h http.Handler, max int) (addr string, srv *http.Server) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	capped := newConnCap(ln, max)
	srv = &http.Server{Handler: h, ConnState: capped.track, ReadHeaderTimeout: time.Minute}
	go srv.Serve(capped)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String(), srv
}

// TestScraperFresh: each scrape comes from a gather begun after it was
// asked for, so that a value set before it is what it reports.
func TestScraperFresh(t *testing.T) {
	g := newCountingGatherer()
	addr, _ := serveTest(t, newScraper(g, 20*time.Millisecond), 8)
	for i := range 5 {
		g.gauge.Set(float64(i))
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if line := fmt.Sprintf("test_value %d\n", i); resp.StatusCode != http.StatusOK || !strings.Contains(string(body), line) {
			t.Fatalf("scrape %d: %s %q, want %q", i, resp.Status, body, line)
		}
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
			t.Errorf("Content-Type %q", ct)
		}
	}
	if n := g.gathers.Load(); n != 5 {
		t.Errorf("%d gathers for 5 scrapes one after another, want 5", n)
	}
}

// TestScraperFlood: scrapes that come together share gathers, so that a
// flood of them costs a bounded number of gathers, and each is answered.
func TestScraperFlood(t *testing.T) {
	g := newCountingGatherer()
	const scrapes = 200
	addr, _ := serveTest(t, newScraper(g, MinScrapeInterval), scrapes)
	var wg sync.WaitGroup
	var failed atomic.Int64
	for range scrapes {
		wg.Go(func() {
			client := &http.Client{Timeout: 30 * time.Second}
			resp, err := client.Get("http://" + addr + "/metrics")
			if err != nil {
				failed.Add(1)
				return
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "test_value 0") {
				failed.Add(1)
			}
		})
	}
	wg.Wait()
	if n := failed.Load(); n != 0 {
		t.Errorf("%d of %d concurrent scrapes failed", n, scrapes)
	}
	// Without sharing, each scrape would gather; with it, the scrapes
	// come within a few intervals and share a handful.
	if n := g.gathers.Load(); n > scrapes/4 {
		t.Errorf("%d gathers for %d concurrent scrapes, want them shared (at most %d)", n, scrapes, scrapes/4)
	}
	t.Logf("%d gathers for %d concurrent scrapes", g.gathers.Load(), scrapes)
}

// TestConnCapAllBusy: when every slot is in a request, a new connection is
// closed at once instead of waiting; once a request ends and its
// connection idles, the next new one takes its slot.
func TestConnCapAllBusy(t *testing.T) {
	release := make(chan struct{})
	var inHandler sync.WaitGroup
	inHandler.Add(2)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/block" {
			inHandler.Done()
			<-release
		}
		io.WriteString(w, "done")
	})
	addr, _ := serveTest(t, h, 2)
	busy := dialSending(t, addr, 2, "GET /block HTTP/1.1\r\nHost: x\r\n\r\n")
	inHandler.Wait()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	if n, err := c.Read(make([]byte, 64)); err == nil {
		t.Fatalf("a connection over the bound with every slot busy was answered (%d bytes)", n)
	}
	close(release)
	for _, b := range busy {
		b.SetReadDeadline(time.Now().Add(30 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(b), nil)
		if err != nil {
			t.Fatalf("a busy connection: %v", err)
		}
		resp.Body.Close()
	}
	// Both idle now: a new connection reclaims the older one's slot.
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
}

// TestConnCapBusyTooLong: clients that hold every slot in a request
// (requests whose answers they never read, so that the writes block) do
// not lock out a new client: past AdminBusyGrace, the connection in its
// request longest is closed for the new one, which is answered.
func TestConnCapBusyTooLong(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	var inHandler sync.WaitGroup
	inHandler.Add(2)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/block" {
			inHandler.Done()
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
		io.WriteString(w, "done")
	})
	addr, _ := serveTest(t, h, 2)
	busy := dialSending(t, addr, 2, "GET /block HTTP/1.1\r\nHost: x\r\n\r\n")
	inHandler.Wait()
	time.Sleep(AdminBusyGrace + 100*time.Millisecond) // both busy for longer than the grace
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Get("http://" + addr + "/")
	if err != nil {
		t.Fatalf("a new client with every slot in a request for over %v: %v", AdminBusyGrace, err)
	}
	resp.Body.Close()
	busy[0].SetReadDeadline(time.Now().Add(30 * time.Second))
	if n, err := busy[0].Read(make([]byte, 64)); err == nil {
		t.Errorf("the connection in its request longest was not closed for the new one (read %d bytes)", n)
	}
}

// TestConnCapSilentConns: connections that send nothing hold their slots
// for adminNewGrace only: a new client past it takes the oldest's slot
// and is answered.
func TestConnCapSilentConns(t *testing.T) {
	addr, _ := serveTest(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "done") }), 2)
	silent := dialSending(t, addr, 2, "")
	time.Sleep(adminNewGrace + 100*time.Millisecond) // both silent for longer than the grace
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Get("http://" + addr + "/")
	if err != nil {
		t.Fatalf("a new client with every slot held by a silent connection: %v", err)
	}
	resp.Body.Close()
	silent[0].SetReadDeadline(time.Now().Add(30 * time.Second))
	if n, err := silent[0].Read(make([]byte, 64)); err == nil {
		t.Errorf("the oldest silent connection was not closed for the new one (read %d bytes)", n)
	}
}

// TestAdminWarnsWhenExposed: binding the admin listener on an address
// other hosts reach logs a warning; loopback does not.
func TestAdminWarnsWhenExposed(t *testing.T) {
	for _, tc := range []struct {
		addr string
		warn bool
	}{
		{"127.0.0.1:0", false},
		{"localhost:0", false},
		{"[::1]:0", false},
		{"0.0.0.0:0", true},
		{"[::]:0", true},
	} {
		t.Run(tc.addr, func(t *testing.T) {
			ln, err := listenAdmin(tc.addr)
			if err != nil {
				t.Skipf("cannot bind %s here: %v", tc.addr, err)
			}
			defer ln.Close()
			var logs strings.Builder
			s := &Server{guest: "guest.wasm", log: slog.New(slog.NewTextHandler(&logs, nil))}
			s.serveAdmin(ln)()
			if warned := strings.Contains(logs.String(), "level=WARN msg=\"the admin listener is reachable from other hosts"); warned != tc.warn {
				t.Errorf("bound %s: warned %v, want %v; logs:\n%s", ln.Addr(), warned, tc.warn, logs.String())
			}
		})
	}
}

// dialSending opens n connections to addr, closed when the test ends, and
// sends request (if any) on each.
func dialSending(t *testing.T, addr string, n int, request string) []net.Conn {
	t.Helper()
	var conns []net.Conn
	for range n {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if request != "" {
			if _, err := io.WriteString(c, request); err != nil {
				t.Fatal(err)
			}
		}
		conns = append(conns, c)
	}
	return conns
}
