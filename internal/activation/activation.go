// Package activation reads systemd's socket-activation convention
// (sd_listen_fds(3)): LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES describe
// listening sockets passed to a process from fd 3 upward. The guest shim
// (guest/wasisock) and the host (hostharness) both read it here, so that
// they agree on what it means.
package activation

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
)

// FirstFD is the first passed descriptor, after stdin, stdout and stderr.
const FirstFD = 3

// maxFDs bounds LISTEN_FDS.
const maxFDs = 1 << 16

// Vars are the variables of the convention.
var Vars = []string{"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"}

// FD is one passed socket.
type FD struct {
	// FD is its descriptor number.
	FD int
	// Name is its LISTEN_FDNAMES entry (FileDescriptorName= in the
	// .socket unit), or "".
	Name string
}

// Parse reads the convention through getenv. With checkPID, sockets meant
// for another process (LISTEN_PID is set and is not this one) are
// ignored, as sd_listen_fds does; a WASI guest, whose pid means nothing to
// its host, passes false. ok is false when no socket was passed.
//
// Values that do not parse are an error, never read as "no socket": a
// LISTEN_FDS that is not a count (-1, 1x) and, with checkPID, a
// LISTEN_PID that is set but is not a pid. A LISTEN_FDS without
// LISTEN_PID is taken as meant for this process (a runtime that lends a
// guest its sockets sets no pid); ForThisProcess, the host's check, is
// stricter.
func Parse(getenv func(string) string, checkPID bool) (fds []FD, ok bool, err error) {
	return parse(getenv, checkPID, false)
}

// parse is Parse; strict (with checkPID) also refuses one of LISTEN_FDS
// and LISTEN_PID set without the other.
func parse(getenv func(string) string, checkPID, strict bool) (fds []FD, ok bool, err error) {
	countText, pidText := getenv("LISTEN_FDS"), getenv("LISTEN_PID")
	if checkPID && strict {
		switch {
		case countText == "" && pidText != "":
			return nil, false, fmt.Errorf("LISTEN_PID=%q but LISTEN_FDS is not set: want both (socket activation) or neither", pidText)
		case countText != "" && pidText == "":
			return nil, false, fmt.Errorf("LISTEN_FDS=%q but LISTEN_PID is not set: want both (socket activation) or neither", countText)
		}
	}
	if countText == "" {
		return nil, false, nil
	}
	count, err := strconv.Atoi(countText)
	if err != nil || count < 0 || count > maxFDs || countText[0] == '+' {
		return nil, false, fmt.Errorf("LISTEN_FDS=%q: want a count of sockets, 0 to %d", countText, maxFDs)
	}
	if checkPID && pidText != "" {
		pid, err := strconv.Atoi(pidText)
		if err != nil || pid <= 0 || pidText[0] == '+' {
			return nil, false, fmt.Errorf("LISTEN_PID=%q: want the pid of the process the sockets are for", pidText)
		}
		if pid != os.Getpid() {
			return nil, false, nil // meant for another process
		}
	}
	if count == 0 {
		return nil, false, nil
	}
	var names []string
	if n := getenv("LISTEN_FDNAMES"); n != "" {
		names = strings.Split(n, ":")
	}
	for i := range count {
		fd := FD{FD: FirstFD + i}
		if i < len(names) {
			fd.Name = names[i]
		}
		fds = append(fds, fd)
	}
	return fds, true, nil
}

// ForThisProcess reports whether sockets were passed to this process:
// LISTEN_FDS is a positive count and LISTEN_PID is this process's pid.
// Variables that do not parse, and one of the two set without the other,
// are an error.
func ForThisProcess(getenv func(string) string) (bool, error) {
	_, ok, err := parse(getenv, true, true)
	return ok, err
}

// IsVar reports whether key is one of Vars.
func IsVar(key string) bool { return slices.Contains(Vars, key) }

// Without drops the convention's variables from env ("KEY=VALUE"
// entries): they describe one process's descriptors, not another's.
func Without(env []string) []string {
	var out []string
	for _, kv := range env {
		key, _, _ := strings.Cut(kv, "=")
		if !IsVar(key) {
			out = append(out, kv)
		}
	}
	return out
}

// Hidden wraps getenv so that the convention's variables read as unset.
func Hidden(getenv func(string) string) func(string) string {
	return func(key string) string {
		if IsVar(key) {
			return ""
		}
		return getenv(key)
	}
}
