package compare

import (
	"context"
	"time"

	"github.com/wasiserve/wasiserve/hostharness/internal/child"
)

// Native is the echo guest built for the host, running as its own process:
// the reference every wasm target is compared with.
type Native struct {
	*child.Process
}

// nativeStartTimeout bounds how long the native guest may take to log its
// address.
const nativeStartTimeout = 30 * time.Second

// StartNative runs the native guest binary bin on 127.0.0.1:0 with exactly
// the environment env (the same as the wasm targets get) and returns once
// it has logged the address it serves on. Stop ends it with SIGTERM, on
// which the guest drains.
func StartNative(ctx context.Context, bin string, env []string) (*Native, error) {
	p, err := child.Start(ctx, "native guest "+bin, child.Spec{
		Binary: bin,
		Args:   []string{"-listen", "127.0.0.1:0"},
		Env:    append([]string{}, env...),
		Addr:   child.EchoGuestAddr,
	}, nativeStartTimeout)
	if err != nil {
		return nil, err
	}
	return &Native{p}, nil
}
