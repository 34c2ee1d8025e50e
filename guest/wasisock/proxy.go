package wasisock

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/pires/go-proxyproto"
)

// The address contract between a guest and a host that owns its accepts
// (see Addresses in the package documentation). Importing the package
// announces that the guest parses the headers: a guest that imports it but
// takes its listener without Listen (net.FileListener on the fd itself)
// would read the host's header as its client's first bytes.
const (
	// ProxyExport is the export by which a module announces that it
	// parses the PROXY protocol v2 headers of EnvProxy. The host never
	// calls it.
	ProxyExport = "wasiserve_proxy_v2"
	// EnvProxy, set to ProxyV2, says that every connection accepted on
	// the preopened listener starts with a PROXY protocol v2 header.
	EnvProxy = "WASISERVE_PROXY"
	// ProxyV2 is the value of EnvProxy for PROXY protocol version 2.
	ProxyV2 = "v2"
	// EnvListenAddr is the address the preopened listener is bound to,
	// in the syntax of Config.Addr: "127.0.0.1:8080", "[::1]:8080" or
	// "unix:/run/app.sock". Listen reports it as the listener's Addr.
	EnvListenAddr = "WASISERVE_LISTEN_ADDR"
)

// proxyHeaderTimeout bounds the wait for a connection's header. The host
// writes it before the connection reaches the guest, so it is there at
// once; the bound only keeps a broken host from holding a connection
// forever.
const proxyHeaderTimeout = 5 * time.Second

// hostListener is a listener whose address, and the addresses of whose
// connections, the host told.
type hostListener struct {
	net.Listener
	// addr is the bound address from EnvListenAddr; nil: the wrapped
	// listener's.
	addr net.Addr
	// proxy makes Accept expect a PROXY protocol v2 header.
	proxy bool
	// validate checks a connection's header.
	validate proxyproto.Validator
	// headerTimeout bounds the wait for a connection's header.
	headerTimeout time.Duration
}

// fromHost wraps ln, the preopened listener, as the environment says: with
// the bound address of EnvListenAddr, and reading the header of every
// connection when EnvProxy is ProxyV2. With neither variable set, ln is
// returned as it is.
func fromHost(cfg Config, ln net.Listener) (net.Listener, error) {
	proxy, addr, err := hostContract(cfg)
	if err != nil {
		return nil, err
	}
	if !proxy && addr == nil {
		return ln, nil
	}
	return newHostListener(ln, addr, proxy), nil
}

// hostContract parses EnvProxy and EnvListenAddr.
func hostContract(cfg Config) (proxy bool, addr net.Addr, err error) {
	switch v := cfg.getenv(EnvProxy); v {
	case "":
	case ProxyV2:
		proxy = true
	default:
		return false, nil, fmt.Errorf("%s=%q: this guest reads PROXY protocol %s headers only", EnvProxy, v, ProxyV2)
	}
	if v := cfg.getenv(EnvListenAddr); v != "" {
		if addr, err = parseListenAddr(v); err != nil {
			return false, nil, fmt.Errorf("%s=%q: %w", EnvListenAddr, v, err)
		}
	}
	return proxy, addr, nil
}

// parseListenAddr parses an EnvListenAddr value. Host names are refused:
// the host reports the address it bound, never a name to resolve.
func parseListenAddr(s string) (net.Addr, error) {
	if path, ok := strings.CutPrefix(s, "unix:"); ok {
		if path == "" {
			return nil, errors.New("want unix:/path")
		}
		return &net.UnixAddr{Name: path, Net: "unix"}, nil
	}
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return nil, fmt.Errorf("want IP:PORT, [IPv6]:PORT or unix:/path: %w", err)
	}
	return net.TCPAddrFromAddrPort(ap), nil
}

// newHostListener wraps ln; addr, if not nil, is its bound address, and
// proxy makes every accepted connection start with a PROXY header.
func newHostListener(ln net.Listener, addr net.Addr, proxy bool) *hostListener {
	return &hostListener{Listener: ln, addr: addr, proxy: proxy, validate: headerValidator(addr), headerTimeout: proxyHeaderTimeout}
}

