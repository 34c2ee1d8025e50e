// Package wasisock gives a guest its listening socket as a net.Listener.
//
// On GOOS=wasip1 a module cannot call net.Listen: the host must preopen the
// listening socket. Listen finds it, either from the systemd convention
// (LISTEN_FDS, LISTEN_FDNAMES) or by scanning the guest's file descriptors for
// a stream socket, skipping preopened directories, so it works whatever fd
// number the host gave it (3, 4, ...). On every other GOOS the same call
// inherits LISTEN_FDS sockets or listens on an address, so one main package
// serves natively and under a WebAssembly runtime.
//
// # Addresses
//
// WASI preview 1 cannot tell a guest the addresses of its sockets, so
// RemoteAddr, LocalAddr and Addr are empty there, unless the host tells
// them. On WASI this package exports ProxyExport (wasiserve_proxy_v2),
// announcing that Listen reads PROXY protocol v2 headers. A host that owns
// the accepts (hostharness's wasmtime and wazy engines) then writes one at the
// start of every connection it accepts on the preopened listener, before
// any byte of the client, and sets:
//
//	WASISERVE_PROXY=v2                     (EnvProxy: headers are sent)
//	WASISERVE_LISTEN_ADDR=127.0.0.1:8080   (EnvListenAddr: the bound address;
//	                                        also [::1]:8080 or unix:/run/app.sock)
//
// Listen then reports the header's addresses as each connection's
// RemoteAddr and LocalAddr, and EnvListenAddr as the listener's Addr. The
// host removes operator values of both variables, so they always say what
// it does: without EnvProxy no header is parsed, and with it the host's
// header precedes the client's bytes, so a client cannot pass a header of
// its own. Natively both variables are ignored.
package wasisock

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"syscall"

	"github.com/wasiserve/wasiserve/internal/activation"
)

// Source says how a listener was obtained.
type Source string

const (
	// SourceListenFDs is a socket passed by the systemd convention LISTEN_FDS.
	SourceListenFDs Source = "LISTEN_FDS"
	// SourceScan is a preopened socket found by scanning file descriptors.
	SourceScan Source = "scan"
	// SourceAddress is a socket the process bound itself (native builds only).
	SourceAddress Source = "address"
)

// DefaultAddr is the address a native build listens on when none is given.
const DefaultAddr = "127.0.0.1:8080"

// firstListenFD is the first file descriptor after stdin, stdout and stderr,
// where both systemd and WASI hosts place inherited sockets.
const firstListenFD = activation.FirstFD

// Config says where to look for the listener.
type Config struct {
	// Addr is the address a native build listens on when no socket is
	// inherited: "host:port" (TCP) or "unix:/path". Empty means DefaultAddr.
	// WASI builds ignore it: they cannot bind sockets themselves.
	Addr string
	// Name selects, among several LISTEN_FDS sockets, the one whose
	// LISTEN_FDNAMES entry matches. Empty means the first.
	Name string
	// Getenv reads the environment; nil means os.Getenv. Tests replace it.
	Getenv func(string) string
}

func (c Config) getenv(key string) string {
	if c.Getenv != nil {
		return c.Getenv(key)
	}
	return os.Getenv(key)
}

// Info describes the listener that Listen returned.
type Info struct {
	// Source says how the socket was obtained.
	Source Source `json:"source"`
	// FD is the socket's file descriptor in this process, or -1 when the
	// process bound the socket itself.
	FD int `json:"fd"`
	// Name is the socket's LISTEN_FDNAMES entry, if any.
	Name string `json:"name,omitempty"`
	// Addr is the listening address as far as it is known: on WASI, only
	// a host that sets EnvListenAddr tells it; it is empty otherwise.
	Addr string `json:"addr,omitempty"`
}

// Drained reports whether err, from Accept or from http.Server.Serve,
// means that the host stopped the listener to drain this process: accept
// answers EINVAL, as Linux's accept(2) does on a socket that no longer
// listens (wasiserve's hosts stop listeners that way, natively and on
// WASI). The process should then finish the requests it has and exit.
func Drained(err error) bool {
	return errors.Is(err, syscall.EINVAL)
}

// ErrNoListener is returned (wrapped) when no listening socket was found.
var ErrNoListener = errors.New("no listening socket")

// Listen returns the process's listening socket and how it was found. On
// WASI, a host that owns the accepts may tell the guest its addresses (see
// ProxyExport): the listener's Addr and its connections' RemoteAddr and
// LocalAddr are then the real ones.
func Listen(cfg Config) (net.Listener, Info, error) {
	ln, info, err := listen(cfg)
	if err != nil || !hostTellsAddrs {
		return ln, info, err
	}
	told, err := fromHost(cfg, ln)
	if err != nil {
		ln.Close()
		return nil, Info{}, err
	}
	info.Addr = addrString(told)
	return told, info, nil
}

// listen finds the listener: LISTEN_FDS, or the platform's default.
func listen(cfg Config) (net.Listener, Info, error) {
	if fds, ok, err := listenFDs(cfg); err != nil {
		return nil, Info{}, err
	} else if ok {
		return pickListenFD(cfg, fds)
	}
	return listenDefault(cfg)
}

// listenFDs parses the systemd socket-activation variables. ok is false when
// they are absent or meant for another process.
func listenFDs(cfg Config) ([]activation.FD, bool, error) {
	return activation.Parse(cfg.getenv, checkListenPID)
}

// pickListenFD wraps the LISTEN_FDS socket that cfg.Name selects.
func pickListenFD(cfg Config, fds []activation.FD) (net.Listener, Info, error) {
	for _, fd := range fds {
		if cfg.Name != "" && fd.Name != cfg.Name {
			continue
		}
		ln, err := fileListener(fd.FD, fd.Name)
		if err != nil {
			return nil, Info{}, fmt.Errorf("LISTEN_FDS socket fd %d: %w", fd.FD, err)
		}
		return ln, Info{Source: SourceListenFDs, FD: fd.FD, Name: fd.Name, Addr: addrString(ln)}, nil
	}
	return nil, Info{}, fmt.Errorf("LISTEN_FDNAMES has no socket named %q: %w", cfg.Name, ErrNoListener)
}

// addrString is the listener's address, or "" where the platform does not know it.
func addrString(ln net.Listener) string {
	addr := ln.Addr()
	if addr == nil {
		return ""
	}
	if tcp, ok := addr.(*net.TCPAddr); ok && tcp.IP == nil && tcp.Port == 0 {
		return ""
	}
	return addr.String()
}

// fileListenerName is the os.File name given to an inherited socket.
func fileListenerName(fd int, name string) string {
	if name != "" {
		return name
	}
	return "listener-fd-" + strconv.Itoa(fd)
}
