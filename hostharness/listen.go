package main

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/wasiserve/wasiserve/guest/wasisock"
	"github.com/wasiserve/wasiserve/hostharness/engine"
)

// systemdListen is the --listen value that serves a socket passed by
// systemd socket activation; "systemd:NAME" picks one by its
// LISTEN_FDNAMES entry (FileDescriptorName= in the .socket unit).
const systemdListen = "systemd"

// activationVars are the variables of systemd's socket activation.
var activationVars = []string{"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"}

// activated reports whether systemd passed this process listening sockets:
// LISTEN_FDS is a positive count and LISTEN_PID is this process.
func activated(getenv func(string) string) bool {
	n, err := strconv.Atoi(getenv("LISTEN_FDS"))
	return err == nil && n > 0 && getenv("LISTEN_PID") == strconv.Itoa(os.Getpid())
}

// withoutActivation drops the socket-activation variables from env: they
// describe the host's descriptors, not the guest's.
func withoutActivation(env []string) []string {
	var out []string
	for _, kv := range env {
		key, _, _ := strings.Cut(kv, "=")
		if !isActivationVar(key) {
			out = append(out, kv)
		}
	}
	return out
}

func isActivationVar(key string) bool { return slices.Contains(activationVars, key) }

// ownedListenSpec reports whether the --listen value names a listener only
// the host can hold (a Unix socket, or one from systemd) rather than an
// address an engine can bind.
func ownedListenSpec(spec string) bool {
	return strings.HasPrefix(spec, "unix:") || spec == systemdListen || strings.HasPrefix(spec, systemdListen+":")
}

// openListener opens what a --listen value names: "host:port", "unix:/path",
// or "systemd[:NAME]". It uses the guest shim's own code (package wasisock),
// natively, so that host and guest read LISTEN_FDS alike.
func openListener(spec string, getenv func(string) string) (net.Listener, error) {
	if spec == systemdListen || strings.HasPrefix(spec, systemdListen+":") {
		if !activated(getenv) {
			return nil, fmt.Errorf("listen %s: systemd passed no socket to this process (LISTEN_FDS, LISTEN_PID=%d)", spec, os.Getpid())
		}
		name, _ := strings.CutPrefix(strings.TrimPrefix(spec, systemdListen), ":")
		ln, _, err := wasisock.Listen(wasisock.Config{Name: name, Getenv: getenv})
		if err != nil {
			return nil, fmt.Errorf("listen %s: %w", spec, err)
		}
		return ln, nil
	}
	if path, ok := strings.CutPrefix(spec, "unix:"); ok {
		if err := removeStaleSocket(path); err != nil {
			return nil, fmt.Errorf("listen %s: %w", spec, err)
		}
	}
	noActivation := func(key string) string {
		if isActivationVar(key) {
			return ""
		}
		return getenv(key)
	}
	ln, _, err := wasisock.Listen(wasisock.Config{Addr: spec, Getenv: noActivation})
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", spec, err)
	}
	return ln, nil
}

// needsOwnedListener reports whether the serve flags ask for something
// only an engine whose host owns the sockets can do.
func needsOwnedListener(cfg engine.Config, opts serveOptions) bool {
	return ownedListenSpec(cfg.Listen) || opts.instances > 1 || cfg.MaxConns > 0 ||
		len(cfg.AllowDial) > 0 || len(cfg.AllowListen) > 0
}

// removeStaleSocket removes the Unix socket file at path when nothing
// listens on it any more (a server that crashed left it behind), so that
// binding it again works. A file that is not a socket, or a socket that
// still accepts, is left alone: binding then fails with the system's error.
func removeStaleSocket(path string) error {
	info, err := os.Lstat(path)
	if err != nil || info.Mode().Type() != fs.ModeSocket {
		return nil
	}
	conn, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		conn.Close()
		return nil
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return nil
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("remove stale socket: %w", err)
	}
	return nil
}
