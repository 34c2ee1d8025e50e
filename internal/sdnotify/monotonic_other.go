//go:build !unix

package sdnotify

// monotonicUsec is not known here: RELOADING=1 goes without it.
func monotonicUsec() (uint64, bool) { return 0, false }
