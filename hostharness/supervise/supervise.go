// Package supervise serves a guest module as a long-running server: one
// or more instances on one listener, each restarted on its own after an
// exit or a trap when asked, and all drained on a graceful stop (the
// listener stops taking connections, each guest finishes its requests in
// flight and exits, and guests still running after the drain timeout are
// stopped).
package supervise

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wasiserve/wasiserve/hostharness/engine"
	"github.com/wasiserve/wasiserve/hostharness/listener"
)

// The pause between restarts of a failing guest doubles from
// MinRestartBackoff up to MaxRestartBackoff; a guest that ran for ten
// times MaxRestartBackoff starts over at the minimum.
const (
	MinRestartBackoff = 50 * time.Millisecond
	MaxRestartBackoff = time.Second
)

// Group serves Instances instances of Module on Config.Listener.
type Group struct {
	// Module is the compiled guest that Run starts; Reload replaces the
	// instances with those of another module but leaves this field.
	Module engine.Module
	// Config is each instance's configuration; Config.Listener must be
	// set, and is shared by all instances (only engines with
	// engine.HostListener can serve more than one).
	Config engine.Config
	// Instances is the number of instances; 0 means 1.
	Instances int
	// Restart restarts an instance that exits or traps.
	Restart bool
	// DrainTimeout bounds how long the guests may take to finish their
	// requests once the stop began.
	DrainTimeout time.Duration
	// Logger receives the group's messages; nil discards them.
	Logger *slog.Logger
	// Ready, when set, is called once, when every instance is ready.
	Ready func()
	// Notifier, when set, is told when a Reload begins and when it has
	// ended (the group serves again, with the new guest or the old one),
	// as systemd's RELOADING=1 and READY=1.
	Notifier Notifier

	// mu guards what follows; Run sets it up, Reload and wait change it.
	mu     sync.Mutex
	stop   context.Context // Run's ctx: its end drains everything
	runCtx context.Context // ends the instances for good
	closed bool            // Run has returned or is about to
	gens   []*generation   // generations not yet stopped, oldest first
	// current is the generation that serves (the one Reload replaces).
	current *generation
	// slots are the counters of each instance index.
	slots []slot

	reloading         sync.Mutex // one Reload at a time
	reloadsOK         atomic.Uint64
	reloadsFailed     atomic.Uint64
	draining          atomic.Bool
	instancesDraining atomic.Int64
	stopListening     sync.Once // see stopAccepting
}

func (g *Group) logger() *slog.Logger {
	if g.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return g.Logger
}

// Run serves the instances until ctx is done (then it drains them) or
// every one has exited for good, and returns their errors joined. An
// instance that fails to start stops the others at once. While it runs,
// Reload may replace the instances with those of another module.
func (g *Group) Run(ctx context.Context) error {
	n := max(g.Instances, 1)
	if n > 1 && !g.Module.Capabilities().Has(engine.HostListener) {
		return &engine.UnsupportedError{Engine: g.Module.Engine(), Need: engine.Need{Capability: engine.HostListener, Setting: "Instances"}}
	}
	// Instances outlive ctx by the drain; supervise stops them.
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	g.mu.Lock()
	g.stop, g.runCtx, g.closed = ctx, runCtx, false
	g.slots = make([]slot, n)
	g.mu.Unlock()
	gen, err := g.start(ctx, runCtx, g.Module, g.Restart, cancel)
	if gen == nil { // err is nil when ctx ended the start
		g.mu.Lock()
		g.closed = true
		g.mu.Unlock()
		return err
	}
	g.mu.Lock()
	g.current = gen
	g.mu.Unlock()
	if g.Ready != nil {
		g.Ready()
	}
	if n > 1 {
		g.logger().Info("instances share the listener", "instances", n, "at", listener.Served(g.Config.Listener))
	}
	stopDrain := context.AfterFunc(ctx, g.stopAccepting)
	defer stopDrain()
	return g.wait()
}

