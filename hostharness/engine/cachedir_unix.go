//go:build unix

package engine

import (
	"fmt"
	"os"
	"syscall"
)

// privateDir checks that dir is owned by this user and not writable by
// its group or others.
func privateDir(_ string, info os.FileInfo) error {
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	if uid := os.Getuid(); int(st.Uid) != uid {
		return fmt.Errorf("owned by uid %d, not this user (uid %d)", st.Uid, uid)
	}
	if perm := info.Mode().Perm(); perm&0o022 != 0 {
		return fmt.Errorf("mode %04o lets others write to it", perm)
	}
	return nil
}