// Addr is the bound address the host told, or the wrapped listener's.
func (l *hostListener) Addr() net.Addr {
	if l.addr != nil {
		return l.addr
	}
	return l.Listener.Addr()
}

// Accept returns the next connection. With a PROXY header expected, the
// header is read on the connection's first Read, Write, RemoteAddr or
// LocalAddr, by the goroutine that serves it, so that a slow connection
// never holds up Accept; a connection whose header is missing or invalid
// fails its first Read and Write (http.Server then closes it without a
// response) and keeps the empty WASI addresses.
func (l *hostListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if oe, ok := err.(*net.OpError); ok && l.addr != nil {
		oe.Addr = l.addr // "accept tcp 127.0.0.1:8080: ...", not "tcp :0"
	}
	if err != nil || !l.proxy {
		return c, err
	}
	return l.wrap(c), nil
}

// wrap makes c read its PROXY header before anything else.
func (l *hostListener) wrap(c net.Conn) net.Conn {
	return hostConn{proxyproto.NewConn(c,
		proxyproto.WithPolicy(proxyproto.REQUIRE),
		proxyproto.ValidateHeader(l.validate),
		proxyproto.SetReadHeaderTimeout(l.headerTimeout),
	)}
}

// hostConn is a connection whose addresses the host told. It keeps the
// half-closes of the connection it wraps: http.Server closes the write
// side first (CloseWrite) so that a client still sending gets the last
// response instead of a reset.
type hostConn struct {
	*proxyproto.Conn
}

// halfCloser is a connection that can close one direction.
type halfCloser interface {
	CloseRead() error
	CloseWrite() error
}

// CloseWrite shuts down the writing side of the connection.
func (c hostConn) CloseWrite() error {
	if hc, ok := c.Raw().(halfCloser); ok {
		return hc.CloseWrite()
	}
	return fmt.Errorf("close write: %T: %w", c.Raw(), errors.ErrUnsupported)
}

// CloseRead shuts down the reading side of the connection.
func (c hostConn) CloseRead() error {
	if hc, ok := c.Raw().(halfCloser); ok {
		return hc.CloseRead()
	}
	return fmt.Errorf("close read: %T: %w", c.Raw(), errors.ErrUnsupported)
}

// errHeader is the error of a header that is valid PROXY protocol but not
// what a host sends.
var errHeader = errors.New("wasisock: PROXY header not from a wasiserve host")

// headerValidator accepts exactly the headers a host writes for a
// listener bound to addr (nil: of either kind): version 2, command PROXY,
// a TCP stream over IPv4 or IPv6 for a TCP listener or a Unix stream for a
// Unix one, and no TLVs.
func headerValidator(addr net.Addr) proxyproto.Validator {
	return func(h *proxyproto.Header) error {
		if h.Version != 2 || h.Command != proxyproto.PROXY {
			return fmt.Errorf("%w: version %d, command %#x", errHeader, h.Version, byte(h.Command))
		}
		if !familyFits(h.TransportProtocol, addr) {
			return fmt.Errorf("%w: address family %#x for a listener on %v", errHeader, byte(h.TransportProtocol), addr)
		}
		if tlvs, err := h.TLVs(); err != nil || len(tlvs) > 0 {
			return fmt.Errorf("%w: TLVs after the addresses", errHeader)
		}
		return nil
	}
}

// familyFits reports whether a header's address family is one a listener
// bound to addr has.
func familyFits(f proxyproto.AddressFamilyAndProtocol, addr net.Addr) bool {
	tcp := f == proxyproto.TCPv4 || f == proxyproto.TCPv6
	unix := f == proxyproto.UnixStream
	switch addr.(type) {
	case *net.TCPAddr:
		return tcp
	case *net.UnixAddr:
		return unix
	default:
		return tcp || unix
	}
}
