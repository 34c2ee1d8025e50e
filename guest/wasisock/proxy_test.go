//go:build !wasip1

package wasisock

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Headers as the PROXY protocol specification lays them out, written out
// by hand so that they check the parser independently of any encoder. The
// host's encoder is tested against the same bytes.
var (
	// headerV4 is 192.0.2.1:4242 connected to 198.51.100.7:8080.
	headerV4 = mustHex("0d0a0d0a000d0a515549540a" + "21" + "11" + "000c" +
		"c0000201" + "c6336407" + "1092" + "1f90")
	// headerV6 is [2001:db8::1]:4242 connected to [2001:db8::2]:8080.
	headerV6 = mustHex("0d0a0d0a000d0a515549540a" + "21" + "21" + "0024" +
		"20010db8000000000000000000000001" + "20010db8000000000000000000000002" + "1092" + "1f90")
	// headerUnix is an unnamed client ("@", as Linux and Go name it)
	// connected to /run/app.sock.
	headerUnix = append(mustHex("0d0a0d0a000d0a515549540a"+"21"+"31"+"00d8"),
		append(unixName("@"), unixName("/run/app.sock")...)...)
)

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// unixName is a 108-byte sun_path field.
func unixName(name string) []byte {
	b := make([]byte, 108)
	copy(b, name)
	return b
}

// withTLV returns h with a NOOP TLV (type 0x04) appended and its length
// field raised to match.
func withTLV(h []byte) []byte {
	out := append(append([]byte(nil), h...), 0x04, 0x00, 0x01, 0x00)
	n := int(out[14])<<8 | int(out[15]) + 4
	out[14], out[15] = byte(n>>8), byte(n)
	return out
}

// withByte returns h with byte i set to b.
func withByte(h []byte, i int, b byte) []byte {
	out := append([]byte(nil), h...)
	out[i] = b
	return out
}

