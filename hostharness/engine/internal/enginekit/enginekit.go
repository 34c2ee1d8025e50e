// Package enginekit holds what the engine implementations share: the host
// socket table of a run whose host owns the sockets, the address contract
// with the guest shim, and small helpers. It is not API.
package enginekit

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/wasiserve/wasiserve/hostharness/engine"
	"github.com/wasiserve/wasiserve/internal/hostsock"
)

// HostTable gives the guest cfg.Listener at cfg.ListenerFD() in a new
// hostsock Table set up as cfg says: connection limit, socket policy, the
// ready report, stats and drain. The listener is its owner's to stop:
// Drain only ends the accepts. Call the returned function once the guest
// has stopped: it closes the table. engineName prefixes errors and logs.
func HostTable(ctx context.Context, engineName string, cfg engine.Config) (*hostsock.Table, func(), error) {
	table, err := hostsock.NewTable(ctx, cfg.Listener, cfg.ListenerFD())
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", engineName, err)
	}
	closeTable := func() {
		if err := table.Close(); err != nil {
			cfg.Log().Warn("closing guest sockets", "engine", engineName, "err", err)
		}
	}
	table.LimitConns(cfg.MaxConns)
	if cfg.OnStats != nil {
		cfg.OnStats(table.Stats)
	}
	if err := table.SetPolicy(hostsock.Policy{Dial: cfg.AllowDial, Listen: cfg.AllowListen, Logger: cfg.Log()}); err != nil {
		closeTable()
		return nil, nil, fmt.Errorf("%s: %w", engineName, err)
	}
	if err := trustProxyFrom(table, cfg); err != nil {
		closeTable()
		return nil, nil, fmt.Errorf("%s: %w", engineName, err)
	}
	stopReady := func() {}
	if cfg.OnReady != nil {
		stopReady = afterClose(table.Ready(), cfg.OnReady)
	}
	stopDrain := afterClose(cfg.Drain, table.Drain)
	return table, func() {
		stopDrain()
		stopReady()
		closeTable()
	}, nil
}

// afterClose runs f in a goroutine of its own once ch is closed, unless
// stop is called first. A nil ch never closes.
func afterClose(ch <-chan struct{}, f func()) (stop func()) {
	done := make(chan struct{})
	go func() {
		select {
		case <-ch:
			f()
		case <-done:
		}
	}()
	return func() { close(done) }
}

// WriterOrDiscard is w, or io.Discard when w is nil.
func WriterOrDiscard(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}

// SplitEnv splits a "KEY=VALUE" entry that Config.Check accepted.
func SplitEnv(kv string) (key, value string) {
	key, value, _ = strings.Cut(kv, "=")
	return key, value
}
