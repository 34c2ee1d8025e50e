package child_test

import (
	"context"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/wasiserve/wasiserve/hostharness/internal/child"
)

var listening = child.Matcher(regexp.MustCompile(`^listening on (\S+)$`))

func shell(t *testing.T, script string) child.Spec {
	t.Helper()
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skipf("no sh to run a child with: %v", err)
	}
	return child.Spec{Binary: sh, Args: []string{"-c", script}, Addr: listening}
}

func TestStartAndStop(t *testing.T) {
	p, err := child.Start(context.Background(), "server", shell(t, "echo booting; echo 'listening on 127.0.0.1:4321'; exec sleep 60"), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if p.Addr != "127.0.0.1:4321" || p.Listening <= 0 {
		t.Fatalf("Addr %q after %v", p.Addr, p.Listening)
	}
	if err := p.Stop(); err != nil {
		t.Fatalf("Stop of a child ended by SIGTERM: %v", err)
	}
}

func TestStartFailures(t *testing.T) {
	for _, tc := range []struct {
		name, script, want string
	}{
		{"exits early", "echo 'bad flag' >&2; exit 3", "exited before serving"},
		{"never listens", "echo silent; exec sleep 60", "no listening address"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := child.Start(context.Background(), "server", shell(t, tc.script), 500*time.Millisecond)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Start: %v, want an error containing %q", err, tc.want)
			}
			if tc.name == "exits early" && !strings.Contains(err.Error(), "bad flag") {
				t.Errorf("error %q lacks the child's output", err)
			}
		})
	}
}

func TestEchoGuestAddr(t *testing.T) {
	line := `time=2026-11-25T02:21:50.900Z level=INFO msg="echo guest serving" source=address fd=-1 addr=127.0.0.1:18080`
	if addr, ok := child.EchoGuestAddr(line); !ok || addr != "127.0.0.1:18080" {
		t.Fatalf("EchoGuestAddr = %q, %v", addr, ok)
	}
	if _, ok := child.EchoGuestAddr(`msg="other"`); ok {
		t.Fatal("matched an unrelated line")
	}
}
