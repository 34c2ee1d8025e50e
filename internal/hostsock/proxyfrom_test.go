package hostsock

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// Headers of the tests, written out by hand from the specification.
const (
	v2Sig = "\r\n\r\n\x00\r\nQUIT\n"
	// v2TCP4 is PROXY TCP4 203.0.113.7:4242 -> 198.51.100.1:80.
	v2TCP4 = v2Sig + "\x21\x11\x00\x0c" + "\xcb\x00\x71\x07" + "\xc6\x33\x64\x01" + "\x10\x92" + "\x00\x50"
	// v2TCP6 is PROXY TCP6 [2001:db8::7]:4242 -> [2001:db8::1]:443.
	v2TCP6 = v2Sig + "\x21\x21\x00\x24" +
		"\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x07" +
		"\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01" + "\x10\x92" + "\x01\xbb"
	// v2TCP4TLV is v2TCP4 with a NOOP TLV of 3 bytes (and a length to
	// match).
	v2TCP4TLV = v2Sig + "\x21\x11\x00\x12" + "\xcb\x00\x71\x07" + "\xc6\x33\x64\x01" + "\x10\x92" + "\x00\x50" + "\x04\x00\x03abc"
	// v2Local is a LOCAL header (a balancer's health check), no address.
	v2Local = v2Sig + "\x20\x00\x00\x00"
	// v2LocalTCP4 is a LOCAL header that carries addresses anyway, which
	// the receiver must ignore.
	v2LocalTCP4 = v2Sig + "\x20\x11\x00\x0c" + "\xcb\x00\x71\x07" + "\xc6\x33\x64\x01" + "\x10\x92" + "\x00\x50"
	v1TCP4      = "PROXY TCP4 203.0.113.7 198.51.100.1 4242 80\r\n"
	v1TCP6      = "PROXY TCP6 2001:db8::7 2001:db8::1 4242 443\r\n"
	v1Unknown   = "PROXY UNKNOWN\r\n"
)

var (
	relayed4 = &connAddrs{peer: netip.MustParseAddrPort("203.0.113.7:4242"), local: netip.MustParseAddrPort("198.51.100.1:80")}
	relayed6 = &connAddrs{peer: netip.MustParseAddrPort("[2001:db8::7]:4242"), local: netip.MustParseAddrPort("[2001:db8::1]:443")}
)

// TestProxyHeaderFraming frames and parses whole headers, checks that
// every proper prefix of a good header asks for more, and that bad
// headers are refused.
func TestProxyHeaderFraming(t *testing.T) {
	for _, tc := range []struct {
		name, header string
		want         *connAddrs // nil: the connection's own (LOCAL)
	}{
		{"v2 TCP4", v2TCP4, relayed4},
		{"v2 TCP6", v2TCP6, relayed6},
		{"v2 TCP4 with a TLV", v2TCP4TLV, relayed4},
		{"v2 LOCAL", v2Local, nil},
		{"v2 LOCAL with addresses", v2LocalTCP4, nil},
		{"v1 TCP4", v1TCP4, relayed4},
		{"v1 TCP6", v1TCP6, relayed6},
		{"v1 UNKNOWN", v1Unknown, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for i := range len(tc.header) {
				if n, err := proxyHeaderLen([]byte(tc.header[:i])); n != 0 || err != nil {
					t.Fatalf("prefix of %d bytes: length %d, %v; want 0 (more to come)", i, n, err)
				}
			}
			data := []byte(tc.header + "GET / HTTP/1.1\r\n")
			n, err := proxyHeaderLen(data)
			if err != nil || n != len(tc.header) {
				t.Fatalf("proxyHeaderLen = %d, %v; want %d", n, err, len(tc.header))
			}
			th, err := parseProxyHeader(data[:n])
			if err != nil {
				t.Fatal(err)
			}
			if (th.addrs == nil) != (tc.want == nil) || (th.addrs != nil && *th.addrs != *tc.want) {
				t.Fatalf("addresses %+v, want %+v", th.addrs, tc.want)
			}
		})
	}
	long := strings.Repeat("1", 100)
	for _, tc := range []struct{ name, header string }{
		{"HTTP", "GET / HTTP/1.1\r\n\r\n"},
		{"TLS", "\x16\x03\x01\x00\xa5"},
		{"v1 without the space", "PROXYTCP4 203.0.113.7 198.51.100.1 4242 80\r\n"},
		{"v1 lower case", "proxy TCP4 203.0.113.7 198.51.100.1 4242 80\r\n"},
		{"v1 over 107 bytes", "PROXY TCP4 " + long + "\r\n"},
		{"v1 without CR", "PROXY TCP4 203.0.113.7 198.51.100.1 4242 80\n"},
		{"v1 UDP", "PROXY UDP4 203.0.113.7 198.51.100.1 4242 80\r\n"},
		{"v1 bad address", "PROXY TCP4 203.0.113.777 198.51.100.1 4242 80\r\n"},
		{"v1 TCP4 with IPv6", "PROXY TCP4 2001:db8::7 2001:db8::1 4242 80\r\n"},
		{"v1 port out of range", "PROXY TCP4 203.0.113.7 198.51.100.1 65536 80\r\n"},
		{"v1 missing port", "PROXY TCP4 203.0.113.7 198.51.100.1 4242\r\n"},
		{"v2 bad signature", "\r\n\r\n\x00\r\nQUIX\n\x21\x11\x00\x0c" + strings.Repeat("\x00", 12)},
		{"v2 version 3", v2Sig + "\x31\x11\x00\x0c" + strings.Repeat("\x00", 12)},
		{"v2 command 2", v2Sig + "\x22\x11\x00\x0c" + strings.Repeat("\x00", 12)},
		{"v2 UDP", v2Sig + "\x21\x12\x00\x0c" + strings.Repeat("\x01", 12)},
		{"v2 Unix stream", v2Sig + "\x21\x31\x00\xd8" + strings.Repeat("\x00", 216)},
		{"v2 PROXY UNSPEC", v2Sig + "\x21\x00\x00\x00"},
		{"v2 TCP4 address block short", v2Sig + "\x21\x11\x00\x08" + strings.Repeat("\x01", 8)},
		{"v2 TCP6 in a TCP4 length", v2Sig + "\x21\x21\x00\x0c" + strings.Repeat("\x01", 12)},
		{"v2 over the length limit", v2Sig + "\x21\x11\xff\xff"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := proxyHeaderLen([]byte(tc.header))
			if err != nil {
				return // refused at framing
			}
			if n == 0 {
				t.Fatalf("framing asks for more of %q, a whole (bad) header", tc.header)
			}
			if th, err := parseProxyHeader([]byte(tc.header[:n])); err == nil {
				t.Fatalf("parsed %q as %+v, want an error", tc.header, th.addrs)
			}
		})
	}
}

