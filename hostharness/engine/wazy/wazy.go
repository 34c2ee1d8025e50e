// Package wazy holds the pure-Go engines, on wazy (a fork of wazero, with
// wazero's API, whose compiled code yields to Go's scheduler):
//
//   - Kind, "wazy": the project's host socket layer (package hostsock)
//     in place of wazy's socket functions: the host owns the listener
//     and every connection, and an idle guest blocks in the kernel;
//   - SockKind, "wazy-sock": wazy's own experimental/sock listener, as in
//     wazero, kept as a reference peer for compare and bench: the runtime
//     binds the socket, and its poll_oneoff keeps a core busy while the
//     guest is idle.
package wazy

import (
	"context"
	"fmt"

	"github.com/samyfodil/wazy"
	"github.com/samyfodil/wazy/api"

	"github.com/wasiserve/wasiserve/hostharness/engine"
	"github.com/wasiserve/wasiserve/hostharness/engine/internal/enginekit"
	"github.com/wasiserve/wasiserve/internal/hostsock"
	"github.com/wasiserve/wasiserve/internal/hostsock/wazysock"
	"github.com/wasiserve/wasiserve/internal/linmem"
)

// Name is the name of the engine on the host socket layer.
const Name = "wazy"

// Kind declares the wazy engine: every capability of the host socket
// layer, where that layer runs (linux), ranked after wasmtime.
func Kind() engine.Kind {
	return engine.Kind{
		Name:         Name,
		FormerNames:  []string{"wasiserve", "wazero"},
		Capabilities: engine.HostSocketCapabilities,
		Rank:         20,
		Available:    hostsock.Supported,
		New:          newHostSock,
	}
}

// hostSockEngine is a wazy runtime whose wasi_snapshot_preview1 module
// has hostsock's socket functions in place of wazy's.
type hostSockEngine struct {
	*runtime
	// memoryLimit caps each instance's linear memory, in bytes, through
	// its allocator (0: wasm32's 4 GiB).
	memoryLimit int64
}

// newHostSock builds a wazy runtime whose wasi_snapshot_preview1 module
// is hostsock's, which wraps wazy's functions.
func newHostSock(ctx context.Context, opts engine.Options) (engine.Engine, error) {
	// The guest is stopped at its next call of a hostsock function rather
	// than by checks in compiled code (see hostsock's Table).
	rt, err := newRuntime(ctx, Name, opts, false, func(ctx context.Context, rt wazy.Runtime) error {
		_, err := wazysock.Instantiate(ctx, rt)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", Name, err)
	}
	return &hostSockEngine{runtime: rt, memoryLimit: max(opts.Budget().MemoryBytes(), 0)}, nil
}

func (e *hostSockEngine) Load(ctx context.Context, path string) (engine.Module, error) {
	mod, err := e.runtime.load(ctx, path)
	if err != nil {
		return nil, err
	}
	return &hostSockModule{module: mod, memoryLimit: uint64(e.memoryLimit), proxy: enginekit.ExportsProxy(mod.compiled.ExportedFunctions())}, nil
}

// hostSockModule runs a compiled guest with a host-owned listener.
type hostSockModule struct {
	*module
	memoryLimit uint64 // the engine's
	// proxy: the guest reads PROXY headers (it exports
	// wasisock.ProxyExport), so the host tells it its addresses.
	proxy bool
}

// Run serves cfg.Listener, giving it to the guest at cfg.ListenerFD(),
// after the preopened directories. A guest that reads PROXY headers gets
// one at the start of each connection, with its addresses (TellAddrs).
func (m *hostSockModule) Run(ctx context.Context, cfg engine.Config) error {
	if err := cfg.Check(); err != nil {
		return err
	}
	table, closeTable, err := enginekit.HostTable(ctx, Name, cfg)
	if err != nil {
		return err
	}
	defer closeTable()
	told := enginekit.TellAddrs(m.proxy, table, cfg.Listener)
	modCfg, closeFS, err := m.moduleConfig(cfg, told, wazysock.Reserve)
	if err != nil {
		return err
	}
	defer closeFS()
	// The guest's memory lives outside the host's Go heap (see linmem),
	// capped by the budget, and goes back to the system once the run has
	// ended, even when the guest failed to instantiate, which leaves the
	// instance unclosed.
	alloc, freeMemory := linmem.Allocator(m.memoryLimit)
	defer freeMemory()
	ctx = api.WithMemoryAllocator(ctx, alloc)
	return m.instantiate(wazysock.WithTable(ctx, table), modCfg)
}

func (m *hostSockModule) Engine() string { return Name }

func (m *hostSockModule) Capabilities() engine.Capabilities { return engine.HostSocketCapabilities }
