package listener

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    Spec
		wantErr string
	}{
		{in: "127.0.0.1:8080", want: Spec{Kind: TCP, Addr: "127.0.0.1:8080"}},
		{in: ":0", want: Spec{Kind: TCP, Addr: ":0"}},
		{in: "[::1]:0", want: Spec{Kind: TCP, Addr: "[::1]:0"}},
		{in: "localhost:80", want: Spec{Kind: TCP, Addr: "localhost:80"}},
		{in: "unix:/run/echo.sock", want: Spec{Kind: Unix, Addr: "/run/echo.sock"}},
		{in: "systemd", want: Spec{Kind: Systemd}},
		{in: "systemd:http", want: Spec{Kind: Systemd, Name: "http"}},
		{in: "unix:", wantErr: "empty path"},
		{in: "unix:@abstract", wantErr: "abstract"},
		{in: "systemd:", wantErr: "systemd:NAME"},
		{in: "8080", wantErr: "want host:port"},
		{in: "127.0.0.1:http", wantErr: "not a number"},
		{in: "127.0.0.1:70000", wantErr: "not a number"},
		{in: "a b:80", wantErr: "neither an IP"},
		{in: "", wantErr: "want host:port"},
	} {
		got, err := Parse(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Parse(%q) = %v, %v; want an error containing %q", tc.in, got, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("Parse(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
		if round, err := Parse(got.String()); err != nil || round != got {
			t.Errorf("Parse(%q.String() = %q) = %+v, %v", tc.in, got.String(), round, err)
		}
	}
}

// TestOpenTCP: a TCP listener accepts, has TCP_NODELAY for accepted
// sockets, and a port in use fails at Open.
func TestOpenTCP(t *testing.T) {
	spec, _ := Parse("127.0.0.1:0")
	ln, err := spec.Open(os.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	busy, _ := Parse(ln.Addr().String())
	if ln2, err := busy.Open(os.Getenv); err == nil {
		ln2.Close()
		t.Fatalf("a second Open of %s succeeded", busy)
	} else if !strings.Contains(err.Error(), "address already in use") {
		t.Errorf("port in use: %v", err)
	}
	err = rawControl(ln, func(fd int) error {
		v, err := syscall.GetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY)
		if err == nil && v == 0 {
			t.Error("listener has no TCP_NODELAY")
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := Served(ln); got != "http://"+ln.Addr().String() {
		t.Errorf("Served = %q", got)
	}
}

// TestStopAccepting: a stopped listener refuses new clients and its
// accept fails, while it stays open.
func TestStopAccepting(t *testing.T) {
	for _, network := range []string{"tcp", "unix"} {
		t.Run(network, func(t *testing.T) {
			text := "127.0.0.1:0"
			if network == "unix" {
				text = "unix:" + filepath.Join(t.TempDir(), "s.sock")
			}
			spec, _ := Parse(text)
			ln, err := spec.Open(os.Getenv)
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			if err := StopAccepting(ln); err != nil {
				t.Fatal(err)
			}
			if c, err := net.DialTimeout(network, ln.Addr().String(), time.Second); err == nil {
				c.Close()
				t.Error("a stopped listener took a connection")
			}
		})
	}
}

// TestStaleSocket: a socket file nothing listens on is replaced; a live
// one and a regular file are left alone.
func TestStaleSocket(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "stale.sock")
	old, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	old.(*net.UnixListener).SetUnlinkOnClose(false)
	old.Close() // leaves the file, as a crash would
	spec, _ := Parse("unix:" + path)
	ln, err := spec.Open(os.Getenv)
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	if _, err := spec.Open(os.Getenv); err == nil {
		t.Error("a live socket was replaced")
	}
	ln.Close()
	file := filepath.Join(dir, "file")
	os.WriteFile(file, nil, 0o600)
	if ln, err := (Spec{Kind: Unix, Addr: file}).Open(os.Getenv); err == nil {
		ln.Close()
		t.Error("a regular file was replaced")
	}
}

// TestOpenSystemd: no passed socket is a clear error.
func TestOpenSystemd(t *testing.T) {
	env := map[string]string{"LISTEN_FDS": "1", "LISTEN_PID": "1"}
	_, err := Spec{Kind: Systemd}.Open(func(k string) string { return env[k] })
	if err == nil || !strings.Contains(err.Error(), "LISTEN_PID="+strconv.Itoa(os.Getpid())) {
		t.Errorf("Open(systemd) with another pid's sockets = %v", err)
	}
}
