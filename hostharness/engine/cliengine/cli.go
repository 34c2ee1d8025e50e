// Package cliengine runs guests with installed WebAssembly runtime CLIs
// (wasmtime, wazero, WasmEdge), one process per run, each binding its
// socket itself: reference peers for compare and bench, never chosen by
// default.
package cliengine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/wasiserve/wasiserve/hostharness/engine"
	"github.com/wasiserve/wasiserve/hostharness/engine/internal/enginekit"
)

// cliRuntime describes how to serve a wasip1 guest with an installed
// runtime's command line.
type cliRuntime struct {
	// command is the executable looked up in PATH.
	command string
	// args returns the command's arguments for a run of wasm under cfg,
	// serving on the TCP address listen.
	args func(wasm, listen string, cfg engine.Config) []string
	// env adds variables to the runtime's own environment.
	env func(cfg engine.Config) []string
	// explain turns a failure whose stderr tail is given into a clearer
	// error, or returns nil to keep the original.
	explain func(stderrTail string) error
	// note is logged at every run: what the runtime can and cannot do.
	note string
}

// Kinds declares the runtime CLIs the harness knows.
func Kinds() []engine.Kind {
	var kinds []engine.Kind
	for name, rt := range runtimes() {
		kinds = append(kinds, engine.Kind{Name: name, New: func(context.Context, engine.Options) (engine.Engine, error) {
			return newCLI(name, rt)
		}})
	}
	return kinds
}

// runtimes lists the runtime CLIs the harness knows, by engine name.
func runtimes() map[string]cliRuntime {
	return map[string]cliRuntime{
		"wasmtime-cli": {
			command: "wasmtime",
			args: cliArgs("--dir", func(d engine.Mount) string { return d.Host + "::" + d.Guest }, "--env",
				func(listen string) []string { return []string{"run", "-S", "preview2=n", "-S", "tcplisten=" + listen} }),
			explain: func(tail string) error {
				if strings.Contains(tail, "tcplisten") || strings.Contains(tail, "preview2") {
					return errors.New("this wasmtime CLI rejects `-S preview2=n -S tcplisten`: the wasi-common implementation " +
						"that served preopened sockets was removed from wasmtime in 2026; use the embedded engine wasmtime " +
						"(wasmtime 42 on the project's socket layer) or wazy instead")
				}
				return nil
			},
			note: "wasmtime's CLI puts tcplisten sockets before --dir directories, which hides the directories from the guest (wasmtime issue 3936)",
		},
		"wazero-cli": {
			command: "wazero",
			args: cliArgs("-mount", func(d engine.Mount) string { return d.Host + ":" + d.Guest }, "-env",
				func(listen string) []string { return []string{"run", "-listen", listen} }),
			note: "wazero's poll_oneoff does not sleep on sockets: expect a busy core while the guest is idle",
		},
		"wasmedge-cli": {
			command: "wasmedge",
			args: cliArgs("--dir", func(d engine.Mount) string { return d.Guest + ":" + d.Host }, "--env",
				func(listen string) []string { return []string{"--env", "LISTEN_ADDR=" + listen} }),
			note: "WasmEdge preopens no listener: the guest must bind LISTEN_ADDR itself through WasmEdge's socket extensions",
		},
	}
}

// cliArgs returns a cliRuntime.args function for the usual command line
// shape: leading arguments, then one dirFlag per directory (formatted by
// dir) and one envFlag per variable, then the module and its arguments.
func cliArgs(dirFlag string, dir func(engine.Mount) string, envFlag string, leading func(listen string) []string) func(string, string, engine.Config) []string {
	return func(wasm, listen string, cfg engine.Config) []string {
		args := leading(listen)
		for _, d := range cfg.Dirs {
			args = append(args, dirFlag, dir(d))
		}
		for _, kv := range enginekit.GuestEnv(cfg, nil) {
			args = append(args, envFlag, kv)
		}
		return append(append(args, wasm), cfg.Args...)
	}
}

// cliEngine runs guests with an installed runtime CLI, one process per run.
type cliEngine struct {
	name    string
	runtime cliRuntime
	path    string
}

func newCLI(name string, rt cliRuntime) (engine.Engine, error) {
	path, err := exec.LookPath(rt.command)
	if err != nil {
		return nil, fmt.Errorf("engine %s: the %s command is not installed (not in PATH); "+
			"install it, or use an embedded engine", name, rt.command)
	}
	return &cliEngine{name: name, runtime: rt, path: path}, nil
}

func (e *cliEngine) Name() string { return e.name }

func (e *cliEngine) Load(_ context.Context, path string) (engine.Module, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("load %s: %w", path, err)
	}
	return &cliModule{engine: e, wasm: path}, nil
}

func (e *cliEngine) Close(context.Context) error { return nil }

type cliModule struct {
	engine *cliEngine
	wasm   string
}

func (m *cliModule) Close(context.Context) error { return nil }

func (m *cliModule) Engine() string { return m.engine.name }

// Capabilities are none: the runtime binds its socket itself.
func (m *cliModule) Capabilities() engine.Capabilities { return nil }

func (m *cliModule) Run(ctx context.Context, cfg engine.Config) error {
	if err := cfg.Check(); err != nil {
		return err
	}
	listen, err := engine.TakeOverAddr(m.engine.name, cfg)
	if err != nil {
		return err
	}
	rt := m.engine.runtime
	cfg.Log().Info("running guest with an installed runtime", "command", m.engine.path, "note", rt.note)
	cmd := exec.CommandContext(ctx, m.engine.path, rt.args(m.wasm, listen, cfg)...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 5 * time.Second
	cmd.Env = os.Environ()
	if rt.env != nil {
		cmd.Env = append(cmd.Env, rt.env(cfg)...)
	}
	tail := &tailBuffer{max: 4096}
	cmd.Stdout = enginekit.WriterOrDiscard(cfg.Stdout)
	cmd.Stderr = io.MultiWriter(enginekit.WriterOrDiscard(cfg.Stderr), tail)
	err = cmd.Run()
	if err == nil || ctx.Err() != nil {
		return nil
	}
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		return fmt.Errorf("%s: %w", m.engine.name, err)
	}
	if rt.explain != nil {
		if clear := rt.explain(tail.String()); clear != nil {
			return fmt.Errorf("%s: %w", m.engine.name, clear)
		}
	}
	return &engine.ExitError{Code: exit.ExitCode()}
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf bytes.Buffer
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf.Write(p)
	if extra := t.buf.Len() - t.max; extra > 0 {
		t.buf.Next(extra)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.buf.String()
}
