//go:build !cgo

package engine

import (
	"context"
	"errors"
)

// wasmtimeAvailable reports that the embedded wasmtime engine is linked in.
const wasmtimeAvailable = false

// wasmtimeName is the name this build gives its embedded wasmtime engine.
const wasmtimeName = Wasmtime

// wasmtimeCapabilities are this build's wasmtime engine's: none, as it
// cannot run.
var wasmtimeCapabilities Capabilities

func newWasmtimeEmbedded(context.Context, Options) (Engine, error) {
	return nil, errors.New("engine wasmtime: this binary was built without cgo (CGO_ENABLED=0); rebuild with cgo and gcc, or use --engine wazy")
}
