package bench

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/wasiserve/wasiserve/hostharness/internal/child"
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

// harnessAddr finds the address in hostharness serve's "serving" line.
var harnessAddr = child.Matcher(regexp.MustCompile(`^serving .* at http://(\S+)`))

// NativeTarget runs the natively built echo guest at binary on a free
// loopback port; gomaxprocs > 0 sets its GOMAXPROCS.
func NativeTarget(name, binary string, gomaxprocs int) Target {
	t := Target{
		Name:   name,
		Binary: binary,
		Args:   func(string) []string { return []string{"-listen", "127.0.0.1:0"} },
		Addr:   child.EchoGuestAddr,
	}
	if gomaxprocs > 0 {
		t.Env = []string{"GOMAXPROCS=" + strconv.Itoa(gomaxprocs)}
	}
	return t
}

// HarnessTarget serves wasm with "harness serve --engine engineName" on a
// free loopback port, harness being a hostharness executable; serveArgs
// (such as "--instances", "2") are added to serve's flags and to the
// target's name.
func HarnessTarget(harness, engineName, wasm string, serveArgs ...string) Target {
	name := strings.Join(append([]string{"wasm", engineName}, serveArgs...), " ")
	return Target{
		Name:   name,
		Engine: engineName,
		Binary: harness,
		Wasm:   wasm,
		Args: func(cacheDir string) []string {
			args := append([]string{"serve", "--engine", engineName, "--listen", "127.0.0.1:0", "--cache-dir", cacheDir}, serveArgs...)
			return append(args, wasm)
		},
		Addr: harnessAddr,
	}
}

// process is a running target.
type process struct {
	*child.Process
	// Start is the time from launch to the first 200 from GET /healthz.
	Start time.Duration
}

// launch starts t and waits until it answers GET /healthz with 200, for
// at most timeout.
func launch(ctx context.Context, t Target, cacheDir string, timeout time.Duration) (*process, error) {
	begin := time.Now()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	cp, err := child.Start(ctx, t.Name, child.Spec{
		Binary: t.Binary,
		Args:   t.Args(cacheDir),
		Env:    append(os.Environ(), t.Env...),
		Addr:   t.Addr,
	}, timeout)
	if err != nil {
		return nil, err
	}
	p := &process{Process: cp}
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
		case <-p.Exited():
			return nil, p.Fail(t.Name, fmt.Errorf("exited before answering: %v", p.Err()))
		case <-deadline.C:
			return nil, p.Fail(t.Name, fmt.Errorf("not healthy after %v: %w", timeout, err))
		case <-ctx.Done():
			return nil, p.Fail(t.Name, ctx.Err())
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// Usage reads the process tree's CPU time and peak RSS.
func (p *process) Usage() (Usage, error) {
	return treeUsage(p.Pid())
}
