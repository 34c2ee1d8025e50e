package compare

import (
	"os/exec"
	"syscall"
)

// dieWithParent makes the reference process end with the harness, so that
// an interrupted comparison leaves no server behind.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
