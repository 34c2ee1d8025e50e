package sdnotify

import (
	"crypto/rand"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// listen listens on a unixgram socket named name, as systemd does for a
// notify service, and returns a function that reads the next datagram.
func listen(t *testing.T, name string) (next func() string) {
	t.Helper()
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return func() string {
		t.Helper()
		buf := make([]byte, 4096)
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		return string(buf[:n])
	}
}

func TestNotifier(t *testing.T) {
	for _, tc := range []struct{ name, socket string }{
		{"path", filepath.Join(t.TempDir(), "notify")},
		{"abstract", "@wasiserve-sdnotify-test-" + rand.Text()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			next := listen(t, tc.socket)
			n, err := FromEnv(func(k string) string { return map[string]string{EnvVar: tc.socket}[k] })
			if err != nil || n == nil {
				t.Fatalf("FromEnv: %v, %v", n, err)
			}
			if err := n.Ready(); err != nil {
				t.Fatal(err)
			}
			if got := next(); got != "READY=1" {
				t.Errorf("Ready sent %q", got)
			}
			before, _ := monotonicUsec()
			if err := n.Reloading(); err != nil {
				t.Fatal(err)
			}
			after, _ := monotonicUsec()
			got := next()
			usecText, ok := strings.CutPrefix(got, "RELOADING=1\nMONOTONIC_USEC=")
			usec, err := strconv.ParseUint(usecText, 10, 64)
			if !ok || err != nil || usec < before || usec > after {
				t.Errorf("Reloading sent %q, want RELOADING=1 and MONOTONIC_USEC from %d to %d", got, before, after)
			}
			if err := n.Stopping(); err != nil {
				t.Fatal(err)
			}
			if got := next(); got != "STOPPING=1" {
				t.Errorf("Stopping sent %q", got)
			}
		})
	}
}

func TestFromEnv(t *testing.T) {
	for _, tc := range []struct {
		value   string
		wantNil bool
		wantErr string
	}{
		{"", true, ""},
		{"/run/systemd/notify", false, ""},
		{"@abstract", false, ""},
		{"@", true, "want the path"},
		{"vsock:2:1234", true, "want the path"},
		{"relative/notify", true, "want the path"},
	} {
		n, err := FromEnv(func(string) string { return tc.value })
		gotErr := ""
		if err != nil {
			gotErr = err.Error()
		}
		if (n == nil) != tc.wantNil || (err == nil) != (tc.wantErr == "") || !strings.Contains(gotErr, tc.wantErr) {
			t.Errorf("FromEnv(%q) = %v, %v; want nil %v, error %q", tc.value, n, err, tc.wantNil, tc.wantErr)
		}
	}
}

// TestNilNotifier: without NOTIFY_SOCKET every state change is a no-op.
func TestNilNotifier(t *testing.T) {
	var n *Notifier
	for _, f := range []func() error{n.Ready, n.Reloading, n.Stopping} {
		if err := f(); err != nil {
			t.Error(err)
		}
	}
}

// TestNoSupervisor: a socket nobody listens on is an error to report, not
// a hang.
func TestNoSupervisor(t *testing.T) {
	n, _ := FromEnv(func(string) string { return filepath.Join(t.TempDir(), "gone") })
	if err := n.Ready(); err == nil || !strings.Contains(err.Error(), "notify") {
		t.Errorf("Ready to a missing socket: %v", err)
	}
}

// fill sends datagrams to the unixgram socket at name until its queue is
// full (a send would block), as when the supervisor stopped reading.
func fill(t *testing.T, name string) {
	t.Helper()
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for i := 0; ; i++ {
		conn.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
		if _, err := conn.Write([]byte("FILLER=1")); err != nil {
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("filling the queue: %v", err)
			}
			if i == 0 {
				t.Fatal("the queue was full before the first datagram")
			}
			return
		}
		if i > 1<<20 {
			t.Fatal("the queue never filled")
		}
	}
}

// TestFullQueue: a supervisor that stopped reading (its socket's queue is
// full) makes each state change an error within WriteTimeout, not a
// hang.
func TestFullQueue(t *testing.T) {
	socket := filepath.Join(t.TempDir(), "notify")
	listen(t, socket) // never read
	fill(t, socket)
	n, err := Open(socket)
	if err != nil {
		t.Fatal(err)
	}
	for name, send := range map[string]func() error{"Ready": n.Ready, "Reloading": n.Reloading, "Stopping": n.Stopping} {
		done := make(chan error, 1)
		go func() { done <- send() }()
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), "notify") {
				t.Errorf("%s to a full queue: %v, want an error", name, err)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("%s to a full queue still blocked after 30s", name)
		}
	}
}
