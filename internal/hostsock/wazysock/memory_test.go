package wazysock

import (
	"testing"

	"github.com/wasiserve/wasiserve/internal/hostsock"
)

// TestUsesMemory: the functions that take a pointer are those whose
// delegate answers EFAULT to a module without memory; the others reach
// wazy's function as they are.
func TestUsesMemory(t *testing.T) {
	want := map[string]bool{
		"fd_write": true, "fd_read": true, "fd_fdstat_get": true, "poll_oneoff": true,
		"sock_recv": true, "sock_send": true, "sock_accept": true, "path_open": true,
		"path_symlink": true, "fd_readdir": true,
		"fd_close": false, "fd_fdstat_set_flags": false, "sock_shutdown": false,
		"fd_renumber": false, "fd_advise": false, "fd_sync": false,
	}
	seen := 0
	for _, f := range hostsock.Funcs() {
		w, ok := want[f.Name]
		if !ok {
			continue
		}
		seen++
		if got := usesMemory(f); got != w {
			t.Errorf("usesMemory(%s %v) = %v, want %v", f.Name, f.ParamNames, got, w)
		}
	}
	if seen != len(want) {
		t.Errorf("found %d of the %d functions in hostsock.Funcs", seen, len(want))
	}
}
