package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Mix is one kind of request the load generator sends in a closed loop.
type Mix struct {
	// Name labels the mix in reports.
	Name string
	// Body is the size of the POSTed body, echoed back by the guest.
	Body int
	// NewConn opens a new connection for every request instead of
	// keeping connections alive.
	NewConn bool
}

// SmallEcho is the mix whose throughput is the headline figure and is
// cross-checked with wrk.
var SmallEcho = Mix{Name: "echo 4 B", Body: 4}

// Mixes are the request mixes measured for every target.
func Mixes() []Mix {
	return []Mix{
		SmallEcho,
		{Name: "echo 64 KiB", Body: 64 << 10},
		{Name: "echo 1 MiB", Body: 1 << 20},
		{Name: "echo 4 B, new conn", Body: 4, NewConn: true},
	}
}

// loadResult is what one closed-loop run measured on the client side.
type loadResult struct {
	Requests int64
	Errors   int64
	// FirstError describes the first failed request.
	FirstError string
	Elapsed    time.Duration
	Latency    *hdrhistogram.Histogram
}

// Latencies are recorded in microseconds, from 1 µs to 2 minutes, with
// three significant digits.
func newHistogram() *hdrhistogram.Histogram {
	return hdrhistogram.New(1, int64(2*time.Minute/time.Microsecond), 3)
}

// errorPause slows a worker down after a failed request, so that a dead
// server does not turn the loop into a busy one.
const errorPause = 10 * time.Millisecond

// runLoad sends mix to addr from conns workers, each waiting for its
// response before sending the next request, until d has passed.
func runLoad(ctx context.Context, addr string, mix Mix, conns int, d time.Duration) loadResult {
	transport := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConnsPerHost: conns,
		MaxConnsPerHost:     conns,
		DisableKeepAlives:   mix.NewConn,
		DisableCompression:  true,
	}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport, Timeout: 30 * time.Second}
	body := make([]byte, mix.Body)
	for i := range body {
		body[i] = 'a' + byte(i%26)
	}
	url := "http://" + addr + "/echo"

	var (
		mu  sync.Mutex
		res = loadResult{Latency: newHistogram()}
		wg  sync.WaitGroup
	)
	start := time.Now()
	deadline := start.Add(d)
	for range conns {
		wg.Go(func() {
			hist := newHistogram()
			buf := make([]byte, len(body)+1)
			var n, errs int64
			var first error
			for time.Now().Before(deadline) && ctx.Err() == nil {
				t0 := time.Now()
				err := echoOnce(ctx, client, url, body, buf)
				if err != nil {
					errs++
					if first == nil {
						first = err
					}
					time.Sleep(errorPause)
					continue
				}
				hist.RecordValue(int64(time.Since(t0) / time.Microsecond))
				n++
			}
			mu.Lock()
			defer mu.Unlock()
			res.Latency.Merge(hist)
			res.Requests += n
			res.Errors += errs
			if first != nil && res.FirstError == "" {
				res.FirstError = first.Error()
			}
		})
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	return res
}

// echoOnce POSTs body to url and checks that the response echoes it; buf
// has room for one byte more than body.
func echoOnce(ctx context.Context, client *http.Client, url string, body, buf []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("POST %s: %s", url, resp.Status)
	}
	n, err := io.ReadFull(resp.Body, buf)
	switch {
	case err == nil:
		return fmt.Errorf("POST %s: response body longer than the %d bytes sent", url, len(body))
	case !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF):
		return fmt.Errorf("POST %s: read response: %w", url, err)
	}
	if !bytes.Equal(buf[:n], body) {
		return fmt.Errorf("POST %s: echoed %d bytes that differ from the %d sent", url, n, len(body))
	}
	return nil
}

// idleConns holds keep-alive connections that have each completed one
// GET /healthz.
type idleConns struct {
	addr  string
	conns []net.Conn
}

// openIdle opens n idle keep-alive connections to addr.
func openIdle(addr string, n int) (*idleConns, error) {
	ic := &idleConns{addr: addr}
	for i := range n {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			ic.Close()
			return nil, fmt.Errorf("idle connection %d: %w", i+1, err)
		}
		ic.conns = append(ic.conns, c)
		if err := healthzOn(c, addr); err != nil {
			ic.Close()
			return nil, fmt.Errorf("idle connection %d: %w", i+1, err)
		}
	}
	return ic, nil
}

// Check sends another GET /healthz on every connection, to show that they
// stayed open.
func (ic *idleConns) Check() error {
	for i, c := range ic.conns {
		if err := healthzOn(c, ic.addr); err != nil {
			return fmt.Errorf("idle connection %d after the idle window: %w", i+1, err)
		}
	}
	return nil
}

// Close closes the connections.
func (ic *idleConns) Close() {
	for _, c := range ic.conns {
		c.Close()
	}
}

// healthzOn sends GET /healthz on c and reads the response, leaving the
// connection open and idle.
func healthzOn(c net.Conn, addr string) error {
	c.SetDeadline(time.Now().Add(10 * time.Second))
	defer c.SetDeadline(time.Time{})
	req, err := http.NewRequest(http.MethodGet, "http://"+addr+"/healthz", nil)
	if err != nil {
		return err
	}
	if err := req.Write(c); err != nil {
		return fmt.Errorf("GET /healthz: %w", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), req)
	if err != nil {
		return fmt.Errorf("GET /healthz: %w", err)
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return fmt.Errorf("GET /healthz: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /healthz: %s", resp.Status)
	}
	return nil
}
