//go:build !wasip1

package wasisock

import (
	"fmt"
	"net"
	"os"
	"strings"
)

// checkListenPID is true where LISTEN_PID can be compared with our pid.
const checkListenPID = true

// fileListener wraps an inherited socket. net.FileListener dups the fd, so
// the original is closed here.
func fileListener(fd int, name string) (net.Listener, error) {
	f := os.NewFile(uintptr(fd), fileListenerName(fd, name))
	if f == nil {
		return nil, fmt.Errorf("fd %d is not valid", fd)
	}
	defer f.Close()
	return net.FileListener(f)
}

// listenDefault binds cfg.Addr, since a native process can.
func listenDefault(cfg Config) (net.Listener, Info, error) {
	addr := cfg.Addr
	if addr == "" {
		addr = DefaultAddr
	}
	network := "tcp"
	if path, ok := strings.CutPrefix(addr, "unix:"); ok {
		network, addr = "unix", path
	}
	ln, err := net.Listen(network, addr)
	if err != nil {
		return nil, Info{}, fmt.Errorf("listen: %w", err)
	}
	return ln, Info{Source: SourceAddress, FD: -1, Addr: addrString(ln)}, nil
}

// hostTellsAddrs is false natively: the process has the addresses of its
// own sockets, and no host writes headers before the client's bytes.
const hostTellsAddrs = false
