//go:build linux

package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// errUnsupported is nil where per-process CPU and memory can be read.
var errUnsupported error

// treeUsage sums the usage of pid and its live descendants, read from /proc.
func treeUsage(pid int) (Usage, error) {
	pids, err := descendants(pid)
	if err != nil {
		return Usage{}, err
	}
	var u Usage
	for i, p := range pids {
		st, hwm, err := readProc(p)
		if err != nil {
			if i > 0 && os.IsNotExist(err) {
				continue // a descendant exited meanwhile
			}
			return Usage{}, err
		}
		u.CPU += st.CPU
		u.PeakRSS += hwm
	}
	return u, nil
}

// readProc reads /proc/PID/stat and the VmHWM of /proc/PID/status.
func readProc(pid int) (procStat, int64, error) {
	dir := filepath.Join("/proc", strconv.Itoa(pid))
	data, err := os.ReadFile(filepath.Join(dir, "stat"))
	if err != nil {
		return procStat{}, 0, err
	}
	st, err := parseStat(data)
	if err != nil {
		return procStat{}, 0, fmt.Errorf("pid %d: %w", pid, err)
	}
	data, err = os.ReadFile(filepath.Join(dir, "status"))
	if err != nil {
		return procStat{}, 0, err
	}
	hwm, err := parseHWM(data)
	if err != nil {
		return procStat{}, 0, fmt.Errorf("pid %d: %w", pid, err)
	}
	return st, hwm, nil
}

// treeFootprint returns the resident memory and the open descriptors of pid
// and its live descendants, read from /proc.
func treeFootprint(pid int) (rss int64, fds int, err error) {
	pids, err := descendants(pid)
	if err != nil {
		return 0, 0, err
	}
	for i, p := range pids {
		dir := filepath.Join("/proc", strconv.Itoa(p))
		status, err := os.ReadFile(filepath.Join(dir, "status"))
		if err == nil {
			var n int64
			if n, err = parseStatusKB(status, "VmRSS"); err == nil {
				rss += n
			}
		}
		var entries []os.DirEntry
		if err == nil {
			entries, err = os.ReadDir(filepath.Join(dir, "fd"))
			fds += len(entries)
		}
		if err != nil {
			if i > 0 && os.IsNotExist(err) {
				continue // a descendant exited meanwhile
			}
			return 0, 0, fmt.Errorf("pid %d: %w", p, err)
		}
	}
	return rss, fds, nil
}

// descendants returns pid followed by all its live descendants, found by
// scanning the parent pid of every process in /proc.
func descendants(pid int) ([]int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	children := map[int][]int{}
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		data, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // exited meanwhile
		}
		st, err := parseStat(data)
		if err != nil {
			continue
		}
		children[st.PPID] = append(children[st.PPID], p)
	}
	out := []int{pid}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i]]...)
	}
	return out, nil
}

// cpuModel is the first "model name" of /proc/cpuinfo, or "".
func cpuModel() string {
	data, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	for line := range strings.Lines(string(data)) {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// kernelRelease is the running kernel's release, or "".
func kernelRelease() string {
	data, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(data))
}