// stopAccepting begins the final drain: the listener refuses new
// connections. It runs once; callers that come meanwhile wait for it, so
// that no instance is told to drain (and says so) while new clients can
// still connect.
func (g *Group) stopAccepting() {
	g.stopListening.Do(func() {
		g.draining.Store(true)
		g.logger().Info("draining", "reason", context.Cause(g.stop), "timeout", g.DrainTimeout)
		if g.Module.Capabilities().Has(engine.HostListener) {
			if err := listener.StopAccepting(g.Config.Listener); err != nil {
				g.logger().Warn("draining: the listener still queues connections", "err", err)
			}
		}
	})
}

// generation is the instances of one module, started by Run or Reload.
type generation struct {
	mod engine.Module
	// retire drains the generation's instances (they are not restarted).
	retire context.CancelCauseFunc
	done   chan struct{}
	// errs are the instances' errors, set before done closes; rejected
	// is set for a generation that a failed Reload started.
	errs     []error
	rejected atomic.Bool
}

// start starts Instances instances of mod, one after another (each is
// ready before the next starts), each drained once stop is done or the
// generation is retired. retry restarts an instance that exits before it
// was first ready (with Restart; Reload does not). When one fails to
// start, start calls abort, if set, and otherwise drains those started,
// and returns a nil generation and their errors (nil when stop ended
// the start) once they have stopped.
func (g *Group) start(stop, runCtx context.Context, mod engine.Module, retry bool, abort func()) (*generation, error) {
	genCtx, retire := context.WithCancelCause(stop)
	gen := &generation{mod: mod, retire: retire, done: make(chan struct{})}
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		retire(nil)
		return nil, errors.New("the group has stopped")
	}
	g.gens = append(g.gens, gen)
	g.mu.Unlock()
	n := max(g.Instances, 1)
	errs := make([]error, n)
	var wg sync.WaitGroup
	defer func() {
		go func() {
			wg.Wait()
			gen.errs = errs
			close(gen.done)
		}()
	}()
	for id := range n {
		first := make(chan struct{})
		wg.Go(func() { errs[id] = g.supervise(genCtx, runCtx, mod, id, first, retry) })
		if _, ok := <-first; !ok {
			gen.rejected.Store(abort == nil)
			if abort != nil {
				abort() // stop the others at once
			} else {
				retire(errStartFailed)
			}
			wg.Wait()
			return nil, errors.Join(errs...)
		}
	}
	return gen, nil
}

// errStartFailed is the cause of draining a generation that did not start.
var errStartFailed = errors.New("an instance of the new guest failed to start")

// wait waits until every generation has stopped and returns the errors of
// those that were not rejected.
func (g *Group) wait() error {
	var errs []error
	for {
		g.mu.Lock()
		if len(g.gens) == 0 {
			g.closed = true
			g.mu.Unlock()
			return errors.Join(errs...)
		}
		gen := g.gens[0]
		g.mu.Unlock()
		<-gen.done
		if !gen.rejected.Load() {
			errs = append(errs, gen.errs...)
		}
		g.mu.Lock()
		g.gens = slices.DeleteFunc(g.gens, func(x *generation) bool { return x == gen })
		g.mu.Unlock()
	}
}

