//go:build !linux

package engine

// tuneListener is a no-op where listening sockets cannot be found and
// their options inherited portably.
func tuneListener(string) error { return nil }
