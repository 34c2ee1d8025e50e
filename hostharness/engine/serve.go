package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// ReadyTimeout bounds how long Serve waits for a guest's listener.
const ReadyTimeout = 30 * time.Second

// Instance is a guest being served on a listener.
type Instance struct {
	// Addr is the listener's address: "host:port", with the real port even
	// when port 0 was asked for, or a Unix socket's path.
	Addr string
	// Network is the listener's network: "tcp" or "unix".
	Network   string
	cancel    context.CancelFunc
	done      chan struct{}
	err       error
	drain     chan struct{}
	drainOnce sync.Once
	drains    bool
	stats     atomic.Pointer[func() Stats]
	output    *outputLimiter
	// stopped is the error of a guest that the host stopped because it
	// was dying (see watch); set before the stop.
	stopped atomic.Pointer[ExitError]
}

// OutputDropped is the number of bytes of the guest's stdout and stderr
// dropped over Config.OutputRate.
func (inst *Instance) OutputDropped() uint64 { return inst.output.dropped.Load() }

// Stats returns the instance's counters, cheap enough for every scrape;
// ok is false when the engine does not count (its host does not own the
// sockets) or has not started yet. After the guest stopped they are the
// final values, with OpenConns 0.
func (inst *Instance) Stats() (s Stats, ok bool) {
	read := inst.stats.Load()
	if read == nil {
		return Stats{}, false
	}
	return (*read)(), true
}

// Serve runs mod under cfg in the background and returns once the guest
// is ready: when it first waits for a connection, for engines that can
// tell (ReadyReport), and otherwise once its listener accepts connections.
// cfg.Listener must be set (package listener binds it), and cfg must need
// nothing the engine lacks (an *UnsupportedError). Serve sets cfg.Drain
// (use Instance.Drain), and calls cfg.OnReady and cfg.OnStats, when set,
// after its own.
func Serve(ctx context.Context, mod Module, cfg Config) (*Instance, error) {
	if cfg.Listener == nil {
		return nil, errors.New("serve: no listener")
	}
	if err := cfg.Check(); err != nil {
		return nil, err
	}
	caps := mod.Capabilities()
	if n, missing := caps.Missing(cfg.Needs()); missing {
		return nil, &UnsupportedError{Engine: mod.Engine(), Need: n}
	}
	addr := cfg.Listener.Addr()
	if !caps.Has(HostListener) {
		// The engine binds the address itself: free it first, so that
		// the readiness check below reaches the engine's socket.
		if _, err := TakeOverAddr(mod.Engine(), cfg); err != nil {
			return nil, err
		}
	}
	inst := &Instance{Addr: addr.String(), Network: addr.Network(), done: make(chan struct{}), drain: make(chan struct{}),
		output: newOutputLimiter(cfg.OutputRate)}
	cfg.Stdout = inst.output.writer(cfg.Stdout, streamStdout)
	cfg.Stderr = inst.output.writer(cfg.Stderr, streamStderr)
	cfg.Drain = inst.drain
	inst.drains = caps.Has(Drain)
	onStats := cfg.OnStats
	cfg.OnStats = func(read func() Stats) {
		inst.stats.Store(&read)
		if onStats != nil {
			onStats(read)
		}
	}
	var ready chan struct{}
	if caps.Has(ReadyReport) {
		ready = make(chan struct{})
		var once sync.Once
		onReady := cfg.OnReady
		cfg.OnReady = func() {
			once.Do(func() {
				close(ready)
				if onReady != nil {
					onReady()
				}
			})
		}
	}
	runCtx, cancel := context.WithCancel(ctx)
	inst.cancel = cancel
	go func() {
		defer close(inst.done)
		err := mod.Run(runCtx, cfg)
		if stopped := inst.stopped.Load(); stopped != nil {
			err = stopped
		}
		inst.err = err
	}()
	go inst.watch(cfg.Log(), mod.Engine())
	if err := inst.waitReady(ctx, ready); err != nil {
		// The error of a guest that exited is in err already.
		if stopErr := inst.Stop(); stopErr != nil && !errors.Is(err, stopErr) {
			err = fmt.Errorf("%w; %w", err, stopErr)
		}
		return nil, err
	}
	return inst, nil
}

// TakeOverAddr is, for engines that bind their socket themselves, the
// TCP address of cfg.Listener, which it closes (Serve did already; again,
// as on a restart, does nothing) so that the engine can bind it.
func TakeOverAddr(engine string, cfg Config) (string, error) {
	addr, ok := cfg.Listener.Addr().(*net.TCPAddr)
	if !ok {
		return "", &UnsupportedError{Engine: engine, Need: Need{HostListener, "Listener"}}
	}
	cfg.Listener.Close()
	return addr.String(), nil
}

// waitReady waits until ready is closed or, when ready is nil, dials the
// listener until it accepts a connection; it gives up when the guest
// exits or ReadyTimeout passes.
func (inst *Instance) waitReady(ctx context.Context, ready <-chan struct{}) error {
	deadline := time.Now().Add(ReadyTimeout)
	var err error
	for {
		if ready == nil {
			var conn net.Conn
			if conn, err = net.DialTimeout(inst.Network, dialTarget(inst.Addr), time.Second); err == nil {
				conn.Close()
				return nil
			}
		}
		select {
		case <-ready:
			return nil
		case <-inst.done:
			if inst.err != nil {
				return fmt.Errorf("guest stopped before listening on %s: %w", inst.Addr, inst.err)
			}
			return fmt.Errorf("guest exited before listening on %s", inst.Addr)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = errors.New("it never waited for a connection")
			}
			return fmt.Errorf("guest not listening on %s after %s: %w", inst.Addr, ReadyTimeout, err)
		}
	}
}

