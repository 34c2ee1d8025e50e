package hostsock

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
)

// FuzzTrustedHeader feeds any bytes, as a trusted peer's connection start
// arriving in reads of any size, to the host's header reader, and checks
// it against reading them in one piece and against a decoder written from
// the specification: the reader always ends (a header, an error, or the
// connection's end), buffers a bounded amount, keeps every byte after the
// header, and gives a relayed client's addresses only where the
// specification says a header names them.
func FuzzTrustedHeader(f *testing.F) {
	for _, h := range []string{v2TCP4, v2TCP6, v2TCP4TLV, v2Local, v2LocalTCP4, v1TCP4, v1TCP6, v1Unknown} {
		f.Add([]byte(h+"GET / HTTP/1.1\r\n\r\n"), uint8(0))
		f.Add([]byte(h), uint8(3))
		f.Add([]byte(h[:len(h)-1]), uint8(1))
	}
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"), uint8(0))
	f.Add([]byte(v2Sig+"\x21\x11\xff\xff"), uint8(0))
	f.Add([]byte("PROXY TCP4 "+strings.Repeat("9", 120)), uint8(7))
	f.Fuzz(func(t *testing.T, data []byte, chunk uint8) {
		whole, wholeErr := proxyHeaderLen(data)
		r := &chunkReader{data: data, size: int(chunk%64) + 1, eof: true}
		var h headerBuf
		var n int
		var err error
		for reads := 0; ; reads++ {
			if reads > 2*len(data)+4 {
				t.Fatalf("%q: no end after %d reads", data, reads)
			}
			if n, err = h.fill(r.read); n > 0 || err != nil {
				break
			}
		}
		if len(h.b) > firstHeaderRead+v2Fixed+0xffff {
			t.Fatalf("%q: buffered %d bytes", data, len(h.b))
		}
		switch {
		case errors.Is(err, errProxyHeaderCut):
			if wholeErr != nil || whole != 0 {
				t.Fatalf("%q: cut short in pieces, but in one piece %d, %v", data, whole, wholeErr)
			}
			return
		case err != nil:
			if wholeErr == nil {
				t.Fatalf("%q: %v in pieces, but a header of %d in one piece", data, err, whole)
			}
			return
		case n != whole:
			t.Fatalf("%q: header of %d in pieces, %d (%v) in one piece", data, n, whole, wholeErr)
		}
		th, rest, err := h.header(n)
		want, relayed, valid := specTrusted(data[:n])
		if err != nil {
			if relayed && valid {
				t.Fatalf("%q: %v; the specification reads a valid header", data[:n], err)
			}
			return
		}
		if got := string(rest) + string(r.data); got != string(data[n:]) {
			t.Fatalf("%q: after the header %q, want %q", data, got, data[n:])
		}
		if relayed && (th.addrs == nil || *th.addrs != want) {
			t.Fatalf("%q: addresses %+v, want %+v", data[:n], th.addrs, want)
		}
		if !relayed && th.addrs != nil {
			t.Fatalf("%q: addresses %+v from a header that relays none (valid %v)", data[:n], th.addrs, valid)
		}
		if th.addrs != nil {
			if _, err := guestPending(true, net.TCPAddrFromAddrPort(th.addrs.local), net.TCPAddrFromAddrPort(th.addrs.peer), rest); err != nil {
				t.Fatalf("%q: the guest's header of %+v: %v", data[:n], th.addrs, err)
			}
		}
	})
}

// specTrusted decodes a whole header b as the specification lays it out:
// relayed is set, with the addresses, for a PROXY header of TCP over IPv4
// or IPv6, the only kind the host takes addresses from; valid says that b
// is a header the specification allows at all, so that the host must not
// refuse it when relayed (for the others the parser may be stricter).
func specTrusted(b []byte) (addrs connAddrs, relayed, valid bool) {
	if bytes.HasPrefix(b, []byte(v2Sig)) {
		if len(b) < v2Fixed || b[12]>>4 != 2 {
			return addrs, false, false
		}
		length := int(binary.BigEndian.Uint16(b[14:16]))
		block := b[v2Fixed:]
		if len(block) != length || b[12]&0xf != 1 {
			return addrs, false, false // LOCAL (or a bad command): no address taken
		}
		port := func(p []byte) uint16 { return binary.BigEndian.Uint16(p) }
		switch b[13] {
		case 0x11:
			if length < 12 {
				return addrs, false, false
			}
			src, dst := netip.AddrFrom4([4]byte(block[0:4])), netip.AddrFrom4([4]byte(block[4:8]))
			return connAddrs{peer: netip.AddrPortFrom(src, port(block[8:])), local: netip.AddrPortFrom(dst, port(block[10:]))}, true, validTLVs(block[12:])
		case 0x21:
			if length < 36 {
				return addrs, false, false
			}
			src, dst := netip.AddrFrom16([16]byte(block[0:16])), netip.AddrFrom16([16]byte(block[16:32]))
			return connAddrs{peer: netip.AddrPortFrom(src, port(block[32:])), local: netip.AddrPortFrom(dst, port(block[34:]))}, true, validTLVs(block[36:])
		}
		return addrs, false, false
	}
	line, ok := strings.CutSuffix(string(b), "\r\n")
	tokens := strings.Split(line, " ")
	if !ok || len(tokens) != 6 || tokens[0] != "PROXY" || (tokens[1] != "TCP4" && tokens[1] != "TCP6") {
		return addrs, false, false
	}
	src, errSrc := netip.ParseAddr(tokens[2])
	dst, errDst := netip.ParseAddr(tokens[3])
	sport, errSport := strconv.ParseUint(tokens[4], 10, 16)
	dport, errDport := strconv.ParseUint(tokens[5], 10, 16)
	if errors.Join(errSrc, errDst, errSport, errDport) != nil || src.Zone() != "" || dst.Zone() != "" ||
		src.Is4() != (tokens[1] == "TCP4") || dst.Is4() != (tokens[1] == "TCP4") {
		return addrs, false, false
	}
	// The specification's ports and addresses have no leading zeros or
	// signs; a parser may refuse those.
	canonical := tokens[4] == strconv.FormatUint(sport, 10) && tokens[5] == strconv.FormatUint(dport, 10) &&
		tokens[2] == src.String() && tokens[3] == dst.String()
	return connAddrs{peer: netip.AddrPortFrom(src, uint16(sport)), local: netip.AddrPortFrom(dst, uint16(dport))}, true, canonical
}

// validTLVs reports whether b is a whole sequence of TLVs.
func validTLVs(b []byte) bool {
	for len(b) > 0 {
		if len(b) < 3 {
			return false
		}
		n := 3 + int(binary.BigEndian.Uint16(b[1:3]))
		if len(b) < n {
			return false
		}
		b = b[n:]
	}
	return true
}
