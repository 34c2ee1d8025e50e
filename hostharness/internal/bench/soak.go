package bench

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// SoakConfig configures Soak.
type SoakConfig struct {
	// Target is the server under load, launched once for the whole soak.
	Target Target
	// CacheDir is the target's compilation cache.
	CacheDir string
	// Duration is how long the load runs.
	Duration time.Duration
	// Conns is the number of concurrent client loops.
	Conns int
	// AbortRate is the fraction of requests the client abandons on purpose,
	// half of them while sending the body and half while reading the echo.
	AbortRate float64
	// SampleEvery is the interval between RSS and descriptor samples.
	SampleEvery time.Duration
	// Seed makes the bodies and the aborts reproducible.
	Seed uint64
	// Logger receives progress; nil discards it.
	Logger *slog.Logger
}

// soakSizes are the body sizes of the mixed load, chosen uniformly.
var soakSizes = []int{0, 1, 4, 1 << 10, 64 << 10, 1 << 20}

// SoakSample is the server's footprint at one moment.
type SoakSample struct {
	At  time.Duration `json:"at"`
	RSS int64         `json:"rss_bytes"`
	FDs int           `json:"fds"`
}

// SoakReport is what a soak saw. Every completed echo was hash-checked.
type SoakReport struct {
	Target        string        `json:"target"`
	Duration      time.Duration `json:"duration"`
	Completed     int64         `json:"completed"`
	Aborted       int64         `json:"aborted"`
	BytesVerified int64         `json:"bytes_verified"`
	Corrupted     int64         `json:"corrupted"`
	Truncated     int64         `json:"truncated"`
	Errors        int64         `json:"errors"`
	FirstError    string        `json:"first_error,omitempty"`
	Samples       []SoakSample  `json:"samples"`
	// FDsAfter is the descriptor count once the load stopped and the
	// server settled, to compare with the first sample.
	FDsAfter int `json:"fds_after"`
	// Problems lists every check that failed; empty means a clean soak.
	Problems []string `json:"problems"`
}

// Soak runs mixed echo load with random client aborts against a freshly
// launched target, verifies every completed echo by hash, samples the
// server's RSS and descriptors, and reports whether they stayed flat.
func Soak(ctx context.Context, cfg SoakConfig) (SoakReport, error) {
	if errUnsupported != nil {
		return SoakReport{}, errUnsupported
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	p, err := launch(ctx, cfg.Target, cfg.CacheDir, 2*time.Minute)
	if err != nil {
		return SoakReport{}, err
	}
	defer p.Stop()
	pid := p.Pid()
	rep := SoakReport{Target: cfg.Target.Name, Duration: cfg.Duration}
	begin := time.Now()
	sample := func() error {
		rss, fds, err := treeFootprint(pid)
		if err == nil {
			rep.Samples = append(rep.Samples, SoakSample{At: time.Since(begin), RSS: rss, FDs: fds})
		}
		return err
	}
	if err := sample(); err != nil {
		return SoakReport{}, fmt.Errorf("soak %s: %w", cfg.Target.Name, err)
	}

	var counters soakCounters
	loadCtx, stopLoad := context.WithTimeout(ctx, cfg.Duration)
	defer stopLoad()
	var wg sync.WaitGroup
	for i := range cfg.Conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			soakLoop(loadCtx, p.Addr, cfg, rand.New(rand.NewPCG(cfg.Seed, uint64(i))), &counters)
		}()
	}
	ticker := time.NewTicker(cfg.SampleEvery)
	for done := false; !done; {
		select {
		case <-loadCtx.Done():
			done = true
		case <-ticker.C:
			if err := sample(); err != nil {
				return rep, fmt.Errorf("soak %s: the server went away: %w", cfg.Target.Name, err)
			}
			logger.Info("soak", "target", cfg.Target.Name, "completed", counters.completed.Load(),
				"aborted", counters.aborted.Load(), "rss_mib", rep.Samples[len(rep.Samples)-1].RSS>>20)
		}
	}
	ticker.Stop()
	wg.Wait()
	if err := sample(); err != nil {
		return rep, fmt.Errorf("soak %s: the server went away: %w", cfg.Target.Name, err)
	}
	rep.Completed, rep.Aborted = counters.completed.Load(), counters.aborted.Load()
	rep.BytesVerified, rep.Corrupted = counters.bytes.Load(), counters.corrupted.Load()
	rep.Truncated, rep.Errors = counters.truncated.Load(), counters.errors.Load()
	if first := counters.firstError.Load(); first != nil {
		rep.FirstError = *first
	}
	rep.FDsAfter = settledFDs(pid, rep.Samples[0].FDs, 15*time.Second)
	rep.Problems = rep.check()
	return rep, nil
}