// supervise runs instance id: it serves the guest, restarts it after an
// exit when asked, and drains it when ctx is done. It sends on first once
// the instance first runs, or closes first if the guest cannot start.
//
// With retry false, an instance that fails before it was first ready is
// not restarted, even with Restart.
func (g *Group) supervise(ctx, runCtx context.Context, mod engine.Module, id int, first chan<- struct{}, retry bool) error {
	log := g.logger()
	if max(g.Instances, 1) > 1 {
		log = log.With("instance", id)
	}
	started := false
	defer func() {
		if !started { // it never ran: tell Run
			close(first)
		}
	}()
	backoff := MinRestartBackoff
	for restarts := 0; ; restarts++ {
		begun := time.Now()
		// A signal while the guest starts stops it at once: there is
		// nothing to drain yet.
		instCtx, cancelInst := context.WithCancel(runCtx)
		stopStarting := context.AfterFunc(ctx, cancelInst)
		inst, err := engine.Serve(instCtx, mod, g.Config)
		stopStarting()
		if err != nil && ctx.Err() != nil { // interrupted while starting
			cancelInst()
			log.Info("guest stopped while starting", "reason", context.Cause(ctx), "err", err)
			return nil
		}
		var exit *engine.ExitError
		if err != nil && (!errors.As(err, &exit) || !started && !retry) {
			cancelInst()
			return fmt.Errorf("serve: %w", err)
		}
		if err == nil {
			g.slots[id].started(inst)
			if !started {
				started = true
				first <- struct{}{}
			}
			select {
			case <-ctx.Done():
				if g.stop.Err() != nil {
					g.stopAccepting() // the final drain, not a reload's
				}
				err := g.drain(log, mod, inst)
				g.slots[id].stopped(inst, false, err)
				cancelInst()
				return err
			case <-inst.Done():
			}
			err = inst.Wait()
			g.slots[id].stopped(inst, true, err)
		}
		cancelInst()
		if ctx.Err() != nil { // it exited as the stop began
			return stopExit(log, err)
		}
		switch {
		case err == nil:
			log.Info("guest exited", "code", 0)
		case errors.As(err, &exit):
			log.Error("guest exited", "code", exit.Code, "trap", exit.Trap)
		}
		if !g.Restart || ctx.Err() != nil {
			if errors.As(err, &exit) {
				return loggedExit{exit}
			}
			return err
		}
		if time.Since(begun) > 10*MaxRestartBackoff {
			backoff = MinRestartBackoff // it ran for a while: not a crash loop
		}
		log.Warn("restarting guest", "restarts", restarts+1, "after", backoff)
		g.slots[id].restarts.Add(1)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, MaxRestartBackoff)
	}
}

// drain asks inst to finish its requests and exit, and stops it once
// DrainTimeout has passed.
func (g *Group) drain(log *slog.Logger, mod engine.Module, inst *engine.Instance) error {
	if !inst.Drain() {
		log.Info("this engine cannot stop the guest's listener: stopping the guest now", "engine", mod.Engine())
		return inst.Stop()
	}
	g.instancesDraining.Add(1)
	defer g.instancesDraining.Add(-1)
	timer := time.NewTimer(g.DrainTimeout)
	defer timer.Stop()
	select {
	case <-inst.Done():
		return stopExit(log, inst.Wait())
	case <-timer.C:
		log.Warn("drain timeout: stopping the guest with requests still in flight", "timeout", g.DrainTimeout)
		return inst.Stop()
	}
}

// stopExit is the result of a guest that ended after the stop began, its
// listener stopped: whatever its exit code, that is an ordinary end (a
// guest may well treat its failed accept as fatal, as
// log.Fatal(http.Serve(ln, h)) does), logged at info level and not
// returned. A trap is still an error.
func stopExit(log *slog.Logger, err error) error {
	var exit *engine.ExitError
	switch {
	case err == nil:
		log.Info("guest stopped", "drained", true)
		return nil
	case errors.As(err, &exit) && exit.Trap == "":
		log.Info("guest exited after the listener stopped", "code", exit.Code)
		return nil
	}
	return err
}

// loggedExit is a guest's exit that supervise has logged already, trap
// message included: its text gives only the code, so that the caller's
// own log of the error does not repeat the message.
type loggedExit struct{ exit *engine.ExitError }

func (e loggedExit) Error() string {
	return fmt.Sprintf("guest exited with code %d (logged above)", e.exit.Code)
}

func (e loggedExit) Unwrap() error { return e.exit }