// listenFor returns a real loopback listener of the kind addr names.
func listenFor(t *testing.T, addr net.Addr) net.Listener {
	t.Helper()
	network, address := "tcp", "127.0.0.1:0"
	if _, ok := addr.(*net.UnixAddr); ok {
		network, address = "unix", filepath.Join(t.TempDir(), "s.sock")
	}
	ln, err := net.Listen(network, address)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// acceptOne dials at, sends data and closes its write side, and returns
// the connection ln accepted.
func acceptOne(t *testing.T, ln net.Listener, at net.Addr, data []byte) net.Conn {
	t.Helper()
	client, err := net.DialTimeout(at.Network(), at.String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	go func() {
		client.Write(data)
		if cw, ok := client.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		}
	}()
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestHostListenerAddrs sends real connections a host's header and checks
// that the accepted conns report its addresses and deliver the client's
// bytes after it, byte for byte.
func TestHostListenerAddrs(t *testing.T) {
	for _, tc := range []struct {
		name               string
		listenAddr         string
		header             []byte
		wantRemote, wantLo string
	}{
		{"IPv4", "198.51.100.7:8080", headerV4, "192.0.2.1:4242", "198.51.100.7:8080"},
		{"IPv6", "[2001:db8::2]:8080", headerV6, "[2001:db8::1]:4242", "[2001:db8::2]:8080"},
		{"Unix", "unix:/run/app.sock", headerUnix, "@", "/run/app.sock"},
		{"IPv4, listener address untold", "", headerV4, "192.0.2.1:4242", "198.51.100.7:8080"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{EnvProxy: ProxyV2, EnvListenAddr: tc.listenAddr}
			proxy, addr, err := hostContract(Config{Getenv: envMap(env)})
			if err != nil || !proxy {
				t.Fatalf("hostContract = %v, %v, %v", proxy, addr, err)
			}
			if addr == nil {
				addr = &net.TCPAddr{}
			}
			raw := listenFor(t, addr)
			ln, err := fromHost(Config{Getenv: envMap(env)}, raw)
			if err != nil {
				t.Fatal(err)
			}
			if tc.listenAddr != "" && ln.Addr().String() != strings.TrimPrefix(tc.listenAddr, "unix:") {
				t.Fatalf("Addr() = %s, want %s", ln.Addr(), tc.listenAddr)
			}
			payload := []byte("GET / HTTP/1.1\r\n\r\n\x00\x0d\x0a")
			c := acceptOne(t, ln, raw.Addr(), append(append([]byte(nil), tc.header...), payload...))
			if got := c.RemoteAddr().String(); got != tc.wantRemote {
				t.Errorf("RemoteAddr() = %s, want %s", got, tc.wantRemote)
			}
			if got := c.LocalAddr().String(); got != tc.wantLo {
				t.Errorf("LocalAddr() = %s, want %s", got, tc.wantLo)
			}
			if c.RemoteAddr().Network() != raw.Addr().Network() {
				t.Errorf("RemoteAddr().Network() = %s, want %s", c.RemoteAddr().Network(), raw.Addr().Network())
			}
			got, err := io.ReadAll(c)
			if err != nil || !bytes.Equal(got, payload) {
				t.Fatalf("read %q, %v; want %q", got, err, payload)
			}
		})
	}
}

// TestHostListenerRefuses checks that a connection that does not open
// with exactly a host's header delivers no byte and cannot be written to.
func TestHostListenerRefuses(t *testing.T) {
	tcp, unix := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}, &net.UnixAddr{Name: "/s", Net: "unix"}
	for _, tc := range []struct {
		name     string
		listener net.Addr
		data     []byte
	}{
		{"no header", tcp, []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")},
		{"empty", tcp, nil},
		{"truncated", tcp, headerV4[:20]},
		{"version 1", tcp, []byte("PROXY TCP4 192.0.2.1 198.51.100.7 4242 8080\r\nGET / HTTP/1.1\r\n\r\n")},
		{"LOCAL command", tcp, withByte(headerV4, 12, 0x20)},
		{"UDP over IPv4", tcp, withByte(headerV4, 13, 0x12)},
		{"TLV", tcp, withTLV(headerV4)},
		{"Unix header on a TCP listener", tcp, headerUnix},
		{"IPv4 header on a Unix listener", unix, headerV4},
		{"length too short", tcp, withByte(headerV4, 15, 0x0b)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw := listenFor(t, tc.listener)
			ln := newHostListener(raw, tc.listener, true)
			c := acceptOne(t, ln, raw.Addr(), tc.data)
			buf := make([]byte, 512)
			n, err := c.Read(buf)
			if err == nil || errors.Is(err, io.EOF) || n != 0 {
				t.Fatalf("Read = %d %q, %v; want no byte and an error", n, buf[:n], err)
			}
			if _, err := c.Write([]byte("HTTP/1.1 200 OK\r\n\r\n")); err == nil {
				t.Fatal("Write succeeded on a connection without a valid header")
			}
			if got := c.RemoteAddr().String(); got == "192.0.2.1:4242" {
				t.Fatalf("RemoteAddr() = %s, from a refused header", got)
			}
		})
	}
}

// TestHostListenerHeaderTimeout checks that a connection whose header
// never comes fails once the bound passes.
func TestHostListenerHeaderTimeout(t *testing.T) {
	raw := listenFor(t, &net.TCPAddr{})
	ln := newHostListener(raw, nil, true)
	ln.headerTimeout = 100 * time.Millisecond
	client, err := net.Dial("tcp", raw.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	client.Write(headerV4[:10])
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	done := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 1))
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Read succeeded without a header")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Read still waits for the header 10 s after a 100 ms bound")
	}
}

