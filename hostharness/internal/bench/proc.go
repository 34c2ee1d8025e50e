package bench

import (
	"bytes"
	"fmt"
	"strconv"
	"time"
)

// Usage is what a process tree has consumed of the host.
type Usage struct {
	// CPU is user plus system time of the process, its live descendants
	// and the children it has waited for.
	CPU time.Duration
	// PeakRSS is the sum of the peak resident set sizes (VmHWM) of the
	// process and its live descendants, in bytes.
	PeakRSS int64
}

// clockTick is the unit of /proc/PID/stat times: USER_HZ, which Linux
// fixes at 100 for user space on every architecture Go supports.
const clockTick = 10 * time.Millisecond

// procStat holds the fields of /proc/PID/stat the bench needs.
type procStat struct {
	PPID int
	// CPU is utime+stime+cutime+cstime.
	CPU time.Duration
}

// parseStat parses the contents of /proc/PID/stat. The command name may
// hold spaces and parentheses, so fields are counted from its last ')'.
func parseStat(data []byte) (procStat, error) {
	end := bytes.LastIndexByte(data, ')')
	if end < 0 {
		return procStat{}, fmt.Errorf("parse stat: no command name in %q", truncate(data))
	}
	// After ")": state(3) ppid(4) ... utime(14) stime(15) cutime(16) cstime(17).
	fields := bytes.Fields(data[end+1:])
	if len(fields) < 15 {
		return procStat{}, fmt.Errorf("parse stat: %d fields after the command name, want at least 15", len(fields))
	}
	ppid, err := strconv.Atoi(string(fields[1]))
	if err != nil {
		return procStat{}, fmt.Errorf("parse stat ppid: %w", err)
	}
	var ticks int64
	for _, f := range fields[11:15] {
		n, err := strconv.ParseInt(string(f), 10, 64)
		if err != nil {
			return procStat{}, fmt.Errorf("parse stat times: %w", err)
		}
		ticks += n
	}
	return procStat{PPID: ppid, CPU: time.Duration(ticks) * clockTick}, nil
}

// parseHWM returns VmHWM, in bytes, from the contents of /proc/PID/status.
func parseHWM(data []byte) (int64, error) {
	return parseStatusKB(data, "VmHWM")
}

// parseStatusKB returns the field (VmHWM, VmRSS, ...), a size in kB, in
// bytes from the contents of /proc/PID/status.
func parseStatusKB(data []byte, field string) (int64, error) {
	for line := range bytes.Lines(data) {
		rest, ok := bytes.CutPrefix(line, []byte(field+":"))
		if !ok {
			continue
		}
		f := bytes.Fields(rest)
		if len(f) != 2 || string(f[1]) != "kB" {
			return 0, fmt.Errorf("parse status: unexpected %s line %q", field, bytes.TrimSpace(line))
		}
		kb, err := strconv.ParseInt(string(f[0]), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("parse status %s: %w", field, err)
		}
		return kb << 10, nil
	}
	return 0, fmt.Errorf("parse status: no %s line", field)
}

func truncate(b []byte) []byte {
	if len(b) > 80 {
		return b[:80]
	}
	return b
}
