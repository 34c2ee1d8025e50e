//go:build unix

package wasiserve_test

import (
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wasiserve/wasiserve"
	"github.com/wasiserve/wasiserve/hostharness/engine"
	"github.com/wasiserve/wasiserve/hostharness/engine/wazy"
	"github.com/wasiserve/wasiserve/internal/enginetest"
)

// waitReloads waits (bounded) until the server counted ok reloads that
// succeeded and failed that failed.
func (r *running) waitReloads(t *testing.T, ok, failed uint64) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		st := r.srv.Stats()
		if st.ReloadsOK == ok && st.ReloadsFailed == failed {
			return
		}
		if time.Now().After(deadline) || st.ReloadsOK > ok || st.ReloadsFailed > failed {
			t.Fatalf("reloads ok %d, failed %d; want %d, %d; log:\n%s", st.ReloadsOK, st.ReloadsFailed, ok, failed, r.log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// get checks that the server answers a GET of /healthz.
func (r *running) get(t *testing.T) {
	t.Helper()
	client := &http.Client{Timeout: 30 * time.Second}
	resp, err := client.Get(r.url + "/healthz")
	if err != nil {
		t.Fatalf("GET: %v; log:\n%s", err, r.log.String())
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET: %s", resp.Status)
	}
}

// TestReloadWithFullNotifySocket: a service manager that stopped reading
// its notify socket (the queue is full) neither holds up reloads nor the
// stop; each unanswered state is a warning.
func TestReloadWithFullNotifySocket(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: serves the echo guest")
	}
	socket := filepath.Join(t.TempDir(), "notify")
	sm, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: socket, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer sm.Close()
	fillDatagrams(t, socket)
	guest := filepath.Join(t.TempDir(), "app.wasm")
	copyFile(t, enginetest.Echo.Path(t), guest)
	r := startServer(t, wazy.Name, guest, wasiserve.Options{NotifySocket: socket})
	for i := range 2 {
		r.srv.Reload()
		r.waitReloads(t, uint64(i+1), 0)
	}
	r.get(t)
	r.stop(t)
	if !strings.Contains(r.log.String(), "cannot tell the service manager") {
		t.Errorf("no warning about the unanswered notify socket; log:\n%s", r.log.String())
	}
}

// fillDatagrams sends datagrams to the unixgram socket at name until its
// queue is full (a send would block).
func fillDatagrams(t *testing.T, name string) {
	t.Helper()
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for i := 0; i < 1<<20; i++ {
		conn.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
		if _, err := conn.Write([]byte("FILLER=1")); err != nil {
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("filling the queue: %v", err)
			}
			return
		}
	}
	t.Fatal("the queue never filled")
}

// TestReloadRefusesWhatStartRefuses: a reload applies the start's checks
// to the guest file, on each engine that reloads: a symlink to
// /dev/zero, a FIFO and an 8 GB sparse file are each refused at once
// with one line saying why (the old guest keeps serving), a later
// reload of a good file works, and a stop right after a refused reload
// ends Run promptly.
func TestReloadRefusesWhatStartRefuses(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: serves the echo guest on every engine")
	}
	for _, tc := range []struct {
		name  string
		plant func(t *testing.T, path string)
		want  string
	}{
		{"symlink to /dev/zero", func(t *testing.T, path string) {
			if err := os.Symlink("/dev/zero", path); err != nil {
				t.Fatal(err)
			}
		}, "not a regular file"},
		{"fifo", func(t *testing.T, path string) {
			if err := syscall.Mkfifo(path, 0o600); err != nil {
				t.Fatal(err)
			}
		}, "not a regular file"},
		{"8 GB sparse file", func(t *testing.T, path string) {
			f, err := os.Create(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if err := f.Truncate(8 << 30); err != nil { // no disk blocks
				t.Fatal(err)
			}
		}, "more than the 512 MiB a guest may be"},
	} {
		for _, name := range enginetest.Engines().With(engine.HostListener) {
			t.Run(tc.name+"/"+name, func(t *testing.T) {
				guest := filepath.Join(t.TempDir(), "app.wasm")
				copyFile(t, enginetest.Echo.Path(t), guest)
				r := startServer(t, name, guest, wasiserve.Options{})
				plant := func() {
					if err := os.Remove(guest); err != nil {
						t.Fatal(err)
					}
					tc.plant(t, guest)
				}
				plant()
				r.srv.Reload()
				r.waitReloads(t, 0, 1)
				if log := r.log.String(); !strings.Contains(log, tc.want) {
					t.Fatalf("the refused reload's log does not say %q:\n%s", tc.want, log)
				}
				t.Log(grepLine(r.log.String(), "reload failed"))
				r.get(t) // the old guest still serves
				os.Remove(guest)
				copyFile(t, enginetest.Echo.Path(t), guest)
				r.srv.Reload()
				r.waitReloads(t, 1, 1)
				r.get(t)
				plant()
				r.srv.Reload()
				r.stop(t)
			})
		}
	}
}

// grepLine is the first line of log that contains s.
func grepLine(log, s string) string {
	for line := range strings.Lines(log) {
		if strings.Contains(line, s) {
			return strings.TrimSpace(line)
		}
	}
	return ""
}
