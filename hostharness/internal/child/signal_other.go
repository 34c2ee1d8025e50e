//go:build plan9 || windows

package child

import "os/exec"

// endedBySIGTERM is false: there is no SIGTERM status here.
func endedBySIGTERM(*exec.ExitError) bool { return false }
