//go:build !cgo

package wasmtime

import (
	"context"
	"errors"

	"github.com/wasiserve/wasiserve/hostharness/engine"
)

// errNoCgo says why the engine cannot run in this build.
var errNoCgo = errors.New("this binary was built without cgo (CGO_ENABLED=0); rebuild with cgo and gcc, or use the wazy engine")

func available() error { return errNoCgo }

func newEngine(context.Context, engine.Options) (engine.Engine, error) { return nil, errNoCgo }
