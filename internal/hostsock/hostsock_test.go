package hostsock_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/samyfodil/wazy"
	"github.com/samyfodil/wazy/sys"

	"github.com/wasiserve/wasiserve/internal/guestbuild"
	"github.com/wasiserve/wasiserve/internal/hostsock"
	"github.com/wasiserve/wasiserve/internal/hostsock/wazysock"
)

// probeWasm is testdata/probe built for wasip1 once per test binary.
var probeWasm string

func TestMain(m *testing.M) {
	code := func() int {
		if err := hostsock.Supported(); err != nil {
			fmt.Println("skipping hostsock tests:", err)
			return 0
		}
		dir, err := os.MkdirTemp("", "hostsock-test")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		probeWasm = filepath.Join(dir, "probe.wasm")
		if err := guestbuild.Build(context.Background(), "./testdata/probe", guestbuild.WASI, probeWasm); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return m.Run()
	}()
	os.Exit(code)
}

// probe is a run of testdata/probe on a listener of its own.
type probe struct {
	ln    net.Listener
	table *hostsock.Table
	// stdout and stderr are the guest's; read them once done has answered.
	stdout, stderr bytes.Buffer
	// done receives the result of running the guest's _start.
	done chan error
}

// startProbe runs the probe guest under ctx in a wazero runtime with
// hostsock's WASI module, its listener at fd 3 on a free loopback port.
func startProbe(t *testing.T, ctx context.Context) *probe {
	t.Helper()
	// No WithCloseOnContextDone: the table itself stops the guest.
	rt := wazy.NewRuntimeWithConfig(ctx, wazy.NewRuntimeConfig())
	t.Cleanup(func() { rt.Close(context.Background()) })
	if _, err := wazysock.Instantiate(ctx, rt); err != nil {
		t.Fatal(err)
	}
	wasm, err := os.ReadFile(probeWasm)
	if err != nil {
		t.Fatal(err)
	}
	compiled, err := rt.CompileModule(ctx, wasm)
	if err != nil {
		t.Fatal(err)
	}
	p := &probe{done: make(chan error, 1)}
	if p.ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.ln.Close() })
	p.table, err = hostsock.NewTable(ctx, p.ln, 3)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.table.Close() })
	go func() {
		_, err := rt.InstantiateModule(wazysock.WithTable(ctx, p.table), compiled, wazy.NewModuleConfig().
			WithStdout(&p.stdout).WithStderr(&p.stderr).
			WithFSConfig(wazysock.Reserve(wazy.NewFSConfig())).
			WithSysNanotime().WithSysWalltime().WithSysNanosleep())
		p.done <- err
	}()
	return p
}

// TestProbe runs a guest that calls the socket functions directly with good
// and bad arguments, and checks every answer.
func TestProbe(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p := startProbe(t, ctx)
	// The connection waits in the listener's backlog until the guest polls.
	conn, err := net.Dial("tcp", p.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	const msg = "hello, probe"
	if _, err := conn.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	echo := make([]byte, len(msg))
	if _, err := io.ReadFull(conn, echo); err != nil || string(echo) != msg {
		conn.Close()
		t.Fatalf("echo: %q, %v; want %q; probe: %v\nstdout:\n%s\nstderr: %s", echo, err, msg, <-p.done, p.stdout.String(), p.stderr.String())
	}
	conn.(*net.TCPConn).CloseWrite()
	select {
	case err := <-p.done:
		if err != nil {
			t.Fatalf("probe: %v; stderr: %s", err, p.stderr.String())
		}
	case <-ctx.Done():
		t.Fatal("probe did not finish")
	}
	got := map[string]string{}
	sc := bufio.NewScanner(&p.stdout)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), "=")
		got[k] = v
	}
	const (
		ok     = "0"
		badf   = "8"
		fault  = "21"
		inval  = "28"
		notcon = "53"
		notsup = "58"
		spipe  = "70"
	)
	want := map[string]string{
		"prestat.listener":           badf, // ends the guest's preopen scan
		"fdstat.listener":            ok,
		"fdstat.listener.filetype":   "6",
		"fdstat.badptr":              fault,
		"filestat.listener":          ok,
		"filestat.listener.filetype": "6",
		"seek.listener":              spipe,
		"read.listener":              notcon,
		"accept.badflags":            inval,
		"poll.zero":                  inval,
		"poll.badin":                 fault,
		"poll.badtag":                inval,
		"poll.clock":                 ok,
		"poll.clock.n":               "1",
		"poll.clock.userdata":        "7",
		"poll.clock.errno":           ok,
		"poll.stdout":                ok,
		"poll.stdout.n":              "1",
		"poll.stdout.userdata":       "13",
		"poll.stdout.errno":          ok,
		"poll.listener":              ok,
		"poll.listener.n":            "1",
		"poll.listener.userdata":     "9",
		"poll.listener.errno":        ok,
		"accept.badptr":              fault,
		"accept":                     ok,
		"conn.high":                  "1",
		"fdstat.conn":                ok,
		"fdstat.conn.filetype":       "6",
		"fdstat.conn.nonblock":       "0",
		"read.badiovs":               fault,
		"read.badbuf":                fault,
		"read.badresult":             fault,
		"read.toomany":               inval,
		"write.badresult":            fault,
		"recv.badflags":              notsup,
		"recv.badroflags":            fault,
		"send.flags":                 notsup,
		"shutdown.bad":               inval,
		"fdstat.setflags.sync":       inval,
		"recv.peek":                  ok,
		"echoed":                     fmt.Sprint(len(msg)),
		"poll.write":                 ok,
		"poll.write.n":               "1",
		"poll.write.userdata":        "11",
		"poll.write.errno":           ok,
		"shutdown.wr":                ok,
		"close":                      ok,
		"close.again":                badf, // no longer owned: wazero's answer
		"read.closed":                badf,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("probe answers (-want +got):\n%s\nstderr: %s", diff, p.stderr.String())
	}
}

// TestCancelWakesPoll checks that cancelling the context ends a guest that
// is blocked in poll_oneoff on an idle listener.
func TestCancelWakesPoll(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p := startProbe(t, ctx)
	// Ready: the probe polls the listener for a client that never comes.
	select {
	case <-p.table.Ready():
	case err := <-p.done:
		t.Fatalf("probe finished without a client: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("the probe never waited on its listener")
	}
	cancel()
	select {
	case err := <-p.done:
		// The guest's next call of a hostsock function ends its run.
		var exit *sys.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != sys.ExitCodeContextCanceled {
			t.Fatalf("probe ended with %v, want it stopped by the cancelled context; stdout:\n%s", err, p.stdout.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("cancelling the context did not stop a guest blocked in poll_oneoff")
	}
}

// notSocket is a net.Listener with no host socket behind it.
type notSocket struct{ net.Listener }

func TestNewTableErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	for _, tc := range []struct {
		ln   net.Listener
		fd   uint32
		want string
	}{
		{ln, hostsock.ConnFDBase, "must be below"},
		{notSocket{ln}, 3, "has no host socket"},
	} {
		table, err := hostsock.NewTable(context.Background(), tc.ln, tc.fd)
		if err == nil {
			table.Close()
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewTable(%T, %d) = %v, want an error containing %q", tc.ln, tc.fd, err, tc.want)
		}
	}
}
