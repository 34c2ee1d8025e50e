package supervise

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/wasiserve/wasiserve/hostharness/engine"
)

// Notifier is told around a reload (see Group.Notifier); the systemd
// notifier is one.
type Notifier interface {
	// Reloading is called when a reload begins.
	Reloading()
	// Ready is called when it has ended, whatever its result.
	Ready()
}

// ErrReloadNeedsHostListener is returned (wrapped) by Reload for an engine
// whose host does not own the listener: the old and the new guests cannot
// share it.
var ErrReloadNeedsHostListener = errors.New("reload needs an engine with a host-owned listener")

// errReloaded is the cause of draining the generation a Reload replaced.
var errReloaded = errors.New("reloaded: a new guest took over")

// Reload replaces the serving instances, without refusing a connection:
// it loads a module with load, starts Instances instances of it on the
// same listener and waits
// until each is ready (its first accept); then the old ones are drained
// (their accepts fail, so that the new ones take every connection still
// queued, and they finish their requests in flight) and stopped after
// DrainTimeout. The listener stays open throughout. When an instance of
// it fails to start (or load fails), those of it already started are
// drained, the old ones keep serving, Reload closes the new module and
// returns the error. Each call counts as a reload, ok or failed.
//
// On success Reload returns once the old instances have stopped, with
// their module, which the caller may then close; it is nil when one of
// them could not be stopped (so that its code stays mapped). Reloads are
// serialized; a Reload before Run is ready or after it returned fails.
func (g *Group) Reload(load func() (engine.Module, error)) (old engine.Module, err error) {
	g.reloading.Lock()
	defer g.reloading.Unlock()
	if g.Notifier != nil {
		g.Notifier.Reloading()
		defer g.Notifier.Ready()
	}
	defer func() {
		if err != nil {
			g.reloadsFailed.Add(1)
		} else {
			g.reloadsOK.Add(1)
		}
	}()
	g.mu.Lock()
	stop, runCtx, cur := g.stop, g.runCtx, g.current
	g.mu.Unlock()
	if cur == nil || stop.Err() != nil {
		return nil, errors.New("reload: the group is not serving")
	}
	if !cur.mod.Capabilities().Has(engine.HostListener) {
		return nil, fmt.Errorf("reload: engine %s: %w", cur.mod.Engine(), ErrReloadNeedsHostListener)
	}
	began := time.Now()
	mod, err := load()
	if err != nil {
		return nil, fmt.Errorf("reload: the old guest keeps serving: %w", err)
	}
	// The start is bounded by engine.ReadyTimeout, and by stop.
	gen, err := g.start(stop, runCtx, mod, false, nil)
	if gen == nil {
		mod.Close(context.WithoutCancel(stop))
		if err == nil {
			err = errors.New("the group stopped")
		}
		return nil, fmt.Errorf("reload: the old guest keeps serving: %w", err)
	}
	g.mu.Lock()
	g.current = gen
	g.mu.Unlock()
	g.logger().Info("reload: new guest ready, draining the old one", "instances", max(g.Instances, 1),
		"took", time.Since(began).Round(time.Millisecond), "timeout", g.DrainTimeout)
	cur.retire(errReloaded)
	<-cur.done
	err = errors.Join(cur.errs...)
	if errors.Is(err, engine.ErrNotStopped) {
		g.logger().Error("reload: an old guest did not stop", "err", err)
		return nil, nil
	}
	if err != nil {
		g.logger().Warn("reload: the old guest stopped with an error", "err", err)
	}
	return cur.mod, nil
}