// TestTrusts matches peers against prefixes, IPv4 also in its
// IPv4-mapped IPv6 form (what a dual-stack listener reports).
func TestTrusts(t *testing.T) {
	p := ProxyFrom{Trusted: []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("192.0.2.1/32"),
		netip.MustParsePrefix("fd00::/8"),
		netip.MustParsePrefix("::ffff:198.51.100.0/120"),
	}}
	for addr, want := range map[string]bool{
		"10.1.2.3":            true,
		"::ffff:10.1.2.3":     true,
		"11.0.0.1":            false,
		"192.0.2.1":           true,
		"192.0.2.2":           false,
		"fd12::1":             true,
		"fe80::1":             false,
		"198.51.100.9":        true,
		"::ffff:198.51.100.9": true,
		"198.51.101.9":        false,
		"::":                  false,
		"0.0.0.0":             false,
	} {
		if got := p.trusts(netip.MustParseAddr(addr)); got != want {
			t.Errorf("trusts(%s) = %v, want %v", addr, got, want)
		}
	}
	// An IPv6 prefix that merely contains the IPv4-mapped range (::/0,
	// ::/64) trusts IPv6 peers only: "any IPv6 balancer" must not let
	// every IPv4 client name its own address.
	v6 := ProxyFrom{Trusted: []netip.Prefix{netip.MustParsePrefix("::/0"), netip.MustParsePrefix("::/64")}}
	for addr, want := range map[string]bool{
		"2001:db8::1":     true,
		"::1":             true,
		"127.0.0.1":       false,
		"::ffff:10.1.2.3": false,
		"203.0.113.7":     false,
	} {
		if got := v6.trusts(netip.MustParseAddr(addr)); got != want {
			t.Errorf("with ::/0 and ::/64: trusts(%s) = %v, want %v", addr, got, want)
		}
	}
	if err := (ProxyFrom{Trusted: []netip.Prefix{{}}}).Check(); err == nil {
		t.Error("Check accepted the zero Prefix")
	}
	if err := (ProxyFrom{HeaderTimeout: -time.Second}).Check(); err == nil {
		t.Error("Check accepted a negative timeout")
	}
}

// chunkReader gives data in reads of at most size bytes, answering EAGAIN
// between them (once each), as a socket does when a header arrives in
// several segments; then EAGAIN for good, or the end when eof.
type chunkReader struct {
	data   []byte
	size   int
	eof    bool
	paused bool
}

func (r *chunkReader) read(b []byte) (int, Errno) {
	if r.paused {
		r.paused = false
		return 0, errnoAgain
	}
	if len(r.data) == 0 {
		if r.eof {
			return 0, errnoSuccess
		}
		return 0, errnoAgain
	}
	n := copy(b[:min(len(b), r.size)], r.data)
	r.data = r.data[n:]
	r.paused = true
	return n, errnoSuccess
}

// TestHeaderBufFill reads headers in chunks of every size: the result is
// the same as in one read, with the bytes past the header kept, and a
// header cut by the connection's end fails.
func TestHeaderBufFill(t *testing.T) {
	const body = "GET / HTTP/1.1\r\nHost: x\r\n\r\n"
	for _, header := range []string{v2TCP4, v2TCP6, v2TCP4TLV, v2Local, v1TCP4, v1TCP6, v1Unknown} {
		for size := 1; size <= len(header)+len(body); size++ {
			r := &chunkReader{data: []byte(header + body), size: size}
			var h headerBuf
			n, reads := 0, 0
			var err error
			for n == 0 && err == nil && reads < 10_000 {
				n, err = h.fill(r.read)
				reads++
			}
			if err != nil || n != len(header) {
				t.Fatalf("%q in chunks of %d: length %d, %v; want %d", header, size, n, err, len(header))
			}
			_, rest, err := h.header(n)
			if err != nil {
				t.Fatal(err)
			}
			if got := string(rest) + string(r.data); got != body {
				t.Fatalf("%q in chunks of %d: after the header %q, want %q", header, size, got, body)
			}
			if len(h.b) > firstHeaderRead+len(header) {
				t.Fatalf("%q in chunks of %d: buffered %d bytes", header, size, len(h.b))
			}
			cut := &chunkReader{data: []byte(header[:len(header)-1]), size: size, eof: true}
			var hc headerBuf
			for reads = 0; reads < 10_000; reads++ {
				if n, err = hc.fill(cut.read); n != 0 || err != nil {
					break
				}
			}
			if !errors.Is(err, errProxyHeaderCut) {
				t.Fatalf("%q cut short in chunks of %d: length %d, %v; want %v", header, size, n, err, errProxyHeaderCut)
			}
		}
	}
}
