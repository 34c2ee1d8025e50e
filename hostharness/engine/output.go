package engine

import (
	"bytes"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// Bounds of a guest instance's output (Config.Stdout and Config.Stderr
// together): a token bucket on bytes, so that a guest that floods its
// output (a runtime dumping every goroutine as it dies, a log in a loop)
// costs the host at most this much I/O. Output over it is dropped and
// counted (Instance.OutputDropped), the guest's writes succeed all the
// same, and the count is logged every OutputReportInterval.
const (
	// DefaultOutputRate is the bytes per second an instance may write
	// when Config.OutputRate is 0.
	DefaultOutputRate = 1 << 20
	// OutputBurstSeconds is the burst, in seconds of the rate: what an
	// instance may write at once after a quiet while.
	OutputBurstSeconds = 4
	// OutputReportInterval is how often the bytes dropped meanwhile are
	// logged, in one line per stream.
	OutputReportInterval = 10 * time.Second
)

// Streams of guest output, as the indexes of outputLimiter's counts.
const (
	streamStdout = iota
	streamStderr
	streams
)

var streamNames = [streams]string{"stdout", "stderr"}

// outputLimiter is the token bucket of one instance's output, shared by
// its stdout and stderr writers. Its writers scan stderr for the banner
// of a Go runtime that failed (fatalBanner).
type outputLimiter struct {
	rate, burst float64 // bytes per second, bytes; rate 0: no limit

	mu      sync.Mutex
	tokens  float64
	last    time.Time
	pending [streams]uint64 // dropped since the last report

	// attempted counts the bytes the guest wrote to stderr, kept or
	// dropped; dropped all it dropped.
	attempted, dropped atomic.Uint64
	fatal              fatalScanner
}

// newOutputLimiter returns the limiter of rate bytes per second (0: the
// default; below 0: no limit).
func newOutputLimiter(rate int64) *outputLimiter {
	if rate == 0 {
		rate = DefaultOutputRate
	}
	l := &outputLimiter{last: time.Now()}
	if rate > 0 {
		l.rate, l.burst = float64(rate), float64(rate)*OutputBurstSeconds
		l.tokens = l.burst
	}
	return l
}

// writer is w (nil discards) behind the limiter, as stream.
func (l *outputLimiter) writer(w io.Writer, stream int) io.Writer {
	if w == nil {
		w = io.Discard
	}
	return &limitedWriter{l: l, w: w, stream: stream}
}

// take returns how many of n bytes may be written now, and counts the
// others as dropped.
func (l *outputLimiter) take(n int, stream int) int {
	if l.rate == 0 {
		return n
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	l.tokens = min(l.burst, l.tokens+now.Sub(l.last).Seconds()*l.rate)
	l.last = now
	keep := 0
	switch {
	case float64(n) <= l.tokens:
		keep = n
	case l.tokens >= l.burst:
		keep = int(l.burst) // one write larger than the burst: its head
	}
	l.tokens -= float64(keep)
	if drop := n - keep; drop > 0 {
		l.pending[stream] += uint64(drop)
		l.dropped.Add(uint64(drop))
	}
	return keep
}

// takeDropped returns, per stream, the bytes dropped since the last call.
func (l *outputLimiter) takeDropped() [streams]uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	p := l.pending
	l.pending = [streams]uint64{}
	return p
}

// limitedWriter is one stream of an instance's output.
type limitedWriter struct {
	l      *outputLimiter
	w      io.Writer
	stream int
}

// Write writes what the limiter allows of p and reports all of p
// written: the guest is not told that its output was dropped.
func (lw *limitedWriter) Write(p []byte) (int, error) {
	if lw.stream == streamStderr {
		lw.l.attempted.Add(uint64(len(p)))
		lw.l.fatal.scan(p)
	}
	keep := lw.l.take(len(p), lw.stream)
	if keep == 0 {
		return len(p), nil
	}
	n, err := lw.w.Write(p[:keep])
	if err != nil {
		return n, err
	}
	return len(p), nil
}

// fatalBanner begins the line with which the Go runtime reports an error
// it cannot recover from ("fatal error: out of memory"): it then prints
// every goroutine and exits, and never serves again.
const fatalBanner = "fatal error: "

// maxFatalLine bounds the banner's line that fatalScanner keeps.
const maxFatalLine = 160

// fatalScanner finds fatalBanner at the start of a line of a stream
// written in pieces of any size.
type fatalScanner struct {
	mu      sync.Mutex
	midLine bool // the last byte scanned was not '\n'
	matched int  // bytes of fatalBanner matched at the current line's start
	inLine  bool // collecting the banner's line
	line    []byte
	seen    atomic.Bool
}

// scan scans the next piece of the stream.
func (s *fatalScanner) scan(p []byte) {
	if s.seen.Load() {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(p) > 0 {
		if s.inLine {
			end := bytes.IndexByte(p, '\n')
			if end < 0 {
				end = len(p)
			}
			s.line = append(s.line, p[:min(end, maxFatalLine-len(s.line))]...)
			if end < len(p) || len(s.line) >= maxFatalLine {
				s.inLine = false
				s.seen.Store(true)
			}
			return
		}
		if s.midLine && s.matched == 0 {
			nl := bytes.IndexByte(p, '\n')
			if nl < 0 {
				return
			}
			p = p[nl+1:]
			s.midLine = false
			continue
		}
		// At a line's start, s.matched bytes of the banner matched.
		n := min(len(p), len(fatalBanner)-s.matched)
		if !bytes.Equal(p[:n], []byte(fatalBanner[s.matched:s.matched+n])) {
			s.matched, s.midLine = 0, true
			continue
		}
		s.matched += n
		p = p[n:]
		if s.matched == len(fatalBanner) {
			s.matched, s.inLine = 0, true
			s.line = append(s.line[:0], fatalBanner...)
		}
	}
}

// banner returns the banner's line once it has been seen.
func (s *fatalScanner) banner() (string, bool) {
	if !s.seen.Load() {
		return "", false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return string(s.line), true
}
