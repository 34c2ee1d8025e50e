// Package builtin lists the engines built into wasiserve: the one place
// where an engine is registered. A program that imports it links every
// engine (wasmtime only when built with cgo); an embedder that wants fewer
// builds its own engine.Set from the engines' packages.
package builtin

import (
	"github.com/wasiserve/wasiserve/hostharness/engine"
	"github.com/wasiserve/wasiserve/hostharness/engine/cliengine"
	"github.com/wasiserve/wasiserve/hostharness/engine/wasmtime"
	"github.com/wasiserve/wasiserve/hostharness/engine/wazy"
)

// Engines returns every engine wasiserve has: the embedded wasmtime, wazy
// and wazy-sock, and the runtime CLIs.
func Engines() engine.Set {
	return append(engine.Set{wasmtime.Kind(), wazy.Kind(), wazy.SockKind()}, cliengine.Kinds()...)
}
