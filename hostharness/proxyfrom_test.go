package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wasiserve/wasiserve/hostharness/engine/wazy"
	"github.com/wasiserve/wasiserve/internal/enginetest"
)

// TestParseProxyFrom: CIDRs (masked) and bare IPs of either family are
// trusted prefixes; anything else is refused with the flag's name.
func TestParseProxyFrom(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want []string
	}{
		{nil, nil},
		{[]string{"10.0.0.0/8"}, []string{"10.0.0.0/8"}},
		{[]string{"10.1.2.3/8", "192.0.2.1"}, []string{"10.0.0.0/8", "192.0.2.1/32"}},
		{[]string{"fd00::/8", "2001:db8::1"}, []string{"fd00::/8", "2001:db8::1/128"}},
		{[]string{"::ffff:10.0.0.1"}, []string{"::ffff:10.0.0.1/128"}},
	} {
		got, err := parseProxyFrom(tc.in)
		var gotText []string
		for _, p := range got {
			gotText = append(gotText, p.String())
		}
		if err != nil || !slices.Equal(gotText, tc.want) {
			t.Errorf("parseProxyFrom(%q) = %v, %v; want %v", tc.in, gotText, err, tc.want)
		}
	}
	for _, bad := range []string{"", "10.0.0.0/33", "10.0.0/8", "lb.example", "10.0.0.1:80", "fe80::1%eth0", "fe80::/10%eth0", "*"} {
		if got, err := parseProxyFrom([]string{"10.0.0.0/8", bad}); err == nil || !strings.Contains(err.Error(), "--proxy-from") {
			t.Errorf("parseProxyFrom(%q) = %v, %v; want an error naming --proxy-from", bad, got, err)
		}
	}
}

// TestServeProxyFromErrors: bad --proxy-from values, an engine without
// it and a listener it cannot work on fail at once, naming the flag.
func TestServeProxyFromErrors(t *testing.T) {
	anyWasm := enginetest.Testdata("exit7.wasm")
	for _, tc := range []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"not a CIDR", []string{"serve", "--proxy-from", "10.0.0.0/33", anyWasm}, `--proxy-from "10.0.0.0/33": want a CIDR`},
		{"a host name", []string{"serve", "--proxy-from", "lb.example", anyWasm}, `--proxy-from "lb.example"`},
		{"on wazy-sock", []string{"serve", "--engine", wazy.SockName, "--proxy-from", "10.0.0.0/8", anyWasm},
			"--proxy-from needs PROXY protocol from trusted peers, which engine wazy-sock does not support; use --engine"},
		{"on a Unix socket", []string{"serve", "--listen", "unix:" + t.TempDir() + "/s.sock", "--proxy-from", "10.0.0.0/8", anyWasm},
			"--proxy-from [10.0.0.0/8]: needs a TCP listener"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stderr strings.Builder
			env := &cliEnv{engines: testEngines, stdout: io.Discard, stderr: &stderr, logger: slog.New(slog.NewTextHandler(&stderr, nil))}
			code := run(context.Background(), env, tc.args)
			if code != 2 || !strings.Contains(stderr.String(), tc.wantErr) {
				t.Fatalf("exit %d, stderr %q; want exit 2 mentioning %q", code, stderr.String(), tc.wantErr)
			}
		})
	}
}

// TestServeProxyFrom runs `serve --proxy-from 127.0.0.1` with the echo
// guest, and sends what a balancer sends: a v2 header for a client at
// 203.0.113.7:4242, which the guest reports, and a connection without a
// header, which is closed unanswered and logged.
func TestServeProxyFrom(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := serveInProcess(t, ctx, "--engine", wazy.Name, "--listen", "127.0.0.1:0", "--proxy-from", "127.0.0.1",
		"--cache-dir", enginetest.CacheDir(), enginetest.Echo.Path(t))
	m := servingLine.FindStringSubmatch(s.lines.Text())
	if m == nil {
		t.Fatalf("stdout line %q does not match %s", s.lines.Text(), servingLine)
	}
	get := func(first string) string {
		c, err := net.Dial("tcp", m[2])
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(30 * time.Second))
		io.WriteString(c, first+"GET /listener HTTP/1.1\r\nHost: guest\r\nConnection: close\r\n\r\n")
		resp, _ := io.ReadAll(c)
		return string(resp)
	}
	const header = "\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0c\xcb\x00\x71\x07\xc6\x33\x64\x01\x10\x92\x00\x50"
	if resp := get(header); !strings.Contains(resp, `"remote_addr": "203.0.113.7:4242"`) {
		t.Fatalf("behind the balancer's header: %q, want remote_addr 203.0.113.7:4242", resp)
	}
	if resp := get(""); resp != "" {
		t.Fatalf("from the trusted address without a header: %q, want the connection closed", resp)
	}
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(s.logs.String(), "closed a connection from a trusted PROXY protocol peer"); {
		if time.Now().After(deadline) {
			t.Fatalf("no warning about the connection without a header; logs:\n%s", s.logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if code := <-s.code; code != 0 {
		t.Fatalf("exit %d after interrupt, want 0", code)
	}
}
