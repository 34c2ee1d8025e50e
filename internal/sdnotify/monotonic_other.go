//go:build !linux

package sdnotify

// monotonicUsec is not read here (systemd runs on linux): RELOADING=1
// goes without it.
func monotonicUsec() (uint64, bool) { return 0, false }
