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
	"sync"
	"time"

	"github.com/wasiserve/wasiserve/hostharness/engine"
	"github.com/wasiserve/wasiserve/hostharness/internal/listener"
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
	// Module is the compiled guest.
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
}

func (g *Group) logger() *slog.Logger {
	if g.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return g.Logger
}

// Run serves the instances until ctx is done (then it drains them) or
// every one has exited for good, and returns their errors joined. An
// instance that fails to start stops the others at once.
func (g *Group) Run(ctx context.Context) error {
	n := max(g.Instances, 1)
	if n > 1 && !engine.CapabilitiesOf(g.Module.Engine()).Has(engine.HostListener) {
		return engine.Check(g.Module.Engine(), engine.CapabilitiesOf(g.Module.Engine()), engine.HostListener)
	}
	// Instances outlive ctx by the drain; supervise stops them.
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	errs := make([]error, n)
	var wg sync.WaitGroup
	for id := range n {
		// One after another: each is ready before the next starts.
		first := make(chan struct{})
		wg.Go(func() { errs[id] = g.supervise(ctx, runCtx, id, first) })
		if _, ok := <-first; !ok {
			cancel() // one failed to start: stop the others at once
			wg.Wait()
			return errors.Join(errs...)
		}
	}
	if g.Ready != nil {
		g.Ready()
	}
	if n > 1 {
		g.logger().Info("instances share the listener", "instances", n, "at", listener.Served(g.Config.Listener))
	}
	stopDrain := context.AfterFunc(ctx, func() {
		g.logger().Info("draining", "reason", context.Cause(ctx), "timeout", g.DrainTimeout)
		if engine.CapabilitiesOf(g.Module.Engine()).Has(engine.HostListener) {
			if err := listener.StopAccepting(g.Config.Listener); err != nil {
				g.logger().Warn("draining: the listener still queues connections", "err", err)
			}
		}
	})
	defer stopDrain()
	wg.Wait()
	return errors.Join(errs...)
}

// supervise runs instance id: it serves the guest, restarts it after an
// exit when asked, and drains it when ctx is done. It sends on first once
// the instance first runs, or closes first if the guest cannot start.
func (g *Group) supervise(ctx, runCtx context.Context, id int, first chan<- struct{}) error {
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
		inst, err := engine.Serve(instCtx, g.Module, g.Config)
		stopStarting()
		if err != nil && ctx.Err() != nil { // interrupted while starting
			cancelInst()
			log.Info("guest stopped while starting", "reason", context.Cause(ctx), "err", err)
			return nil
		}
		var exit *engine.ExitError
		if err != nil && (!errors.As(err, &exit) || !started && !g.Restart) {
			cancelInst()
			return fmt.Errorf("serve: %w", err)
		}
		if err == nil {
			if !started {
				started = true
				first <- struct{}{}
			}
			select {
			case <-ctx.Done():
				err := g.drain(log, inst)
				cancelInst()
				return err
			case <-inst.Done():
			}
			err = inst.Wait()
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
			return err
		}
		if time.Since(begun) > 10*MaxRestartBackoff {
			backoff = MinRestartBackoff // it ran for a while: not a crash loop
		}
		log.Warn("restarting guest", "restarts", restarts+1, "after", backoff)
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
func (g *Group) drain(log *slog.Logger, inst *engine.Instance) error {
	if !inst.Drain() {
		log.Info("this engine cannot stop the guest's listener: stopping the guest now", "engine", g.Module.Engine())
		return inst.Stop()
	}
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
