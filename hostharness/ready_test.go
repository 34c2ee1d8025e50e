package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wasiserve/wasiserve/hostharness/engine/wazy"

	"github.com/wasiserve/wasiserve/internal/enginetest"
	"github.com/wasiserve/wasiserve/internal/sdnotify"
	"github.com/wasiserve/wasiserve/internal/syncbuf"
)

// TestServeNotifySocket runs serve as systemd runs a Type=notify service,
// with a NOTIFY_SOCKET the test listens on, and a guest that prints a
// banner and a line per request on stdout: serve's first stdout line must
// be the serving line, and its only one; the supervisor must get READY=1,
// RELOADING=1 and READY=1 around a reload (SIGHUP), then STOPPING=1 on
// SIGTERM.
func TestServeNotifySocket(t *testing.T) {
	socket := filepath.Join(t.TempDir(), "notify")
	notifications, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: socket, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer notifications.Close()
	next := func() string {
		t.Helper()
		buf := make([]byte, 4096)
		notifications.SetReadDeadline(time.Now().Add(30 * time.Second))
		n, err := notifications.Read(buf)
		if err != nil {
			t.Fatalf("no notification: %v", err)
		}
		return string(buf[:n])
	}
	p := startServe(t, []string{sdnotify.EnvVar + "=" + socket},
		"--engine", wazy.Name, "--listen", "127.0.0.1:0", "--cache-dir", enginetest.CacheDir(), enginetest.Fatal.Path(t))
	url := p.servingURL(t)
	if got := next(); got != "READY=1" {
		t.Fatalf("first notification %q, want READY=1", got)
	}
	if got := post(t, url, "x"); got != "fatal:x" {
		t.Fatalf("guest answered %q", got)
	}
	p.cmd.Process.Signal(syscall.SIGHUP) // a reload: the same guest again
	if got := next(); !strings.HasPrefix(got, "RELOADING=1") {
		t.Fatalf("notification after SIGHUP %q, want RELOADING=1", got)
	}
	if got := next(); got != "READY=1" {
		t.Fatalf("notification after the reload %q, want READY=1", got)
	}
	p.waitLog(t, "msg=reloaded")
	// A new connection: the kept-alive one was the old guest's, which
	// (unlike the echo guest) does not drain its connections.
	fresh := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := fresh.Post(url, "text/plain", strings.NewReader("y"))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(got) != "fatal:y" {
		t.Fatalf("reloaded guest answered %q", got)
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	if got := next(); got != "STOPPING=1" {
		t.Fatalf("notification after SIGTERM %q, want STOPPING=1", got)
	}
	if code := p.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("exit %d after SIGTERM; logs:\n%s", code, p.logs.String())
	}
	for p.stdout.Scan() {
		t.Errorf("stdout line after the serving line: %q", p.stdout.Text())
	}
	for _, guestLine := range []string{"fatalguest: a banner on stdout", "fatalguest: POST /"} {
		if !strings.Contains(p.logs.String(), guestLine) {
			t.Errorf("the guest's stdout line %q is not on stderr:\n%s", guestLine, p.logs.String())
		}
	}
}

// TestServeGuestStdout: the guest's stdout goes to serve's stderr unless
// --guest-stdout stdout says otherwise.
func TestServeGuestStdout(t *testing.T) {
	const banner = "fatalguest: a banner on stdout\n"
	for _, tc := range []struct {
		name     string
		flag     []string
		onStdout bool
	}{
		{"default", nil, false},
		{"stderr", []string{"--guest-stdout", "stderr"}, false},
		{"stdout", []string{"--guest-stdout", "stdout"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr syncbuf.Buffer
			env := &cliEnv{engines: testEngines, stdout: &stdout, stderr: &stderr, logger: slog.New(slog.NewTextHandler(&stderr, nil))}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			code := make(chan int, 1)
			args := append(append([]string{"serve", "--engine", wazy.Name, "--listen", "127.0.0.1:0",
				"--cache-dir", enginetest.CacheDir()}, tc.flag...), enginetest.Fatal.Path(t))
			go func() { code <- run(ctx, env, args) }()
			for !strings.Contains(stdout.String(), "serving ") {
				select {
				case c := <-code:
					t.Fatalf("serve exited %d; stderr:\n%s", c, stderr.String())
				case <-time.After(10 * time.Millisecond):
				}
			}
			cancel()
			if c := <-code; c != 0 {
				t.Fatalf("exit %d; stderr:\n%s", c, stderr.String())
			}
			if got := strings.Contains(stdout.String(), banner); got != tc.onStdout {
				t.Errorf("banner on stdout: %v, want %v; stdout:\n%s", got, tc.onStdout, stdout.String())
			}
			if got := strings.Contains(stderr.String(), banner); got == tc.onStdout {
				t.Errorf("banner on stderr: %v, want %v; stderr:\n%s", got, !tc.onStdout, stderr.String())
			}
		})
	}
}

// TestServeReadyFile: with --ready-file, the serving line is also written
// to the file once serve is ready, and the file is gone after serve.
func TestServeReadyFile(t *testing.T) {
	readyFile := filepath.Join(t.TempDir(), "ready")
	if err := os.WriteFile(readyFile, []byte("stale"), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr syncbuf.Buffer
	env := &cliEnv{engines: testEngines, stdout: &stdout, stderr: &stderr, logger: newLogger(&stderr)}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	code := make(chan int, 1)
	fatalGuest := enginetest.Fatal.Path(t)
	go func() {
		code <- run(ctx, env, []string{"serve", "--engine", wazy.Name, "--listen", "127.0.0.1:0",
			"--cache-dir", enginetest.CacheDir(), "--ready-file", readyFile, fatalGuest})
	}()
	for !strings.Contains(stdout.String(), "serving ") {
		select {
		case c := <-code:
			t.Fatalf("serve exited %d; stderr:\n%s", c, stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	got, err := os.ReadFile(readyFile)
	if err != nil || string(got) != stdout.String() || !servingLine.MatchString(strings.TrimSuffix(string(got), "\n")) {
		t.Errorf("ready file %q (%v), want the serving line %q", got, err, stdout.String())
	}
	cancel()
	if c := <-code; c != 0 {
		t.Fatalf("exit %d; stderr:\n%s", c, stderr.String())
	}
	if _, err := os.Stat(readyFile); !os.IsNotExist(err) {
		t.Errorf("ready file left after serve: %v", err)
	}
}
