//go:build !linux

package engine

import (
	"errors"
	"fmt"
	"runtime"
)

// errNoStopListening says why listeners cannot be stopped in place here.
var errNoStopListening = errors.New("stopping a listener without closing it is implemented on linux only, not " + runtime.GOOS)

// tuneListener is a no-op where listening sockets cannot be found and
// their options inherited portably.
func tuneListener(string) error { return nil }

func stopListeningAt(addr string) error {
	return fmt.Errorf("stop listening on %s: %w", addr, errNoStopListening)
}
