//go:build unix

package main

import "syscall"

// openFileLimit is the process's descriptor limit (RLIMIT_NOFILE, which
// Go raises to its hard limit at start), or 0 where it cannot tell.
func openFileLimit() uint64 {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0
	}
	return lim.Cur
}
