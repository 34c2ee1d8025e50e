package main

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"

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
