//go:build !cgo

package engine

import (
	"context"
	"errors"
)

// wasmtimeAvailable reports that the embedded wasmtime engine is linked in.
const wasmtimeAvailable = false

// wasmtimeOwnsSockets reports that this build's wasmtime engine serves
// sockets with hostsock.
const wasmtimeOwnsSockets = false

// wasmtimeName is the name this build gives its embedded wasmtime engine.
const wasmtimeName = Wasmtime

func newWasmtimeEmbedded(context.Context, Options) (Engine, error) {
	return nil, errors.New("engine wasmtime: this binary was built without cgo (CGO_ENABLED=0); rebuild with cgo and gcc, or use --engine wazero")
}
