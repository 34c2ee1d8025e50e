package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/wasiserve/wasiserve/hostharness/engine"
)

// restartBackoff bounds the pause between restarts of a failing guest.
const (
	minRestartBackoff = 50 * time.Millisecond
	maxRestartBackoff = time.Second
)

// group serves opts.instances instances of one guest on one listener. It
// restarts an instance that exits or traps when opts.restart is set, and
// when ctx is done (SIGINT, SIGTERM) it drains them all: the listener stops
// taking connections, each guest finishes its requests in flight and
// exits, and guests still running after opts.drainTimeout are stopped.
type group struct {
	env  *cliEnv
	mod  engine.Module
	cfg  engine.Config
	opts serveOptions
	path string
}

// run serves the instances until ctx is done or every one has exited for
// good, and returns their errors joined.
func (g *group) run(ctx context.Context) error {
	// Instances outlive ctx by the drain; supervise stops them.
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	errs := make([]error, g.opts.instances)
	var wg sync.WaitGroup
	var at string
	for id := range g.opts.instances {
		// One after another: each is ready before the next starts.
		first := make(chan *engine.Instance, 1)
		wg.Go(func() { errs[id] = g.supervise(ctx, runCtx, id, first) })
		inst, ok := <-first
		if !ok {
			cancel() // one failed to start: stop the others at once
			wg.Wait()
			return errors.Join(errs...)
		}
		at = "http://" + inst.Addr // as bound: 0.0.0.0 stays, unlike in URL
		if inst.Network == "unix" {
			at = inst.URL()
		}
	}
	fmt.Fprintf(g.env.stdout, "serving %s at %s (engine %s)\n", g.path, at, g.opts.engine)
	if g.opts.instances > 1 {
		g.env.logger.Info("instances share the listener", "instances", g.opts.instances, "at", at)
	}
	stopDrain := context.AfterFunc(ctx, func() {
		g.env.logger.Info("draining", "reason", context.Cause(ctx), "timeout", g.opts.drainTimeout)
		if g.cfg.Listener != nil {
			if err := engine.StopAccepting(g.cfg.Listener); err != nil {
				g.env.logger.Warn("draining: the listener still queues connections", "err", err)
			}
		}
	})
	defer stopDrain()
	wg.Wait()
	return errors.Join(errs...)
}

// supervise runs instance id: it serves the guest, restarts it after an
// exit when asked, and drains it when ctx is done. It sends the first
// running instance on first, or closes first if the guest cannot start.
func (g *group) supervise(ctx, runCtx context.Context, id int, first chan<- *engine.Instance) error {
	log := g.env.logger
	if g.opts.instances > 1 {
		log = log.With("instance", id)
	}
	defer func() {
		if first != nil { // it never ran: tell run
			close(first)
		}
	}()
	cfg := g.cfg
	backoff := minRestartBackoff
	for restarts := 0; ; restarts++ {
		begun := time.Now()
		// A signal while the guest starts stops it at once: there is
		// nothing to drain yet.
		instCtx, cancelInst := context.WithCancel(runCtx)
		stopStarting := context.AfterFunc(ctx, cancelInst)
		inst, err := engine.Serve(instCtx, g.mod, cfg)
		stopStarting()
		if err != nil {
			if ctx.Err() != nil { // interrupted while starting
				log.Info("guest stopped while starting", "reason", context.Cause(ctx), "err", err)
				return nil
			}
		}
		var exit *engine.ExitError
		if err != nil && (!errors.As(err, &exit) || first != nil && !g.opts.restart) {
			return fmt.Errorf("serve %s: %w", g.path, err)
		}
		if err == nil {
			if first != nil {
				first <- inst
				first = nil
				cfg.Listen = inst.Addr // restarts keep the address, even one picked for port 0
			}
			select {
			case <-ctx.Done():
				return g.drain(log, inst)
			case <-inst.Done():
			}
			err = inst.Wait()
		}
		cancelInst()
		switch {
		case err == nil:
			log.Info("guest exited", "code", 0)
		case errors.As(err, &exit):
			log.Error("guest exited", "code", exit.Code, "trap", exit.Trap)
		}
		if !g.opts.restart || ctx.Err() != nil {
			return err
		}
		if time.Since(begun) > 10*maxRestartBackoff {
			backoff = minRestartBackoff // it ran for a while: not a crash loop
		}
		log.Warn("restarting guest", "restarts", restarts+1, "after", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, maxRestartBackoff)
	}
}

// drain asks inst to finish its requests and exit, and stops it once
// opts.drainTimeout has passed.
func (g *group) drain(log *slog.Logger, inst *engine.Instance) error {
	if !inst.Drain() {
		log.Info("this engine cannot stop the guest's listener: stopping the guest now", "engine", g.opts.engine)
		return inst.Stop()
	}
	timer := time.NewTimer(g.opts.drainTimeout)
	defer timer.Stop()
	select {
	case <-inst.Done():
		err := inst.Wait()
		log.Info("guest stopped", "drained", true)
		return err
	case <-timer.C:
		log.Warn("drain timeout: stopping the guest with requests still in flight", "timeout", g.opts.drainTimeout)
		return inst.Stop()
	}
}
