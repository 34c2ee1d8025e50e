//go:build !linux

package child

import "syscall"

// dieWithParent has no portable equivalent of Linux's Pdeathsig.
func dieWithParent() *syscall.SysProcAttr { return nil }
