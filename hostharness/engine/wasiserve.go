package engine

import (
	"context"
	"fmt"

	"github.com/samyfodil/wazy/api"
	"github.com/samyfodil/wazy/imports/wasi_snapshot_preview1"

	"github.com/wasiserve/wasiserve/internal/hostsock"
	"github.com/wasiserve/wasiserve/internal/hostsock/wazysock"
	"github.com/wasiserve/wasiserve/internal/linmem"
)

// wasiserveEngine is a wazero runtime whose wasi_snapshot_preview1 module
// has hostsock's socket functions in place of wazero's.
type wasiserveEngine struct {
	*wazeroEngine
}

// newWazero builds the wazero engine (same runtime configuration and
// compilation cache) and swaps its wasi_snapshot_preview1 module for
// hostsock's, which wraps wazero's functions.
func newWazero(ctx context.Context, opts Options) (Engine, error) {
	if err := hostsock.Supported(); err != nil {
		return nil, fmt.Errorf("engine %s: %w", Wazy, err)
	}
	// The guest is stopped at its next call of a hostsock function rather
	// than by checks in compiled code (see hostsock's Table).
	we, err := newWazeroEngine(ctx, Wazy, opts)
	if err != nil {
		return nil, err
	}
	if wasi := we.runtime.Module(wasi_snapshot_preview1.ModuleName); wasi != nil {
		if err := wasi.Close(ctx); err != nil {
			we.Close(ctx)
			return nil, fmt.Errorf("%s: replace wazero's WASI module: %w", Wazy, err)
		}
	}
	if _, err := wazysock.Instantiate(ctx, we.runtime); err != nil {
		we.Close(ctx)
		return nil, fmt.Errorf("%s: %w", Wazy, err)
	}
	return &wasiserveEngine{we}, nil
}

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

// Run serves cfg.Listener, giving it to the guest at cfg.ListenerFD(),
// after the preopened directories. A guest that reads PROXY headers gets
// one at the start of each connection, with its addresses (tellAddrs).
func (m *wasiserveModule) Run(ctx context.Context, cfg Config) error {
	table, closeTable, err := hostTable(ctx, Wazy, cfg)
	if err != nil {
		return err
	}
	defer closeTable()
	tellAddrs(&cfg, m.proxy, table, cfg.Listener)
	modCfg, closeFS, err := m.moduleConfig(cfg, wazysock.Reserve)
	if err != nil {
		return err
	}
	defer closeFS()
	// The guest's memory lives outside the host's Go heap (see linmem),
	// and goes back to the system once the run has ended, even when the
	// guest failed to instantiate, which leaves the instance unclosed.
	alloc, freeMemory := linmem.Allocator()
	defer freeMemory()
	ctx = api.WithMemoryAllocator(ctx, alloc)
	return m.instantiate(wazysock.WithTable(ctx, table), modCfg)
}

func (m *wasiserveModule) Engine() string { return Wazy }

// hostTable gives the guest cfg.Listener at cfg.ListenerFD() in a new
// hostsock Table set up as cfg says: connection limit, socket policy, the
// ready report and drain. The listener is its owner's to stop: Drain only
// ends the accepts. Call the returned function once the guest has stopped:
// it closes the table. engineName prefixes errors and logs.
func hostTable(ctx context.Context, engineName string, cfg Config) (*hostsock.Table, func(), error) {
	table, err := hostsock.NewTable(ctx, cfg.Listener, cfg.ListenerFD())
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", engineName, err)
	}
	closeTable := func() {
		if err := table.Close(); err != nil {
			cfg.logger().Warn("closing guest sockets", "engine", engineName, "err", err)
		}
	}
	table.LimitConns(cfg.MaxConns)
	cfg.reportStats(table)
	if err := table.SetPolicy(hostsock.Policy{Dial: cfg.AllowDial, Listen: cfg.AllowListen, Logger: cfg.logger()}); err != nil {
		closeTable()
		return nil, nil, fmt.Errorf("%s: %w", engineName, err)
	}
	stopReady := func() {}
	if cfg.onReady != nil {
		stopReady = afterClose(table.Ready(), cfg.onReady)
	}
	stopDrain := afterClose(cfg.Drain, table.Drain)
	return table, func() {
		stopDrain()
		stopReady()
		closeTable()
	}, nil
}