// settledFDs waits until the descriptor count falls back to baseline (the
// server closes aborted connections asynchronously) and returns the last
// count seen.
func settledFDs(pid, baseline int, limit time.Duration) int {
	deadline := time.Now().Add(limit)
	for {
		_, fds, err := treeFootprint(pid)
		if err != nil || fds <= baseline || time.Now().After(deadline) {
			return fds
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Flatness bounds: descriptors may exceed the idle baseline by the
// client's connections only while loaded, and must return to it; resident
// memory after warm-up may not grow by more than rssSlack.
const (
	fdSlack  = 2
	rssSlack = 64 << 20
)

// check lists what makes the soak unclean.
func (r SoakReport) check() []string {
	var problems []string
	if r.Completed == 0 {
		problems = append(problems, "no echo completed")
	}
	if r.Corrupted > 0 || r.Truncated > 0 {
		problems = append(problems, fmt.Sprintf("%d corrupted and %d truncated echoes", r.Corrupted, r.Truncated))
	}
	if r.Errors > 0 {
		problems = append(problems, fmt.Sprintf("%d requests failed that were not aborted (first: %s)", r.Errors, r.FirstError))
	}
	if len(r.Samples) >= 2 {
		if r.FDsAfter > r.Samples[0].FDs+fdSlack {
			problems = append(problems, fmt.Sprintf("descriptors grew from %d to %d", r.Samples[0].FDs, r.FDsAfter))
		}
		// The first tenth is warm-up: heaps and caches fill there, and
		// the server returns its start-up memory.
		warmAt := min(len(r.Samples)-1, max(1, len(r.Samples)/10))
		warm := r.Samples[warmAt].RSS
		for _, s := range r.Samples[warmAt:] {
			if s.RSS > warm+rssSlack {
				problems = append(problems, fmt.Sprintf("RSS grew from %d MiB after warm-up to %d MiB at %s", warm>>20, s.RSS>>20, s.At.Round(time.Second)))
				break
			}
		}
	}
	return problems
}

// soakCounters are shared by the client loops.
type soakCounters struct {
	completed, aborted, bytes, corrupted, truncated, errors atomic.Int64
	firstError                                              atomic.Pointer[string]
}

func (c *soakCounters) fail(err error) {
	c.errors.Add(1)
	msg := err.Error()
	c.firstError.CompareAndSwap(nil, &msg)
}

// soakLoop sends requests until ctx is done: a random size, random bytes,
// and now and then an abort on purpose.
func soakLoop(ctx context.Context, addr string, cfg SoakConfig, rng *rand.Rand, c *soakCounters) {
	transport := &http.Transport{MaxIdleConnsPerHost: 1}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport, Timeout: time.Minute}
	for ctx.Err() == nil {
		body := make([]byte, soakSizes[rng.IntN(len(soakSizes))])
		for i := range body {
			body[i] = byte(rng.Uint32())
		}
		var err error
		switch roll := rng.Float64(); {
		case roll < cfg.AbortRate/2:
			err = abortWhileSending(addr, body)
		case roll < cfg.AbortRate:
			err = abortWhileReading(addr, body)
		default:
			verifiedEcho(ctx, client, addr, body, c)
			continue
		}
		if err != nil && ctx.Err() == nil {
			c.fail(err)
		} else {
			c.aborted.Add(1)
		}
	}
}

// verifiedEcho posts body and checks the echo byte for byte.
func verifiedEcho(ctx context.Context, client *http.Client, addr string, body []byte, c *soakCounters) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+"/soak", bytes.NewReader(body))
	if err != nil {
		c.fail(err)
		return
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := client.Do(req)
	if err != nil {
		if ctx.Err() == nil {
			c.fail(err)
		}
		return
	}
	defer resp.Body.Close()
	h := sha256.New()
	n, err := io.Copy(h, resp.Body)
	switch {
	case err != nil && ctx.Err() != nil:
		return // the soak ended mid-response
	case resp.StatusCode != http.StatusOK:
		c.fail(fmt.Errorf("status %s", resp.Status))
	case err != nil || n < int64(len(body)):
		c.truncated.Add(1)
	case !bytes.Equal(h.Sum(nil), sha256Of(body)):
		c.corrupted.Add(1)
	default:
		c.completed.Add(1)
		c.bytes.Add(n)
	}
}

func sha256Of(b []byte) []byte {
	sum := sha256.Sum256(b)
	return sum[:]
}

// abortWhileSending announces body but hangs up (with a reset) halfway.
func abortWhileSending(addr string, body []byte) error {
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return err
	}
	fmt.Fprintf(conn, "POST /soak HTTP/1.1\r\nHost: soak\r\nContent-Length: %d\r\n\r\n", len(body)+1)
	conn.Write(body[:len(body)/2])
	conn.(*net.TCPConn).SetLinger(0)
	return conn.Close()
}

