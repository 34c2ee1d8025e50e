// Package listener is the one owner of a server's listening socket: it
// parses a --listen value once into a Spec, binds what the Spec names
// (TCP, a Unix socket, or a socket passed by systemd), tunes it as Go's
// own listeners are tuned, and stops it accepting for a graceful drain.
package listener

import (
	"fmt"
	"io/fs"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/wasiserve/wasiserve/internal/activation"
)

// Kind is what a Spec names.
type Kind uint8

const (
	// TCP is "host:port"; port 0 picks a free port.
	TCP Kind = iota + 1
	// Unix is "unix:/path", a Unix stream socket.
	Unix
	// Systemd is "systemd" or "systemd:NAME", a socket passed by systemd
	// socket activation (LISTEN_FDS), the one named NAME in LISTEN_FDNAMES.
	Systemd
)

// systemdPrefix is the Spec text of Systemd.
const systemdPrefix = "systemd"

// Spec is a parsed --listen value.
type Spec struct {
	Kind Kind
	// Addr is "host:port" for TCP and the socket's path for Unix.
	Addr string
	// Name is the LISTEN_FDNAMES entry for Systemd; "" is the first socket.
	Name string
}

// Parse parses "host:port", "unix:/path", "systemd" or "systemd:NAME".
func Parse(s string) (Spec, error) {
	switch {
	case s == systemdPrefix:
		return Spec{Kind: Systemd}, nil
	case strings.HasPrefix(s, systemdPrefix+":"):
		name := strings.TrimPrefix(s, systemdPrefix+":")
		if name == "" || strings.Contains(name, ":") {
			return Spec{}, fmt.Errorf("listen %q: want systemd or systemd:NAME (a FileDescriptorName=)", s)
		}
		return Spec{Kind: Systemd, Name: name}, nil
	case strings.HasPrefix(s, "unix:"):
		path := strings.TrimPrefix(s, "unix:")
		if path == "" {
			return Spec{}, fmt.Errorf("listen %q: want unix:/path/to/socket (an empty path would bind an abstract socket)", s)
		}
		if strings.HasPrefix(path, "@") || strings.ContainsRune(path, 0) {
			return Spec{}, fmt.Errorf("listen %q: abstract or NUL-containing socket names are not supported; want a file path", s)
		}
		return Spec{Kind: Unix, Addr: path}, nil
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return Spec{}, fmt.Errorf("listen %q: want host:port, unix:/path or systemd[:NAME]: %w", s, err)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return Spec{}, fmt.Errorf("listen %q: port %q is not a number from 0 to 65535", s, port)
	}
	if host != "" && net.ParseIP(host) == nil && !validHostName(host) {
		return Spec{}, fmt.Errorf("listen %q: host %q is neither an IP address nor a host name", s, host)
	}
	return Spec{Kind: TCP, Addr: net.JoinHostPort(host, port)}, nil
}

// validHostName reports whether h looks like a DNS name (letters, digits,
// hyphens and dots).
func validHostName(h string) bool {
	for _, r := range h {
		if !(r == '.' || r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return false
		}
	}
	return h != ""
}

// String is the Spec as Parse reads it.
func (s Spec) String() string {
	switch s.Kind {
	case Unix:
		return "unix:" + s.Addr
	case Systemd:
		if s.Name != "" {
			return systemdPrefix + ":" + s.Name
		}
		return systemdPrefix
	}
	return s.Addr
}

// HostOnly reports whether only a host that owns the listener can serve s:
// a Unix socket, or one from systemd, which no engine binds itself.
func (s Spec) HostOnly() bool { return s.Kind != TCP }

// Open binds what s names and returns the listener. getenv reads the
// socket-activation variables (for Systemd; the others ignore them). A
// Unix socket file that a crashed server left behind (nothing accepts on
// it) is replaced; a live socket or another file is left alone. TCP
// listeners get TCP_NODELAY, which Linux copies to every accepted socket,
// and Go's backlog (net.core.somaxconn).
func (s Spec) Open(getenv func(string) string) (net.Listener, error) {
	switch s.Kind {
	case Systemd:
		return openActivated(s, getenv)
	case Unix:
		if err := removeStaleSocket(s.Addr); err != nil {
			return nil, fmt.Errorf("listen %s: %w", s, err)
		}
		ln, err := net.Listen("unix", s.Addr)
		if err != nil {
			return nil, fmt.Errorf("listen %s: %w", s, err)
		}
		return ln, nil
	case TCP:
		ln, err := net.Listen("tcp", s.Addr)
		if err != nil {
			return nil, fmt.Errorf("listen %s: %w", s, err)
		}
		if err := noDelay(ln); err != nil {
			ln.Close()
			return nil, fmt.Errorf("listen %s: %w", s, err)
		}
		return ln, nil
	}
	return nil, fmt.Errorf("listen: empty spec")
}

// openActivated wraps the passed socket that s names.
func openActivated(s Spec, getenv func(string) string) (net.Listener, error) {
	fds, ok, err := activation.Parse(getenv, true)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", s, err)
	}
	if !ok {
		return nil, fmt.Errorf("listen %s: systemd passed no socket to this process (LISTEN_FDS, LISTEN_PID=%d)", s, os.Getpid())
	}
	for _, fd := range fds {
		if s.Name != "" && fd.Name != s.Name {
			continue
		}
		name := fd.Name
		if name == "" {
			name = "listen-fd-" + strconv.Itoa(fd.FD)
		}
		f := os.NewFile(uintptr(fd.FD), name)
		ln, err := net.FileListener(f)
		f.Close() // FileListener has a descriptor of its own
		if err != nil {
			return nil, fmt.Errorf("listen %s: fd %d: %w", s, fd.FD, err)
		}
		return ln, nil
	}
	return nil, fmt.Errorf("listen %s: LISTEN_FDNAMES has no socket named %q", s, s.Name)
}

// removeStaleSocket removes the Unix socket file at path when nothing
// listens on it any more (a server that crashed left it behind), so that
// binding it again works. A file that is not a socket, or a socket that
// still accepts, is left alone: binding then fails with the system's error.
func removeStaleSocket(path string) error {
	info, err := os.Lstat(path)
	if err != nil || info.Mode().Type() != fs.ModeSocket {
		return nil
	}
	conn, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		conn.Close()
		return nil
	}
	if !refused(err) {
		return nil
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("remove stale socket: %w", err)
	}
	return nil
}

// Served is how a listener's address is shown to a user: "http://ADDR" as
// bound (0.0.0.0 stays) for TCP, "unix:PATH" for a Unix socket.
func Served(ln net.Listener) string {
	if ln.Addr().Network() == "unix" {
		return "unix:" + ln.Addr().String()
	}
	return "http://" + ln.Addr().String()
}

// rawControl runs f on ln's socket descriptor.
func rawControl(ln net.Listener, f func(fd int) error) error {
	sc, ok := ln.(syscall.Conn)
	if !ok {
		return fmt.Errorf("%T has no socket", ln)
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := raw.Control(func(fd uintptr) { ferr = f(int(fd)) }); err != nil {
		return err
	}
	return ferr
}
