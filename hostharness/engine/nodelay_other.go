//go:build !linux

package engine

// setListenerNoDelay is a no-op where listening sockets cannot be found
// and their options inherited portably.
func setListenerNoDelay(string) error { return nil }
