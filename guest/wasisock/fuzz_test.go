//go:build !wasip1

package wasisock

import (
	"bytes"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// FuzzListenFDs checks that any LISTEN_FDS / LISTEN_FDNAMES pair is either
// rejected with an error or yields count consecutive fds from 3, named in
// order, without panicking.
func FuzzListenFDs(f *testing.F) {
	for _, seed := range [][2]string{
		{"1", ""}, {"2", "http:admin"}, {"0", ""}, {"-1", ""}, {"65537", ""},
		{"3", "a::c"}, {"1", ":::::"}, {" 1", ""}, {"1e3", ""}, {"２", ""},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, count, names string) {
		env := map[string]string{"LISTEN_FDS": count, "LISTEN_FDNAMES": names}
		fds, ok, err := listenFDs(Config{Getenv: func(k string) string { return env[k] }})
		if err != nil {
			if ok || fds != nil {
				t.Fatalf("error %v together with a result %v, %v", err, fds, ok)
			}
			return
		}
		if !ok {
			if len(fds) != 0 {
				t.Fatalf("not ok but %d fds", len(fds))
			}
			return
		}
		var nameList []string
		if names != "" {
			nameList = strings.Split(names, ":")
		}
		for i, fd := range fds {
			if fd.FD != firstListenFD+i {
				t.Fatalf("fd %d at index %d, want %d", fd.FD, i, firstListenFD+i)
			}
			want := ""
			if i < len(nameList) {
				want = nameList[i]
			}
			if fd.Name != want {
				t.Fatalf("name %q at index %d, want %q", fd.Name, i, want)
			}
		}
	})
}

// FuzzHostHeader feeds any bytes, as a connection's start, to the parser
// of a host listener (TCP, Unix, or of untold kind), and checks it against
// a decoder written from the specification: a connection delivers bytes
// only after a header a host writes (version 2, PROXY, a stream family the
// listener has, no TLVs), and then exactly the bytes after it, with the
// header's addresses; any other start delivers nothing.
func FuzzHostHeader(f *testing.F) {
	for _, h := range [][]byte{headerV4, headerV6, headerUnix} {
		for kind := range uint8(3) {
			f.Add(append(append([]byte(nil), h...), "GET / HTTP/1.1\r\n\r\n"...), kind)
		}
	}
	f.Add(withTLV(headerV4), uint8(0))
	f.Add(withByte(headerV6, 12, 0x20), uint8(0))
	f.Add([]byte("PROXY TCP4 192.0.2.1 198.51.100.7 4242 8080\r\n"), uint8(0))
	f.Add(headerV4[:15], uint8(0))
	f.Fuzz(func(t *testing.T, data []byte, kind uint8) {
		listener := [...]net.Addr{nil, &net.TCPAddr{}, &net.UnixAddr{Name: "/s", Net: "unix"}}[kind%3]
		ln := newHostListener(nil, listener, true)
		ln.headerTimeout = 5 * time.Second
		client, server := net.Pipe()
		defer client.Close()
		go func() {
			client.Write(data)
			client.Close()
		}()
		c := ln.wrap(server)
		defer c.Close()
		got, err := io.ReadAll(c)
		remote, local, payload, ok := specDecode(data, listener)
		if !ok {
			if err == nil || len(got) > 0 {
				t.Fatalf("%x: read %q, %v; want nothing and an error", data, got, err)
			}
			return
		}
		if err != nil || !bytes.Equal(got, payload) {
			t.Fatalf("%x: read %q, %v; want %q", data, got, err, payload)
		}
		if c.RemoteAddr().String() != remote || c.LocalAddr().String() != local {
			t.Fatalf("%x: addresses %s, %s; want %s, %s", data, c.RemoteAddr(), c.LocalAddr(), remote, local)
		}
	})
}

// specDecode decodes a host's PROXY v2 header at the start of data as the
// specification lays it out, for a listener bound to listener (nil: TCP
// or Unix). ok is false unless data starts with one.
func specDecode(data []byte, listener net.Addr) (remote, local string, payload []byte, ok bool) {
	const prefix = 16
	sig := "\r\n\r\n\x00\r\nQUIT\n"
	if len(data) < prefix || string(data[:12]) != sig || data[12] != 0x21 {
		return "", "", nil, false
	}
	_, tcpListener := listener.(*net.TCPAddr)
	_, unixListener := listener.(*net.UnixAddr)
	size := map[byte]int{0x11: 12, 0x21: 36, 0x31: 216}[data[13]]
	switch {
	case size == 0,
		data[13] == 0x31 && tcpListener,
		data[13] != 0x31 && unixListener:
		return "", "", nil, false
	}
	if int(data[14])<<8|int(data[15]) != size || len(data) < prefix+size {
		return "", "", nil, false
	}
	block := data[prefix : prefix+size]
	port := func(b []byte) int { return int(b[0])<<8 | int(b[1]) }
	switch data[13] {
	case 0x11:
		remote = (&net.TCPAddr{IP: net.IP(block[0:4]), Port: port(block[8:])}).String()
		local = (&net.TCPAddr{IP: net.IP(block[4:8]), Port: port(block[10:])}).String()
	case 0x21:
		remote = (&net.TCPAddr{IP: net.IP(block[0:16]), Port: port(block[32:])}).String()
		local = (&net.TCPAddr{IP: net.IP(block[16:32]), Port: port(block[34:])}).String()
	case 0x31:
		name := func(b []byte) string { s, _, _ := bytes.Cut(b, []byte{0}); return string(s) }
		remote, local = name(block[:108]), name(block[108:])
	}
	return remote, local, data[prefix+size:], true
}
