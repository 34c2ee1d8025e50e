// Package wasinet connects a wasip1 guest to the network outside: TCP
// dials (IPv4 and IPv6), name lookups done by the host, an http.Transport
// and the dial and lookup functions that database drivers take. Natively
// (GOOS other than wasip1) the same calls are package net's, so that one
// main package runs both ways.
//
// Go's own wasip1 net package cannot reach out: it is an in-process fake
// network, on which every dial to a real address fails with "connection
// refused". On wasip1 this package dials with the WasmEdge socket
// extensions (sock_open, sock_connect, sock_getaddrinfo, ...), through
// github.com/stealthrocket/net/wasip1, and resolves names with the host's
// sock_getaddrinfo, so that the host's dial policy decides which names a
// guest may look up (hostharness serve --allow-dial).
//
//	client := &http.Client{Transport: wasinet.NewTransport(), Timeout: 10 * time.Second}
//	resp, err := client.Get("http://api.internal:8080/v1/items")
//
// Drivers take DialContext and LookupHost: pgx's pgconn.Config.DialFunc
// and LookupFunc, go-redis's Options.Dialer (see the examples).
//
// # Connections
//
// A connection is a *net.TCPConn with the addresses the host reports
// (LocalAddr, RemoteAddr), deadlines served by the runtime's netpoller
// and CloseWrite (a shutdown of the write side). Go's wasip1 net has no
// socket options: SetKeepAlive, SetNoDelay, SetLinger and the buffer sizes
// report ENOPROTOOPT there. Keep-alive probes are switched on at dial time
// instead (Dialer.KeepAlive), and the project's host turns Nagle's
// algorithm off on every connection it makes.
//
// # Errors
//
// A dial the host's policy refuses fails with an error for which
// errors.Is(err, fs.ErrPermission) is true and that names the address
// and the --allow-dial pattern that would allow it. A name the policy does
// not allow is reported as not found (*net.DNSError with IsNotFound): the
// host answers it as a name that does not exist. On a runtime that
// defines the socket extensions only to fail them, every call fails with
// ErrNoSocketExtensions.
//
// # Portability
//
// Importing the package (on wasip1) adds the socket extensions to the
// module's imports. A runtime that does not define them cannot instantiate
// the module at all, whether or not the guest ever dials: the project's
// engines (hostharness serve --engine wasmtime, --engine wazy) and
// WasmEdge run it; wasmtime's and wazero's own CLIs and
// hostharness serve --engine wazy-sock refuse it at load, naming the
// missing import. Keep the package out of a guest that must run
// everywhere.
//
// A host name lookup is one host call that blocks the whole guest (a
// wasip1 module has one thread) until the host's resolver answers, at most
// 10 s on the project's host: dial IP addresses or names the host resolves
// fast (its /etc/hosts), and keep connections pooled.
package wasinet

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"
)

// Defaults of NewTransport, those of http.DefaultTransport.
const (
	transportDialTimeout  = 30 * time.Second
	transportKeepAlive    = 30 * time.Second
	transportIdleTimeout  = 90 * time.Second
	transportTLSTimeout   = 10 * time.Second
	transportMaxIdleConns = 100
)

// ErrNoSocketExtensions is the error of every dial and lookup on a
// runtime that does not provide the WasmEdge socket extensions (it
// defines them only to answer "not implemented", or with zero values).
var ErrNoSocketExtensions = errors.New("the WebAssembly runtime does not provide the WasmEdge socket extensions " +
	"that outbound connections need: run the guest with hostharness serve (--engine wasmtime or --engine wazy) " +
	"and --allow-dial, or with WasmEdge")

// Dialer connects to TCP addresses: with the socket extensions on wasip1,
// with a net.Dialer natively. The zero value dials with keep-alive probes
// and no timeout of its own.
type Dialer struct {
	// Timeout bounds a whole dial, the name lookup included; 0 leaves
	// only the context's deadline.
	Timeout time.Duration
	// KeepAlive is the interval of TCP keep-alive probes; 0 enables them
	// (natively every 15 s; on wasip1 the host's default interval, the
	// guest can only switch them on), a negative value disables them.
	KeepAlive time.Duration
}

// Dial connects to address on network ("tcp", "tcp4" or "tcp6"; natively
// any network of package net).
func (d *Dialer) Dial(network, address string) (net.Conn, error) {
	return d.DialContext(context.Background(), network, address)
}

// defaultDialer is the Dialer of the package-level functions.
var defaultDialer Dialer

// Dial connects to address on network, as Dialer.Dial does with the zero
// Dialer.
func Dial(network, address string) (net.Conn, error) {
	return defaultDialer.DialContext(context.Background(), network, address)
}

// DialContext connects to address on network until ctx ends, as
// Dialer.DialContext does with the zero Dialer. Its signature is what
// http.Transport.DialContext, pgconn.Config.DialFunc and go-redis's
// Options.Dialer take.
func DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	return defaultDialer.DialContext(ctx, network, address)
}

// LookupHost returns the addresses of host, as text: on wasip1 resolved
// by the host (sock_getaddrinfo), natively by net.DefaultResolver. Its
// signature is pgconn.Config.LookupFunc's.
func LookupHost(ctx context.Context, host string) ([]string, error) {
	addrs, err := LookupNetIP(ctx, "ip", host)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(addrs))
	for i, a := range addrs {
		out[i] = a.String()
	}
	return out, nil
}

// NewTransport returns an http.Transport with http.DefaultTransport's
// settings (proxy from the environment, HTTP/2 over TLS, 100 idle
// keep-alive connections kept 90 s, 10 s TLS handshake timeout) that dials
// with a Dialer of 30 s timeout. TLS is the guest's own crypto/tls; on
// wasip1 its root certificates come only from SSL_CERT_FILE or
// SSL_CERT_DIR, so give the guest a CA bundle (e.g. hostharness serve
// --dir /etc/ssl/certs:ro --env SSL_CERT_DIR=/etc/ssl/certs) or set
// TLSClientConfig.RootCAs.
func NewTransport() *http.Transport {
	d := &Dialer{Timeout: transportDialTimeout, KeepAlive: transportKeepAlive}
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           d.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          transportMaxIdleConns,
		IdleConnTimeout:       transportIdleTimeout,
		TLSHandshakeTimeout:   transportTLSTimeout,
		ExpectContinueTimeout: time.Second,
	}
}
