//go:build linux

package builtin_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/wasiserve/wasiserve/hostharness/engine"
)

// TestCacheLinkRace: while another goroutine swaps the cache directory's
// path between a private directory of its own and a link to a planted
// cache (an atomic exchange, as fast as it can), 20 starts of a fresh
// engine each either refuse the link or run the guest's own code from the
// real directory: planted code never runs.
func TestCacheLinkRace(t *testing.T) {
	for _, name := range engines.EmbeddedNames() {
		t.Run(name, func(t *testing.T) {
			planted := plantedCache(t, name)
			root := t.TempDir()
			path, link := filepath.Join(root, "cache"), filepath.Join(root, "link")
			if err := os.Mkdir(path, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(planted, link); err != nil {
				t.Fatal(err)
			}
			stop, stopped := make(chan struct{}), make(chan error, 1)
			go func() {
				for {
					select {
					case <-stop:
						stopped <- nil
						return
					default:
					}
					if err := unix.Renameat2(unix.AT_FDCWD, path, unix.AT_FDCWD, link, unix.RENAME_EXCHANGE); err != nil {
						stopped <- err
						return
					}
				}
			}()
			refused, safe := 0, 0
			for range 20 {
				code, err := guestExit(t, name, path, exit7, nil)
				switch {
				case errors.Is(err, engine.ErrUnsafeCacheDir):
					refused++
				case err == nil && code == 7:
					safe++
				default:
					t.Errorf("start with a raced cache: exit %d (%v), want 7 or ErrUnsafeCacheDir", code, err)
				}
			}
			close(stop)
			if err := <-stopped; err != nil {
				t.Skipf("no atomic exchange of paths here: %v", err)
			}
			t.Logf("20 starts: %d refused the link, %d ran the guest's own code", refused, safe)
			if refused+safe != 20 {
				t.Errorf("%d refused + %d safe of 20", refused, safe)
			}
		})
	}
}
