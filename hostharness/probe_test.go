package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestProbe runs the probe command against real servers on 127.0.0.1: a
// 2xx answer exits 0 and says nothing; a 503, a redirect, a refused
// connection and a server that never answers (past --timeout) exit 1 with
// one line on stderr; bad arguments exit 2.
func TestProbe(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") })
	mux.HandleFunc("/nocontent", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	mux.HandleFunc("/draining", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "draining", http.StatusServiceUnavailable)
	})
	mux.HandleFunc("/moved", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/ok", http.StatusFound) })
	mux.HandleFunc("/flood", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
		io.WriteString(w, strings.Repeat("x", 1<<20))
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	// A port with nothing listening: bound, then closed.
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := "http://" + free.Addr().String() + "/readyz"
	free.Close()

	// A server that takes the connection and never answers.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()

	for _, tc := range []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string // on stderr; "" for nothing at all
	}{
		{"200", []string{srv.URL + "/ok"}, 0, ""},
		{"204", []string{srv.URL + "/nocontent"}, 0, ""},
		{"503 with its reason", []string{srv.URL + "/draining"}, 1, "503 Service Unavailable: draining"},
		{"404", []string{srv.URL + "/nope"}, 1, "404 Not Found"},
		{"redirect not followed", []string{srv.URL + "/moved"}, 1, "302 Found"},
		{"huge body, quoted in part", []string{"--timeout", "10s", srv.URL + "/flood"}, 1, "500 Internal Server Error: xxx"},
		{"refused", []string{refused}, 1, "connection refused"},
		{"timeout", []string{"--timeout", "200ms", "http://" + silent.Addr().String() + "/readyz"}, 1, "no answer within 200ms"},
		{"no URL", nil, 2, "want one URL"},
		{"two URLs", []string{srv.URL, srv.URL}, 2, "want one URL"},
		{"not http", []string{"ftp://127.0.0.1/x"}, 2, "want an http:// or https:// URL"},
		{"no host", []string{"http:///readyz"}, 2, "want an http:// or https:// URL"},
		{"zero timeout", []string{"--timeout", "0s", srv.URL}, 2, "--timeout 0s: want a duration above 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr strings.Builder
			env := &cliEnv{engines: testEngines, stdout: &stdout, stderr: &stderr, logger: slog.New(slog.NewTextHandler(&stderr, nil))}
			code := run(context.Background(), env, append([]string{"probe"}, tc.args...))
			if code != tc.wantCode {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, tc.wantCode, stderr.String())
			}
			switch got := stderr.String(); {
			case tc.wantErr == "" && got != "":
				t.Errorf("stderr %q, want nothing", got)
			case !strings.Contains(got, tc.wantErr):
				t.Errorf("stderr %q, want it to say %q", got, tc.wantErr)
			case tc.wantCode == 1 && strings.Count(got, "\n") != 1:
				t.Errorf("stderr %q, want one line", got)
			case len(got) > 1024:
				t.Errorf("stderr of %d bytes, want a short line", len(got))
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout %q, want nothing", stdout.String())
			}
		})
	}
}
