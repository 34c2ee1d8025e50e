// Package child runs a server as a child process: it starts it, finds the
// address it serves on in a line of its output, keeps the last lines for
// error messages, and stops it with SIGTERM. The child dies with the
// harness where the platform allows (Linux: Pdeathsig).
package child

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Spec says how to start a server and how to find its address.
type Spec struct {
	// Binary is the executable; Args its arguments.
	Binary string
	Args   []string
	// Env is the process's whole environment; nil means the harness's own.
	Env []string
	// Addr finds the listening "host:port" in a line of the server's
	// stdout or stderr.
	Addr func(line string) (string, bool)
}

// Matcher returns a Spec.Addr that captures re's first group.
func Matcher(re *regexp.Regexp) func(string) (string, bool) {
	return func(line string) (string, bool) {
		m := re.FindStringSubmatch(line)
		if m == nil {
			return "", false
		}
		return m[1], true
	}
}

// EchoGuestAddr finds the address in the native echo guest's startup log
// line (`msg="echo guest serving" ... addr=HOST:PORT`).
var EchoGuestAddr = Matcher(regexp.MustCompile(`msg="echo guest serving".* addr=(\S+)`))

// stopDelay is how long Stop waits after SIGTERM before killing.
const stopDelay = 10 * time.Second

// Process is a running server.
type Process struct {
	// Addr is where it serves.
	Addr string
	// Listening is the time from launch to the line giving Addr.
	Listening time.Duration
	cmd       *exec.Cmd
	out       *outputLines
	cancel    context.CancelFunc
	exited    chan struct{}
	err       error
}

// Start launches spec and returns once it has printed its address, for at
// most timeout. name labels errors.
func Start(ctx context.Context, name string, spec Spec, timeout time.Duration) (*Process, error) {
	runCtx, cancel := context.WithCancel(ctx)
	cmd := exec.CommandContext(runCtx, spec.Binary, spec.Args...)
	cmd.Env = spec.Env
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = stopDelay
	cmd.SysProcAttr = dieWithParent()
	out := &outputLines{match: spec.Addr, addr: make(chan string, 1)}
	cmd.Stdout, cmd.Stderr = out, out
	p := &Process{cmd: cmd, out: out, cancel: cancel, exited: make(chan struct{})}

	begin := time.Now()
	if err := cmd.Start(); err != nil {
		cancel()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		defer close(p.exited)
		p.err = cmd.Wait()
	}()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	select {
	case p.Addr = <-out.addr:
		p.Listening = time.Since(begin)
		return p, nil
	case <-p.exited:
		return nil, p.Fail(name, fmt.Errorf("exited before serving: %v", p.err))
	case <-deadline.C:
		return nil, p.Fail(name, fmt.Errorf("no listening address after %v", timeout))
	case <-ctx.Done():
		return nil, p.Fail(name, ctx.Err())
	}
}

// Fail stops the process and returns err, labelled with name, followed by
// the process's last lines of output.
func (p *Process) Fail(name string, err error) error {
	p.Stop()
	return fmt.Errorf("start %s: %w\n%s", name, err, p.out.tail())
}

// Pid is the process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Exited is closed once the process has exited; Err then says how.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// Err is the process's exit error, once Exited is closed.
func (p *Process) Err() error { return p.err }

// Stop sends SIGTERM, waits for the exit (killing it after stopDelay)
// and reports an exit that was not clean.
func (p *Process) Stop() error {
	p.cancel()
	<-p.exited
	var exit *exec.ExitError
	switch {
	case p.err == nil, errors.Is(p.err, context.Canceled):
		// exec reports a clean exit after Cancel as the context's error.
		return nil
	case errors.As(p.err, &exit):
		// Ended by our SIGTERM without handling it: still a clean stop.
		if endedBySIGTERM(exit) {
			return nil
		}
	}
	return fmt.Errorf("stop: %w\n%s", p.err, p.out.tail())
}

// outputLines receives a server's stdout and stderr, looks for the
// listening address and keeps the last lines for error messages.
type outputLines struct {
	mu      sync.Mutex
	partial []byte
	last    []string
	match   func(string) (string, bool)
	found   bool
	addr    chan string
}

const keepLines = 20

func (o *outputLines) Write(b []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.partial = append(o.partial, b...)
	for {
		i := bytes.IndexByte(o.partial, '\n')
		if i < 0 {
			break
		}
		line := string(o.partial[:i])
		o.partial = o.partial[i+1:]
		if !o.found {
			if addr, ok := o.match(line); ok {
				o.found = true
				o.addr <- addr
			}
		}
		o.last = append(o.last, line)
		if len(o.last) > keepLines {
			o.last = o.last[1:]
		}
	}
	return len(b), nil
}

func (o *outputLines) tail() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return "output:\n" + strings.Join(append(o.last, string(o.partial)), "\n")
}
