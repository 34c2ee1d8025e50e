package engine

import (
	"context"
	"fmt"

	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/wasiserve/wasiserve/hostharness/internal/hostsock"
	"github.com/wasiserve/wasiserve/hostharness/internal/hostsock/wazerosock"
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
		return nil, fmt.Errorf("engine %s: %w", Wazero, err)
	}
	// The guest is stopped at its next call of a hostsock function rather
	// than by checks in compiled code (see hostsock's Table).
	we, err := newWazeroEngine(ctx, Wazero, opts, false)
	if err != nil {
		return nil, err
	}
	if wasi := we.runtime.Module(wasi_snapshot_preview1.ModuleName); wasi != nil {
		if err := wasi.Close(ctx); err != nil {
			we.Close(ctx)
			return nil, fmt.Errorf("%s: replace wazero's WASI module: %w", Wazero, err)
		}
	}
	if _, err := wazerosock.Instantiate(ctx, we.runtime); err != nil {
		we.Close(ctx)
		return nil, fmt.Errorf("%s: %w", Wazero, err)
	}
	return &wasiserveEngine{we}, nil
}

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

// Run serves cfg.Listener, giving it to the guest at cfg.ListenerFD(),
// after the preopened directories.
func (m *wasiserveModule) Run(ctx context.Context, cfg Config) error {
	modCfg, closeFS, err := m.moduleConfig(cfg, wazerosock.Reserve)
	if err != nil {
		return err
	}
	defer closeFS()
	table, err := hostsock.NewTable(ctx, cfg.Listener, cfg.ListenerFD())
	if err != nil {
		return fmt.Errorf("%s: %w", Wazero, err)
	}
	table.LimitConns(cfg.MaxConns)
	cfg.reportStats(table)
	defer func() {
		if err := table.Close(); err != nil {
			cfg.logger().Warn("closing guest sockets", "engine", Wazero, "err", err)
		}
	}()
	if err := table.SetPolicy(hostsock.Policy{Dial: cfg.AllowDial, Listen: cfg.AllowListen, Logger: cfg.logger()}); err != nil {
		return fmt.Errorf("%s: %w", Wazero, err)
	}
	if cfg.onReady != nil {
		defer afterClose(table.Ready(), cfg.onReady)()
	}
	// The listener is its owner's to stop: Drain only ends the accepts.
	defer afterClose(cfg.Drain, table.Drain)()
	return m.instantiate(wazerosock.WithTable(ctx, table), modCfg)
}

func (m *wasiserveModule) Engine() string { return Wazero }
