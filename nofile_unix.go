//go:build unix

package wasiserve

import "syscall"

// openFileLimit is the process's descriptor limit (RLIMIT_NOFILE, which
// Go raises to its hard limit at start), or 0 where it cannot tell.
func openFileLimit() uint64 {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil || lim.Cur <= 0 {
		return 0
	}
	// Rlimit's fields are int64 on some systems (freebsd), uint64 on others.
	return uint64(lim.Cur)
}
