//go:build !linux

package listener

import (
	"errors"
	"fmt"
	"net"
	"runtime"
)

// errNoStopListening says why listeners cannot be stopped in place here.
var errNoStopListening = errors.New("stopping a listener without closing it is implemented on linux only, not " + runtime.GOOS)

// noDelay is left to the platform's defaults.
func noDelay(net.Listener) error { return nil }

// StopAccepting makes ln refuse new connections without closing it; see
// the linux version. Elsewhere it reports that it cannot.
func StopAccepting(ln net.Listener) error {
	return fmt.Errorf("stop listening on %s: %w", ln.Addr(), errNoStopListening)
}
