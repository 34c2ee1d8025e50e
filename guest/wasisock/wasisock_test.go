//go:build !wasip1

package wasisock

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func envMap(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestListenAddress(t *testing.T) {
	for _, tc := range []struct {
		name, addr, network string
	}{
		{"tcp port 0", "127.0.0.1:0", "tcp"},
		{"unix socket", "unix:" + filepath.Join(t.TempDir(), "echo.sock"), "unix"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, info, err := Listen(Config{Addr: tc.addr, Getenv: envMap(nil)})
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			if info.Source != SourceAddress || info.FD != -1 || info.Addr != ln.Addr().String() {
				t.Fatalf("info = %+v for %s", info, ln.Addr())
			}
			if ln.Addr().Network() != tc.network {
				t.Fatalf("network %s, want %s", ln.Addr().Network(), tc.network)
			}
			roundTrip(t, ln)
		})
	}
}

func TestListenAddressInUse(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	_, _, err = Listen(Config{Addr: taken.Addr().String(), Getenv: envMap(nil)})
	if err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("Listen on a taken port: %v", err)
	}
}

func TestListenFDNameNotFound(t *testing.T) {
	_, _, err := Listen(Config{Name: "admin", Getenv: envMap(map[string]string{"LISTEN_FDS": "1", "LISTEN_FDNAMES": "http"})})
	if !errors.Is(err, ErrNoListener) {
		t.Fatalf("err = %v, want ErrNoListener", err)
	}
}

// roundTrip accepts one connection on ln and checks bytes flow both ways.
func roundTrip(t *testing.T, ln net.Listener) {
	t.Helper()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		io.Copy(c, c)
	}()
	c, err := net.DialTimeout(ln.Addr().Network(), ln.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, "ping"); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("read %q, %v", buf, err)
	}
}

// childEnv marks the re-executed test binary that inherits a socket.
const childEnv = "WASISOCK_TEST_CHILD"

// TestInheritedSocket passes a real listening socket to a child process the
// way systemd does (fd 3, LISTEN_FDS=1) and checks the child serves on it.
func TestInheritedSocket(t *testing.T) {
	if os.Getenv(childEnv) != "" {
		t.Skip("running as the child of TestInheritedSocket")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^TestInheritedSocketChild$", "-test.v")
	cmd.Env = append(os.Environ(), childEnv+"=1", "LISTEN_FDS=1", "LISTEN_FDNAMES=web")
	cmd.ExtraFiles = []*os.File{f}
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	c, err := net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(20 * time.Second))
	got, err := io.ReadAll(c)
	c.Close()
	if err != nil || string(got) != "LISTEN_FDS fd=3 name=web" {
		t.Fatalf("child answered %q, %v; output:\n%s", got, err, out.String())
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("child: %v\n%s", err, out.String())
		}
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		t.Fatal("child did not exit")
	}
}

// TestInheritedSocketChild runs only inside the child process.
func TestInheritedSocketChild(t *testing.T) {
	if os.Getenv(childEnv) == "" {
		t.Skip("only meaningful as the child of TestInheritedSocket")
	}
	ln, info, err := Listen(Config{Name: "web"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(c, "%s fd=%d name=%s", info.Source, info.FD, info.Name)
	c.Close()
}
