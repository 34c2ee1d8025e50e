// Package sdnotify tells systemd, or any supervisor that speaks its notify
// protocol (sd_notify(3)), what the server is doing: each state change is
// one datagram to the Unix socket that $NOTIFY_SOCKET names.
//
// The protocol is a few lines, written out here rather than taken from a
// library: it also needs MONOTONIC_USEC beside RELOADING=1 for
// Type=notify-reload units, which the libraries leave to their callers.
package sdnotify

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"time"
)

// EnvVar is the variable naming the supervisor's socket: a path, or an
// abstract socket name starting with '@'.
const EnvVar = "NOTIFY_SOCKET"

// WriteTimeout bounds each send: a supervisor whose socket's queue is full
// (it stopped reading) makes the send an error after this long, never a
// wait that holds up a reload or the stop.
const WriteTimeout = time.Second

// Notifier sends state changes to the supervisor. The nil *Notifier, for
// a process with no supervisor listening, sends nothing. Its methods are
// safe for concurrent use.
type Notifier struct {
	addr *net.UnixAddr
}

// FromEnv returns a Notifier for the socket that EnvVar names in getenv,
// or nil when it is not set (see Open).
func FromEnv(getenv func(string) string) (*Notifier, error) {
	n, err := Open(getenv(EnvVar))
	if err != nil {
		return nil, fmt.Errorf("%s=%w", EnvVar, err)
	}
	return n, nil
}

// Open returns a Notifier for the socket name (a path, or an abstract
// socket name starting with '@'), or nil when name is empty. Any other
// value (systemd also knows vsock: addresses) is an error.
func Open(name string) (*Notifier, error) {
	switch {
	case name == "":
		return nil, nil
	case strings.HasPrefix(name, "/"), len(name) > 1 && name[0] == '@':
		// Go's net package maps a leading '@' to the abstract namespace.
		return &Notifier{addr: &net.UnixAddr{Name: name, Net: "unixgram"}}, nil
	}
	return nil, fmt.Errorf("%q: want the path of a Unix socket or an abstract name starting with @", name)
}

// Ready says that the server is serving: at start-up, and when a reload
// has finished.
func (n *Notifier) Ready() error { return n.send("READY=1") }

// Reloading says that a reload began; call Ready once it is done.
func (n *Notifier) Reloading() error {
	state := "RELOADING=1"
	if usec, ok := monotonicUsec(); ok {
		// Type=notify-reload units need the time the reload began.
		state += fmt.Sprintf("\nMONOTONIC_USEC=%d", usec)
	}
	return n.send(state)
}

// Stopping says that the server began to stop: at the signal, before
// any shutdown delay and the drain.
func (n *Notifier) Stopping() error { return n.send("STOPPING=1") }

// send sends state as one datagram, on a socket of its own, as
// sd_notify does, so that a supervisor that replaced its socket (systemd
// after daemon-reexec) still gets it.
func (n *Notifier) send(state string) error {
	if n == nil {
		return nil
	}
	conn, err := net.DialUnix("unixgram", nil, n.addr)
	if err != nil {
		return fmt.Errorf("notify %s: %w", n.addr.Name, err)
	}
	if err = conn.SetWriteDeadline(time.Now().Add(WriteTimeout)); err == nil {
		_, err = conn.Write([]byte(state))
	}
	if err = errors.Join(err, conn.Close()); err != nil {
		return fmt.Errorf("notify %s of %s: %w", n.addr.Name, strings.ReplaceAll(state, "\n", " "), err)
	}
	return nil
}
