// Command hostharness runs wasip1 guests on a preopened listening socket
// under embedded WebAssembly engines or installed runtime CLIs.
//
//	hostharness serve [flags] [guest.wasm]
//	hostharness probe [--timeout D] URL
//
// Run "hostharness help" for the commands and "hostharness CMD -h" for
// their flags.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"

	"github.com/wasiserve/wasiserve/hostharness/engine"
	"github.com/wasiserve/wasiserve/hostharness/engine/builtin"
)

// command is one subcommand of hostharness.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, env *cliEnv, args []string) int
}

// cliEnv is what a command may touch of the process.
type cliEnv struct {
	stdout, stderr io.Writer
	logger         *slog.Logger
	// engines are the engines the commands offer.
	engines engine.Set
	// sighup receives the SIGHUPs sent to the process (serve reloads the
	// guest); nil in tests that send none.
	sighup <-chan os.Signal
	// secondSignal, when not nil and holding a function, is called on a
	// second SIGINT or SIGTERM instead of exiting, if it returns true
	// (serve ends its shutdown delay); a third signal then exits.
	secondSignal *atomic.Pointer[func() bool]
}

func commands() []command {
	return append([]command{
		{"serve", "serve a guest on a listening socket until interrupted", runServe},
		{"compile", "compile a guest into an engine's compilation cache, for a later serve", runCompile},
		{"probe", "GET a URL once and exit 0 on a 2xx answer: a health check for images without a shell", runProbe},
	}, toolCommands()...)
}

func main() {
	// SIGHUP asks for a reload, not a stop.
	sighup := make(chan os.Signal, 1)
	signal.Notify(sighup, syscall.SIGHUP)
	env := &cliEnv{
		stdout:  os.Stdout,
		stderr:  os.Stderr,
		logger:  newLogger(os.Stderr),
		engines: builtin.Engines(),
		sighup:  sighup,

		secondSignal: new(atomic.Pointer[func() bool]),
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	stop := watchSignals(env.logger, cancel, env.secondSignal)
	code := run(ctx, env, os.Args[1:])
	stop()
	os.Exit(code)
}

// watchSignals cancels the commands' context on the first SIGINT or
// SIGTERM, with the signal as the cause; a second one, for a stop that
// takes too long, ends the process at once with status 128+signal, as the
// signal's default action would, unless second holds a function that
// takes it (serve's shutdown delay ends, and the next signal exits). stop
// ends the watch.
func watchSignals(logger *slog.Logger, cancel context.CancelCauseFunc, second *atomic.Pointer[func() bool]) (stop func()) {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case s := <-sigs:
			cancel(fmt.Errorf("%v signal received", s))
		case <-done:
			return
		}
		for {
			select {
			case s := <-sigs:
				if f := second.Swap(nil); f != nil && (*f)() {
					logger.Warn("second signal: shutdown delay ended, draining now (another signal exits at once)", "signal", s)
					continue
				}
				logger.Warn("second signal: exiting now", "signal", s)
				os.Exit(signalExitCode(s))
			case <-done:
				return
			}
		}
	}()
	return func() {
		signal.Stop(sigs)
		close(done)
	}
}

func run(ctx context.Context, env *cliEnv, args []string) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(env.stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(ctx, env, args[1:])
		}
	}
	fmt.Fprintf(env.stderr, "hostharness: unknown command %q\n", args[0])
	usage(env.stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: hostharness COMMAND [flags] [guest.wasm]\n\ncommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'hostharness COMMAND -h' for a command's flags.")
}

// newFlagSet returns a command's flag set, printing usage (the given
// text, then the flags) and errors on env.stderr.
func newFlagSet(env *cliEnv, name, usage string) *flag.FlagSet {
	flags := flag.NewFlagSet(name, flag.ContinueOnError)
	flags.SetOutput(env.stderr)
	flags.Usage = func() {
		fmt.Fprintln(flags.Output(), usage+"\n\nflags:")
		flags.PrintDefaults()
	}
	return flags
}

// parseFlags parses args; when it returns ok false the command exits with
// code: 0 after -h (usage printed), 2 after a bad flag, reported in one
// line that points to -h rather than followed by the whole usage.
func parseFlags(flags *flag.FlagSet, args []string) (code int, ok bool) {
	out := flags.Output()
	var usage bytes.Buffer
	flags.SetOutput(&usage)
	err := flags.Parse(args)
	flags.SetOutput(out)
	switch {
	case err == nil:
		return 0, true
	case errors.Is(err, flag.ErrHelp):
		io.Copy(out, &usage)
		return 0, false
	default:
		fmt.Fprintf(out, "hostharness %s: %v (see hostharness %s -h)\n", flags.Name(), err, flags.Name())
		return 2, false
	}
}

// defaultEngine is the name of env's default engine ("" if none runs here).
func defaultEngine(env *cliEnv) string {
	k, _ := env.engines.Default()
	return k.Name
}