// TestHostListenerSlowClientDoesNotStallAccept serves HTTP on a host
// listener: a client that connects and sends nothing does not keep the
// next one from being served, with its own address.
func TestHostListenerSlowClientDoesNotStallAccept(t *testing.T) {
	raw := listenFor(t, &net.TCPAddr{})
	ln := newHostListener(raw, nil, true)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.RemoteAddr)
	})}
	go srv.Serve(ln)
	defer srv.Close()
	silent, err := net.Dial("tcp", raw.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	time.Sleep(50 * time.Millisecond) // let the server accept it first

	client, err := net.Dial("tcp", raw.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	client.SetDeadline(time.Now().Add(3 * time.Second)) // well below the 5 s header bound
	fmt.Fprintf(client, "%sGET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", headerV4)
	resp, err := io.ReadAll(client)
	if err != nil {
		t.Fatalf("second client not served while the first is silent: %v (%q)", err, resp)
	}
	if !bytes.HasSuffix(resp, []byte("\r\n\r\n192.0.2.1:4242")) {
		t.Fatalf("response %q, want the header's client address as its body", resp)
	}
}

func TestHostContract(t *testing.T) {
	for _, tc := range []struct {
		name      string
		env       map[string]string
		wantProxy bool
		wantAddr  string
		wantErr   string
	}{
		{name: "absent"},
		{name: "v2", env: map[string]string{EnvProxy: "v2"}, wantProxy: true},
		{name: "v1 refused", env: map[string]string{EnvProxy: "v1"}, wantErr: EnvProxy},
		{name: "yes refused", env: map[string]string{EnvProxy: "1"}, wantErr: EnvProxy},
		{name: "address alone", env: map[string]string{EnvListenAddr: "127.0.0.1:8080"}, wantAddr: "127.0.0.1:8080"},
		{name: "IPv6", env: map[string]string{EnvProxy: "v2", EnvListenAddr: "[::1]:8080"}, wantProxy: true, wantAddr: "[::1]:8080"},
		{name: "IPv6 zone", env: map[string]string{EnvListenAddr: "[fe80::1%eth0]:80"}, wantAddr: "[fe80::1%eth0]:80"},
		{name: "unix", env: map[string]string{EnvListenAddr: "unix:/run/app.sock"}, wantAddr: "/run/app.sock"},
		{name: "host name refused", env: map[string]string{EnvListenAddr: "localhost:8080"}, wantErr: EnvListenAddr},
		{name: "no port", env: map[string]string{EnvListenAddr: "127.0.0.1"}, wantErr: EnvListenAddr},
		{name: "empty unix path", env: map[string]string{EnvListenAddr: "unix:"}, wantErr: EnvListenAddr},
	} {
		t.Run(tc.name, func(t *testing.T) {
			proxy, addr, err := hostContract(Config{Getenv: envMap(tc.env)})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one naming %s", err, tc.wantErr)
				}
				return
			}
			gotAddr := ""
			if addr != nil {
				gotAddr = addr.String()
			}
			if err != nil || proxy != tc.wantProxy || gotAddr != tc.wantAddr {
				t.Fatalf("hostContract = %v, %q, %v; want %v, %q", proxy, gotAddr, err, tc.wantProxy, tc.wantAddr)
			}
		})
	}
}

// TestListenIgnoresHostContractNatively: a native process has its own
// addresses, and nothing writes headers before its clients' bytes.
func TestListenIgnoresHostContractNatively(t *testing.T) {
	env := map[string]string{EnvProxy: ProxyV2, EnvListenAddr: "198.51.100.7:8080"}
	ln, info, err := Listen(Config{Addr: "127.0.0.1:0", Getenv: envMap(env)})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if info.Addr != ln.Addr().String() || strings.Contains(info.Addr, "198.51.100.7") {
		t.Fatalf("info.Addr = %s, Addr() = %s", info.Addr, ln.Addr())
	}
	roundTrip(t, ln)
}

// TestHostConnHalfClose: a connection whose addresses the host told still
// closes one direction, as http.Server does before its last close so that
// the client gets the response instead of a reset.
func TestHostConnHalfClose(t *testing.T) {
	raw := listenFor(t, &net.TCPAddr{})
	ln := newHostListener(raw, nil, true)
	client, err := net.Dial("tcp", raw.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	client.SetDeadline(time.Now().Add(5 * time.Second))
	client.Write(append(append([]byte(nil), headerV4...), "ping"...))
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cw, ok := c.(interface{ CloseWrite() error })
	if !ok {
		t.Fatalf("%T has no CloseWrite", c)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("read %q, %v", buf, err)
	}
	io.WriteString(c, "pong")
	if err := cw.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if got, err := io.ReadAll(client); err != nil || string(got) != "pong" {
		t.Fatalf("client read %q, %v; want pong, then end of file", got, err)
	}
	client.Write([]byte("still open"))
	buf = make([]byte, 10)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "still open" {
		t.Fatalf("after CloseWrite the server read %q, %v", buf, err)
	}
}

// TestHostListenerAcceptErrorAddr: Accept's errors name the bound address
// the host told, not the empty one WASI gives.
func TestHostListenerAcceptErrorAddr(t *testing.T) {
	raw := listenFor(t, &net.TCPAddr{})
	addr := &net.TCPAddr{IP: net.IPv4(198, 51, 100, 7), Port: 8080}
	ln := newHostListener(raw, addr, true)
	raw.Close()
	_, err := ln.Accept()
	if err == nil || !strings.Contains(err.Error(), "accept tcp 198.51.100.7:8080:") {
		t.Fatalf("Accept on a closed listener: %v, want an error naming 198.51.100.7:8080", err)
	}
}
