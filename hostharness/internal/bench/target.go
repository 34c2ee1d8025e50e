package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Target is one server process to measure, started fresh for every launch.
type Target struct {
	// Name labels the target in reports.
	Name string
	// Engine is the WebAssembly engine, empty for a native build.
	Engine string
	// Binary is the executable to run; its size is reported.
	Binary string
	// Wasm is the guest module a harness target serves; its size is reported.
	Wasm string
	// Args returns the arguments of a launch whose compilation cache
	// directory is cacheDir (empty and fresh for a cold start).
	Args func(cacheDir string) []string
	// Env is added to the bench's own environment.
	Env []string
	// Addr finds the listening "host:port" in a line of the server's
	// stdout or stderr.
	Addr func(line string) (string, bool)
}

var (
	nativeAddr  = regexp.MustCompile(`msg="echo guest serving".* addr=(\S+)`)
	harnessAddr = regexp.MustCompile(`^serving .* at http://(\S+)`)
)

func matcher(re *regexp.Regexp) func(string) (string, bool) {
	return func(line string) (string, bool) {
		m := re.FindStringSubmatch(line)
		if m == nil {
			return "", false
		}
		return m[1], true
	}
}

// NativeTarget runs the natively built echo guest at binary on a free
// loopback port; gomaxprocs > 0 sets its GOMAXPROCS.
func NativeTarget(name, binary string, gomaxprocs int) Target {
	t := Target{
		Name:   name,
		Binary: binary,
		Args:   func(string) []string { return []string{"-listen", "127.0.0.1:0"} },
		Addr:   matcher(nativeAddr),
	}
	if gomaxprocs > 0 {
		t.Env = []string{"GOMAXPROCS=" + strconv.Itoa(gomaxprocs)}
	}
	return t
}

// HarnessTarget serves wasm with "harness serve --engine engineName" on a
// free loopback port, harness being a hostharness executable.
func HarnessTarget(harness, engineName, wasm string) Target {
	return Target{
		Name:   "wasm " + engineName,
		Engine: engineName,
		Binary: harness,
		Wasm:   wasm,
		Args: func(cacheDir string) []string {
			return []string{"serve", "--engine", engineName, "--listen", "127.0.0.1:0", "--cache-dir", cacheDir, wasm}
		},
		Addr: matcher(harnessAddr),
	}
}

// process is a running target.
type process struct {
	cmd *exec.Cmd
	// Addr is where it serves.
	Addr string
	// Listening is the time from launch to the line giving Addr.
	Listening time.Duration
	// Start is the time from launch to the first 200 from GET /healthz.
	Start  time.Duration
	out    *outputLines
	cancel context.CancelFunc
	exited chan struct{}
	err    error
}

// launch starts t and waits until it answers GET /healthz with 200, for
// at most timeout.
func launch(ctx context.Context, t Target, cacheDir string, timeout time.Duration) (*process, error) {
	runCtx, cancel := context.WithCancel(ctx)
	cmd := exec.CommandContext(runCtx, t.Binary, t.Args(cacheDir)...)
	cmd.Env = append(os.Environ(), t.Env...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	cmd.SysProcAttr = childAttr()
	out := &outputLines{match: t.Addr, addr: make(chan string, 1)}
	cmd.Stdout, cmd.Stderr = out, out
	p := &process{cmd: cmd, out: out, cancel: cancel, exited: make(chan struct{})}

	begin := time.Now()
	if err := cmd.Start(); err != nil {
		cancel()
		return nil, fmt.Errorf("start %s: %w", t.Name, err)
	}
	go func() {
		defer close(p.exited)
		p.err = cmd.Wait()
	}()
	fail := func(err error) (*process, error) {
		p.stop()
		return nil, fmt.Errorf("start %s: %w\n%s", t.Name, err, out.tail())
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	select {
	case p.Addr = <-out.addr:
		p.Listening = time.Since(begin)
	case <-p.exited:
		return fail(fmt.Errorf("exited before serving: %v", p.err))
	case <-deadline.C:
		return fail(fmt.Errorf("no listening address after %v", timeout))
	case <-ctx.Done():
		return fail(ctx.Err())
	}
	client := &http.Client{Timeout: time.Second}
	defer client.CloseIdleConnections()
	for {
		resp, err := client.Get("http://" + p.Addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				p.Start = time.Since(begin)
				return p, nil
			}
			err = fmt.Errorf("GET /healthz: %s", resp.Status)
		}
		select {
		case <-p.exited:
			return fail(fmt.Errorf("exited before answering: %v", p.err))
		case <-deadline.C:
			return fail(fmt.Errorf("not healthy after %v: %w", timeout, err))
		case <-ctx.Done():
			return fail(ctx.Err())
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// Usage reads the process tree's CPU time and peak RSS.
func (p *process) Usage() (Usage, error) {
	return treeUsage(p.cmd.Process.Pid)
}

// stop sends SIGTERM, waits for the exit (killing it after the WaitDelay)
// and reports an exit that was not clean.
func (p *process) stop() error {
	p.cancel()
	<-p.exited
	var exit *exec.ExitError
	switch {
	case p.err == nil, errors.Is(p.err, context.Canceled):
		// exec reports a clean exit after Cancel as the context's error.
		return nil
	case errors.As(p.err, &exit):
		// Ended by our SIGTERM without handling it: still a clean stop.
		if ws, ok := exit.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGTERM {
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
