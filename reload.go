package wasiserve

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/wasiserve/wasiserve/hostharness/engine"
	"github.com/wasiserve/wasiserve/hostharness/supervise"
	"github.com/wasiserve/wasiserve/internal/interrupt"
	"github.com/wasiserve/wasiserve/internal/metrics"
)

// watchDebounce is how long the guest file must stay unchanged after a
// change before --watch reloads it, so that a copy in progress is read
// once it is complete.
const watchDebounce = 250 * time.Millisecond

// reloader reloads the served guest from its path on request:
// Server.Reload, or a change of the file with Options.Watch.
type reloader struct {
	logger *slog.Logger
	eng    engine.Engine
	group  *supervise.Group
	path   string

	mu sync.Mutex
	// mod is the module serving now, which serve closes at the end.
	mod   engine.Module
	build metrics.Build
}

// newReloader returns the reloader of group, which serves mod (loaded by
// eng from path).
func newReloader(ctx context.Context, logger *slog.Logger, eng engine.Engine, group *supervise.Group, path string, mod engine.Module) *reloader {
	return &reloader{logger: logger, eng: eng, group: group, path: path, mod: mod,
		build: metrics.Build{Engine: eng.Name(), Guest: path, SHA256: fileHash(ctx, path)}}
}

// Stats implements metrics.Source.
func (r *reloader) Stats() supervise.Stats { return r.group.Stats() }

// Build implements metrics.Source.
func (r *reloader) Build() metrics.Build {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.build
}

// current returns the module serving now.
func (r *reloader) current() engine.Module {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.mod
}

// run reloads the guest at each request until ctx is done.
func (r *reloader) run(ctx context.Context, requests <-chan struct{}) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-requests:
			r.reload(ctx)
		}
	}
}

// reload loads the guest again and hands the listener over to it; on
// any failure the old guest keeps serving and the error is logged.
func (r *reloader) reload(ctx context.Context) {
	if !r.current().Capabilities().Has(engine.HostListener) {
		r.logger.Warn("reload ignored: it needs an engine with a host-owned listener", "engine", r.eng.Name())
		return
	}
	r.logger.Info("reload: loading the guest again", "wasm", r.path)
	began := time.Now()
	var hash string
	var mod engine.Module
	old, err := r.group.Reload(func() (engine.Module, error) {
		// The start's checks, on what is there now: a regular file of at
		// most MaxGuestSize, read with that bound. Neither the read nor
		// the compilation holds up the stop: ctx ends with it.
		m, err := interrupt.Run(ctx, "reloading the guest", func() (engine.Module, error) {
			wasm, err := engine.ReadModule(ctx, r.path)
			if err != nil {
				return nil, err
			}
			hash = sha256Hex(wasm) // then wasm is garbage: the engine reads the file itself
			return r.eng.Load(ctx, r.path)
		}, func(m engine.Module) { m.Close(context.WithoutCancel(ctx)) })
		mod = m
		return m, err
	})
	if err != nil {
		r.logger.Error("reload failed", "wasm", r.path, "err", err)
		return
	}
	r.mu.Lock()
	r.mod = mod
	r.build.SHA256 = hash
	r.mu.Unlock()
	if old != nil {
		old.Close(context.WithoutCancel(ctx))
	}
	releaseStartupMemory()
	r.logger.Info("reloaded", "wasm", r.path, "sha256", hash, "took", time.Since(began).Round(time.Millisecond))
}

// fileHash is the hex SHA-256 of the guest file at path, read as
// engine.ReadModule reads it, or "" if it cannot be read.
func fileHash(ctx context.Context, path string) string {
	wasm, err := engine.ReadModule(ctx, path)
	if err != nil {
		return ""
	}
	return sha256Hex(wasm)
}

// sha256Hex is the hex SHA-256 of data.
func sha256Hex(data []byte) string {
	h := sha256.Sum256(data)
	return hex.EncodeToString(h[:])
}

// reloadRequests merges asks (Server.Reload) and, with watch, changes of
// the file at path into one channel of reload requests, until ctx is done.
func reloadRequests(ctx context.Context, logger *slog.Logger, asks <-chan struct{}, path string, watch bool) (<-chan struct{}, error) {
	out := make(chan struct{}, 1)
	request := func() {
		select {
		case out <- struct{}{}:
		default: // one is pending already
		}
	}
	var events <-chan fsnotify.Event
	var errs <-chan error
	if watch {
		w, err := fsnotify.NewWatcher()
		if err != nil {
			return nil, err
		}
		// The directory, not the file: an editor or a deploy replaces the
		// file by a rename, which a watch on the old file would miss.
		if err := w.Add(filepath.Dir(path)); err != nil {
			w.Close()
			return nil, err
		}
		context.AfterFunc(ctx, func() { w.Close() })
		events, errs = w.Events, w.Errors
	}
	target := filepath.Clean(path)
	go func() {
		debounce := time.NewTimer(0)
		<-debounce.C
		for {
			select {
			case <-ctx.Done():
				debounce.Stop()
				return
			case <-asks:
				logger.Info("reload requested")
				request()
			case ev, ok := <-events:
				if !ok {
					events = nil
					continue
				}
				if filepath.Clean(ev.Name) == target && ev.Op&(fsnotify.Write|fsnotify.Create|fsnotify.Rename) != 0 {
					debounce.Reset(watchDebounce)
				}
			case <-debounce.C:
				logger.Info("guest file changed: reload requested", "wasm", path)
				request()
			case err, ok := <-errs:
				if !ok {
					errs = nil
					continue
				}
				if !errors.Is(err, fsnotify.ErrEventOverflow) {
					logger.Warn("watching the guest file", "err", err)
				}
				debounce.Reset(watchDebounce) // events may have been lost
			}
		}
	}()
	return out, nil
}
