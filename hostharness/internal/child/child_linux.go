//go:build linux

package child

import "syscall"

// dieWithParent kills the child when the harness dies, so that no server
// outlives an interrupted test or bench.
func dieWithParent() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
