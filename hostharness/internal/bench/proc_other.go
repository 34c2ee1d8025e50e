//go:build !linux

package bench

import "errors"

// errUnsupported explains why the bench cannot run on this system.
var errUnsupported = errors.New("bench: per-process CPU time and peak RSS are read from Linux /proc; run the bench on Linux")

func treeUsage(pid int) (Usage, error) {
	return Usage{}, errUnsupported
}

func treeFootprint(pid int) (int64, int, error) {
	return 0, 0, errUnsupported
}

func cpuModel() string      { return "" }
func kernelRelease() string { return "" }