// dialTarget turns a wildcard listen address into one a client can dial.
func dialTarget(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		// Go's "tcp" wildcard listeners ("0.0.0.0" too reports "[::]")
		// are dual-stack: IPv4's loopback reaches them even where IPv6
		// has none, as in many containers.
		return net.JoinHostPort("127.0.0.1", port)
	}
	return addr
}

// URL is the instance's base URL for TCP clients; for a Unix socket it
// is "unix:" and the socket's path.
func (inst *Instance) URL() string {
	if inst.Network == "unix" {
		return "unix:" + inst.Addr
	}
	return "http://" + dialTarget(inst.Addr)
}

// Done is closed when the guest has stopped.
func (inst *Instance) Done() <-chan struct{} { return inst.done }

// Wait waits for the guest to stop and returns Module.Run's result.
func (inst *Instance) Wait() error {
	<-inst.done
	return inst.err
}

// Drain asks the guest to stop taking connections and finish those it has
// (see Config.Drain) and returns at once: wait on Done, and Stop a guest
// that takes too long. It returns false, and does nothing, on engines that
// cannot drain (their listener is out of the host's reach): Stop those.
func (inst *Instance) Drain() bool {
	if inst.drains {
		inst.drainOnce.Do(func() { close(inst.drain) })
	}
	return inst.drains
}

// StopTimeout bounds how long Stop waits for a guest to stop.
const StopTimeout = 5 * time.Second

// ErrNotStopped is returned (wrapped) by Stop for a guest still running
// StopTimeout after it was told to stop: an engine that can stop a guest
// only at its next host call keeps one spinning without any, and a core,
// until the process exits.
var ErrNotStopped = errors.New("the guest did not stop: it made no host call since it was told to (a busy loop?)")

// Stop stops the guest and waits for it, at most StopTimeout.
func (inst *Instance) Stop() error {
	inst.cancel()
	select {
	case <-inst.done:
		return inst.err
	case <-time.After(StopTimeout):
		return fmt.Errorf("stop %s: %w; it runs until this process exits", inst.Addr, ErrNotStopped)
	}
}

// Liveness of a dying guest. A Go guest whose runtime failed (it printed
// fatalBanner: out of memory, say) prints every goroutine and exits; with
// tens of thousands of goroutines that can take minutes during which it
// serves nothing. The host stops such a guest once, since the banner,
// none of its sockets has moved a byte or taken a connection, it has
// made no wait (poll_oneoff, which a failed runtime never calls: it only
// prints) and it has written to stderr in each of FatalStallTicks
// LivenessIntervals in a row. A healthy guest is never stopped: one whose
// sockets move or that waits after the banner is alive for good (a failed
// Go runtime never serves again), and one that prints the banner's words
// (a client's, logged as they came) and then logs on a timer waits
// between the lines.
const (
	LivenessInterval = time.Second
	FatalStallTicks  = 3
)

// liveness judges, one LivenessInterval at a time, whether an instance is
// dying (see LivenessInterval).
type liveness struct {
	armed, alive   bool
	bannerProgress uint64 // socket progress when the banner was first seen
	lastAttempted  uint64
	stalls         int
}

// tick takes the instance's progress (accepted connections, bytes moved
// and waits, which only grow), the bytes it has written to stderr and
// whether its stderr had the banner, and reports whether it is dying.
func (l *liveness) tick(progress, attempted uint64, banner bool) (dying bool) {
	wrote := attempted != l.lastAttempted
	l.lastAttempted = attempted
	switch {
	case !banner || l.alive:
		return false
	case !l.armed:
		l.armed, l.bannerProgress = true, progress
	case progress != l.bannerProgress:
		l.alive, l.stalls = true, 0
		return false
	}
	if wrote {
		l.stalls++
	} else {
		l.stalls = 0
	}
	return l.stalls >= FatalStallTicks
}

// watch logs the guest's dropped output every OutputReportInterval (and
// once more when it stops) and stops a dying guest (see
// LivenessInterval), until the guest has stopped.
func (inst *Instance) watch(log *slog.Logger, engineName string) {
	ticker := time.NewTicker(LivenessInterval)
	defer ticker.Stop()
	lastReport := time.Now()
	var live liveness
	for {
		select {
		case <-inst.done:
			inst.reportDropped(log)
			return
		case <-ticker.C:
		}
		if time.Since(lastReport) >= OutputReportInterval {
			inst.reportDropped(log)
			lastReport = time.Now()
		}
		st, counted := inst.Stats()
		if !counted || inst.stopped.Load() != nil {
			continue // no socket counters: it cannot be judged
		}
		banner, seen := inst.output.fatal.banner()
		if live.tick(st.AcceptedConns+st.BytesRead+st.BytesWritten+st.Waits, inst.output.attempted.Load(), seen) {
			stall := time.Duration(live.stalls) * LivenessInterval
			log.Error("stopping a dying guest: its runtime failed and it has written only to stderr since, serving nothing",
				"engine", engineName, "addr", inst.Addr, "banner", banner, "for", stall)
			inst.stopped.Store(&ExitError{Code: 2, Trap: fmt.Sprintf(
				"stopped by the host: %q, then %s of output to stderr and no socket progress", banner, stall)})
			inst.cancel()
		}
	}
}

// reportDropped logs, per stream, the bytes dropped since the last report.
func (inst *Instance) reportDropped(log *slog.Logger) {
	for stream, n := range inst.output.takeDropped() {
		if n > 0 {
			log.Warn(fmt.Sprintf("dropped %d bytes of guest %s", n, streamNames[stream]),
				"addr", inst.Addr, "rate", fmt.Sprintf("%d bytes/s", int64(inst.output.rate)))
		}
	}
}
