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
	wm := mod.(*wazeroModule)
	return &wasiserveModule{wazeroModule: wm, proxy: exportsProxy(wm.compiled.ExportedFunctions())}, nil
}

// wasiserveModule runs a compiled guest with a host-owned listener.
type wasiserveModule struct {
	*wazeroModule
	// proxy: the guest reads PROXY headers (it exports
	// wasisock.ProxyExport), so the host tells it its addresses.
	proxy bool
}

// Run serves cfg.Listener, or binds cfg.Listen itself, and gives the
// listener to the guest at cfg.ListenerFD(), after the preopened
// directories. A guest that reads PROXY headers gets one at the start of
// each connection, with its addresses (see tellAddrs).
func (m *wasiserveModule) Run(ctx context.Context, cfg Config) error {
	var err error
	ln := cfg.Listener
	if ln == nil {
		if ln, err = net.Listen("tcp", cfg.Listen); err != nil {
			return fmt.Errorf("%s: listen %s: %w", Wasiserve, cfg.Listen, err)
		}
		defer ln.Close()
	}
	table, err := hostsock.NewTable(ctx, ln, cfg.ListenerFD())
	if err != nil {
		return fmt.Errorf("%s: %w", Wasiserve, err)
	}
	table.LimitConns(cfg.MaxConns)
	defer func() {
		if err := table.Close(); err != nil {
			cfg.logger().Warn("closing guest sockets", "engine", Wasiserve, "err", err)
		}
	}()
	if err := table.SetPolicy(hostsock.Policy{Dial: cfg.AllowDial, Listen: cfg.AllowListen, Logger: cfg.logger()}); err != nil {
		return fmt.Errorf("%s: %w", Wasiserve, err)
	}
	tellAddrs(&cfg, m.proxy, table, ln)
	modCfg, closeFS, err := m.moduleConfig(cfg, wazerosock.Reserve)
	if err != nil {
		return err
	}
	defer closeFS()
	if cfg.onReady != nil {
		defer afterClose(table.Ready(), cfg.onReady)()
	}
	defer afterClose(cfg.Drain, func() {
		table.Drain()
		if cfg.Listener == nil { // a lent listener is its owner's to stop
			if err := StopAccepting(ln); err != nil {
				cfg.logger().Warn("draining: the listener still queues connections", "engine", Wasiserve, "err", err)
			}
		}
	})()
	return m.instantiate(wazerosock.WithTable(ctx, table), modCfg)
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
