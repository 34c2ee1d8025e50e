//go:build !plan9

package main

import (
	"os"
	"syscall"
)

// signalExitCode is the exit status of a process a signal ended:
// 128+signal, as the shell reports it.
func signalExitCode(s os.Signal) int {
	if n, ok := s.(syscall.Signal); ok {
		return 128 + int(n)
	}
	return 1
}
