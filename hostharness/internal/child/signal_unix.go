//go:build !plan9 && !windows

package child

import (
	"os/exec"
	"syscall"
)

// endedBySIGTERM reports whether exit is that of a process SIGTERM ended.
func endedBySIGTERM(exit *exec.ExitError) bool {
	ws, ok := exit.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGTERM
}
