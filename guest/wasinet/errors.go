package wasinet

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"syscall"
	"time"
)

// deniedError is a connect the host's dial policy refused (EACCES).
type deniedError struct {
	// target is the address the guest dialled, as it wrote it (a name or
	// an IP); addr is the address connected to.
	target string
	addr   netip.AddrPort
	errno  error
}

func (e *deniedError) Error() string {
	to := e.addr.String()
	if e.target != to {
		to = e.target + " (" + to + ")"
	}
	// Go's wasip1 text for EACCES is "Permission denied"; this is Linux's.
	return fmt.Sprintf("connect: permission denied: the host's dial policy does not allow %s; with hostharness serve, allow it with --allow-dial %s",
		to, e.target)
}

// Unwrap returns the errno, so that errors.Is(err, fs.ErrPermission)
// holds.
func (e *deniedError) Unwrap() error { return e.errno }

// notFoundHint ends the message of a lookup that gave no address on
// wasip1, where a name the policy does not allow looks like one that does
// not exist.
const notFoundHint = "no such host (the host resolves only the names its dial policy allows; " +
	"with hostharness serve, allow one with --allow-dial NAME:PORT)"

// notFound is the error of a lookup of name that gave no address.
func notFound(name string) error {
	return &net.DNSError{Err: notFoundHint, Name: name, IsNotFound: true}
}

// target is a dial's address split into what a lookup and a connect need.
type target struct {
	// host is the host part (a name or an IP literal, no brackets).
	host string
	port uint16
	// ipNetwork is the lookup network: "ip", "ip4" or "ip6".
	ipNetwork string
}

// parseTarget checks network (tcp, tcp4, tcp6) and splits address into
// its host and port; a service name (e.g. "https") is looked up in Go's
// built-in table and the system's.
func parseTarget(network, address string) (target, error) {
	var t target
	switch network {
	case "tcp":
		t.ipNetwork = "ip"
	case "tcp4":
		t.ipNetwork = "ip4"
	case "tcp6":
		t.ipNetwork = "ip6"
	default:
		return t, net.UnknownNetworkError(network)
	}
	host, service, err := net.SplitHostPort(address)
	if err != nil {
		return t, err
	}
	if host == "" {
		return t, &net.AddrError{Err: "missing host", Addr: address}
	}
	port, err := strconv.ParseUint(service, 10, 16)
	if err != nil {
		p, lerr := net.LookupPort(network, service)
		if lerr != nil {
			return t, lerr
		}
		port = uint64(p)
	}
	t.host, t.port = host, uint16(port)
	return t, nil
}

// keep reports whether addr belongs to the lookup network ("ip", "ip4"
// or "ip6").
func keep(ipNetwork string, addr netip.Addr) bool {
	switch ipNetwork {
	case "ip4":
		return addr.Unmap().Is4()
	case "ip6":
		return addr.Is6() && !addr.Is4In6()
	}
	return true
}

// minAttemptTimeout is the least share of the time left that a dial gives
// one of several addresses, as package net does.
const minAttemptTimeout = 2 * time.Second

// attemptDeadline returns the deadline of the attempt on one of left
// addresses still to try: an even share of the time to ctx's deadline, at
// least minAttemptTimeout and never past the deadline. ok is false when
// ctx has no deadline.
func attemptDeadline(ctx context.Context, now time.Time, left int) (time.Time, bool) {
	deadline, ok := ctx.Deadline()
	if !ok || left <= 1 {
		return deadline, ok
	}
	share := deadline.Sub(now) / time.Duration(left)
	if share < minAttemptTimeout {
		share = min(minAttemptTimeout, deadline.Sub(now))
	}
	return now.Add(share), true
}

// probeError is ErrNoSocketExtensions with what showed it.
type probeError struct {
	call  string
	errno syscall.Errno
	// zero: the call succeeded without writing its result.
	zero bool
}

func (e *probeError) Error() string {
	if e.zero {
		return ErrNoSocketExtensions.Error() + " (" + e.call + " returned no socket)"
	}
	name := "ENOTSUP"
	if e.errno == syscall.ENOSYS {
		name = "ENOSYS" // Go's wasip1 text, "Not implemented on wasip1", would blame the guest
	}
	return ErrNoSocketExtensions.Error() + " (" + e.call + " answered " + name + ")"
}

func (e *probeError) Is(target error) bool { return target == ErrNoSocketExtensions }

// noSocketsErrno reports whether errno means that the runtime defines a
// socket extension only to refuse it.
func noSocketsErrno(errno syscall.Errno) bool {
	return errno == syscall.ENOSYS || errno == syscall.ENOTSUP
}
