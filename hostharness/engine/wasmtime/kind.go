// Package wasmtime is the engine on wasmtime 42, embedded through cgo
// (wasmtime-go v42), with the project's host socket layer: wasmtime's own
// WASI preview 1 serves stdio, files and clock_res_get, package hostsock
// serves the guest's sockets through host functions that shadow
// wasmtime's, and the engine's C trampoline serves clock_time_get. Built without cgo, the package links nothing of wasmtime:
// its Kind reports the engine unavailable.
package wasmtime

import "github.com/wasiserve/wasiserve/hostharness/engine"

// Name is the engine's name.
const Name = "wasmtime"

// capabilities are the engine's: those of the host socket layer.
var capabilities = engine.HostSocketCapabilities

// Kind declares the wasmtime engine: the default wherever it is linked in
// (a small-echo request costs it the fewest instructions and the least CPU
// of the project's engines, docs/BENCHMARKS.md).
func Kind() engine.Kind {
	return engine.Kind{
		Name:         Name,
		Capabilities: capabilities,
		Rank:         30,
		Available:    available,
		New:          newEngine,
	}
}