// abortWhileReading sends the whole request but hangs up after reading at
// most half of the echo.
func abortWhileReading(addr string, body []byte) error {
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	go func() {
		fmt.Fprintf(conn, "POST /soak HTTP/1.1\r\nHost: soak\r\nContent-Length: %d\r\n\r\n", len(body))
		conn.Write(body)
	}()
	if _, err := io.ReadFull(conn, make([]byte, 12)); err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("read the status line: %w", err)
	}
	io.CopyN(io.Discard, conn, int64(len(body)/2))
	return nil
}

// Summary is the soak's result in a few lines of text.
func (r SoakReport) Summary() string {
	var b bytes.Buffer
	first, last := r.Samples[0], r.Samples[len(r.Samples)-1]
	maxRSS := first.RSS
	for _, s := range r.Samples {
		maxRSS = max(maxRSS, s.RSS)
	}
	fmt.Fprintf(&b, "soak of %s for %s\n", r.Target, r.Duration)
	fmt.Fprintf(&b, "  echoes completed and hash-verified: %d (%s MiB)\n", r.Completed, strconv.FormatFloat(float64(r.BytesVerified)/(1<<20), 'f', 1, 64))
	fmt.Fprintf(&b, "  client aborts injected: %d\n", r.Aborted)
	fmt.Fprintf(&b, "  corrupted: %d, truncated: %d, failed requests: %d\n", r.Corrupted, r.Truncated, r.Errors)
	fmt.Fprintf(&b, "  server RSS: %d MiB at start, %d MiB max, %d MiB at end (%d samples)\n", first.RSS>>20, maxRSS>>20, last.RSS>>20, len(r.Samples))
	fmt.Fprintf(&b, "  server descriptors: %d at start, %d after the load settled\n", first.FDs, r.FDsAfter)
	if len(r.Problems) == 0 {
		b.WriteString("  result: clean\n")
	} else {
		for _, p := range r.Problems {
			fmt.Fprintf(&b, "  PROBLEM: %s\n", p)
		}
	}
	return b.String()
}
