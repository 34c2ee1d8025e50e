package engine

import (
	"context"
	"fmt"
	"net"

	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/wasiserve/wasiserve/hostharness/internal/hostsock"
	"github.com/wasiserve/wasiserve/hostharness/internal/hostsock/wazerosock"
)

// Wasiserve is the engine that runs guests on wazero with wasiserve's own
// host socket layer (package hostsock): the host binds and owns the
// listener and the accepted connections, and a guest waiting for them
// blocks in the kernel instead of spinning.
const Wasiserve = "wasiserve"

// wasiserveEngine is a wazero runtime whose wasi_snapshot_preview1 module
// has hostsock's socket functions in place of wazero's.
type wasiserveEngine struct {
	*wazeroEngine
}

// newWasiserve builds the wazero engine (same runtime configuration and
// compilation cache) and swaps its wasi_snapshot_preview1 module for
// hostsock's, which wraps wazero's functions.
func newWasiserve(ctx context.Context, opts Options) (Engine, error) {
	if err := hostsock.Supported(); err != nil {
		return nil, fmt.Errorf("engine %s: %w", Wasiserve, err)
	}
	// The guest is stopped at its next call of a hostsock function rather
	// than by checks in compiled code (see hostsock's Table).
	we, err := newWazeroEngine(ctx, opts, false)
	if err != nil {
		return nil, err
	}
	if wasi := we.runtime.Module(wasi_snapshot_preview1.ModuleName); wasi != nil {
		if err := wasi.Close(ctx); err != nil {
			we.Close(ctx)
			return nil, fmt.Errorf("%s: replace wazero's WASI module: %w", Wasiserve, err)
		}
	}
	if _, err := wazerosock.Instantiate(ctx, we.runtime); err != nil {
		we.Close(ctx)
		return nil, fmt.Errorf("%s: %w", Wasiserve, err)
	}
	return &wasiserveEngine{we}, nil
}

func (e *wasiserveEngine) Name() string { return Wasiserve }

func (e *wasiserveEngine) Load(ctx context.Context, path string) (Module, error) {
	mod, err := e.wazeroEngine.Load(ctx, path)
	if err != nil {
		return nil, err
	}
	return &wasiserveModule{mod.(*wazeroModule)}, nil
}

// wasiserveModule runs a compiled guest with a host-owned listener.
type wasiserveModule struct {
	*wazeroModule
}

// Run serves cfg.Listener, or binds cfg.Listen itself, and gives the
// listener to the guest at cfg.ListenerFD(), after the preopened
// directories.
func (m *wasiserveModule) Run(ctx context.Context, cfg Config) error {
	modCfg, closeFS, err := m.moduleConfig(cfg, wazerosock.Reserve)
	if err != nil {
		return err
	}
	defer closeFS()
	table, closeTable, err := hostTable(ctx, Wasiserve, cfg)
	if err != nil {
		return err
	}
	defer closeTable()
	return m.instantiate(wazerosock.WithTable(ctx, table), modCfg)
}

// hostTable gives the guest cfg.Listener, or a listener it binds at
// cfg.Listen, at cfg.ListenerFD() in a new hostsock Table set up as cfg
// says: connection limit, socket policy, the ready report and drain. Call
// the returned function once the guest has stopped: it closes the table
// and a listener it bound. engineName prefixes errors and logs.
func hostTable(ctx context.Context, engineName string, cfg Config) (*hostsock.Table, func(), error) {
	ln := cfg.Listener
	closeListener := func() {}
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", cfg.Listen); err != nil {
			return nil, nil, fmt.Errorf("%s: listen %s: %w", engineName, cfg.Listen, err)
		}
		closeListener = func() { ln.Close() }
	}
	table, err := hostsock.NewTable(ctx, ln, cfg.ListenerFD())
	if err != nil {
		closeListener()
		return nil, nil, fmt.Errorf("%s: %w", engineName, err)
	}
	closeTable := func() {
		if err := table.Close(); err != nil {
			cfg.logger().Warn("closing guest sockets", "engine", engineName, "err", err)
		}
		closeListener()
	}
	table.LimitConns(cfg.MaxConns)
	if err := table.SetPolicy(hostsock.Policy{Dial: cfg.AllowDial, Listen: cfg.AllowListen, Logger: cfg.logger()}); err != nil {
		closeTable()
		return nil, nil, fmt.Errorf("%s: %w", engineName, err)
	}
	stopReady := func() {}
	if cfg.onReady != nil {
		stopReady = afterClose(table.Ready(), cfg.onReady)
	}
	stopDrain := afterClose(cfg.Drain, func() {
		table.Drain()
		if cfg.Listener == nil { // a lent listener is its owner's to stop
			if err := StopAccepting(ln); err != nil {
				cfg.logger().Warn("draining: the listener still queues connections", "engine", engineName, "err", err)
			}
		}
	})
	return table, func() {
		stopDrain()
		stopReady()
		closeTable()
	}, nil
}

// reportsReady: Run calls cfg.onReady when the guest first waits for a
// connection.
func (m *wasiserveModule) reportsReady() {}

// drains: Run acts on cfg.Drain.
func (m *wasiserveModule) drains() {}

// withWasiserve appends the wasiserve engine to names where its host
// socket layer runs (linux).
func withWasiserve(names []string) []string {
	if hostsock.Supported() != nil {
		return names
	}
	return append(names, Wasiserve)
}
