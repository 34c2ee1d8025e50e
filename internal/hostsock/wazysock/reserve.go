package wazysock

import (
	"github.com/samyfodil/wazy"
	wazysys "github.com/samyfodil/wazy/sys"
	"github.com/samyfodil/wazy/sysfs"
)

// ReservedGuestPath is the guest path of the placeholder preopen that
// Reserve adds. The guest never sees it: fd_prestat_get on its fd answers
// EBADF, which is where the guest's preopen scan stops.
const ReservedGuestPath = "/.wasiserve-listener"

// Reserve returns fs with one more preopen after its directories: a
// placeholder that holds the listener's fd number (3 + number of
// directories) in wazero's own fd table, so that wazero never hands that
// number out for a file the guest opens. Every call on that number reaches
// the Table instead, which owns it.
func Reserve(fs wazy.FSConfig) wazy.FSConfig {
	return fs.(sysfs.FSConfig).WithSysFSMount(reservedFS{}, ReservedGuestPath)
}

// reservedFS is the placeholder's file system: every operation fails with
// ENOSYS. (A struct embedding UnimplementedFS, not UnimplementedFS itself,
// which wazy would skip as "no file system".)
type reservedFS struct {
	wazysys.UnimplementedFS
}
