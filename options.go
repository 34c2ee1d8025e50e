package wasiserve

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/wasiserve/wasiserve/hostharness/engine"
	"github.com/wasiserve/wasiserve/hostharness/listener"
	"github.com/wasiserve/wasiserve/internal/hostsock"
	"github.com/wasiserve/wasiserve/internal/sdnotify"
)

// Options say how Serve serves a guest. The zero value of each field is a
// working default, except Engines, which must list at least one engine.
type Options struct {
	// Engines are the engines the program offers: builtin.Engines() for
	// all of wasiserve's, or a Set of the engine packages' Kinds for fewer
	// (an embedder that does not want wasmtime lists wazy.Kind() only).
	Engines engine.Set
	// Engine names the engine to run the guest on. Empty: the embedded
	// engine of highest rank that has everything the other options need.
	Engine string
	// Listen is where to serve when Listener is nil; the zero Spec is
	// 127.0.0.1:8080 (DefaultListen). It is bound before anything slow
	// starts, so that a port in use fails at once.
	Listen listener.Spec
	// Listener, when set, is served instead of binding Listen: a socket
	// the caller bound (port 0, say) or inherited. On a stop Serve makes
	// it refuse new connections (listener.StopAccepting), and leaves
	// closing it to the caller.
	Listener net.Listener
	// Instances is the number of guest instances sharing the listener, so
	// that a single-threaded Go guest uses that many cores; 0 means 1, at
	// most MaxInstances and what the machine's memory holds.
	Instances int
	// Restart restarts an instance that exits or traps, with backoff.
	Restart bool
	// DrainTimeout bounds how long the guests may take to finish their
	// requests in flight once a stop (or a reload) began; 0 means
	// DefaultDrainTimeout, and NoDrain stops them at once.
	DrainTimeout time.Duration
	// CacheDir holds compilation caches; empty means
	// engine.DefaultCacheDir(). It must be private to this user.
	CacheDir string
	// keepCode: Load fails where the compiled code cannot be kept in
	// the cache (Compile), instead of compiling in memory.
	keepCode bool
	// MaxMemory is each instance's memory budget in bytes (at least
	// MinMemory, at most 4 GiB): its linear memory and its tables
	// together, however the guest grows them (engine.Budget: the tables
	// may take 1/16 of it; a module with more than one memory or four
	// tables is refused). 0 means DefaultMaxMemory of the memory
	// available and Instances.
	MaxMemory uint64
	// MaxConns bounds each instance's open connections, so that more wait
	// in the kernel's backlog: 0 means the default (DefaultMaxConns) on
	// engines that have a connection limit, NoConnLimit none.
	MaxConns int
	// Reclaim says when the host closes idle connections and slow
	// senders at MaxConns to admit clients that wait (see engine.Reclaim;
	// the zero value is engine.DefaultReclaim).
	Reclaim engine.Reclaim
	// Args are the guest's arguments after its program name.
	Args []string
	// Env is the guest's environment, "KEY=VALUE" entries; it sees no
	// other variable.
	Env []string
	// Dirs are the host directories preopened for the guest; their hosts
	// must exist and be directories.
	Dirs []engine.Mount
	// AllowDial and AllowListen are the HOST:PORT patterns (HOST: IP,
	// [IPv6], name, *.domain or *; PORT: number or *) that a guest built
	// with the WasmEdge socket extensions may connect to and resolve, and
	// bind itself; it may reach nothing else.
	AllowDial, AllowListen []string
	// ProxyFrom are the prefixes of trusted upstreams (load balancers)
	// whose connections must start with a PROXY protocol header, version
	// 1 or 2: the guest sees the client the header names, a connection
	// without a valid header in time is closed, and a LOCAL header (a
	// balancer's health check) keeps the balancer's own address. Other
	// peers are served as without it, and a header from them is their
	// data. It needs a TCP listener (see hostsock.ProxyFrom).
	ProxyFrom []netip.Prefix
	// Stdout and Stderr receive the guest's output; nil discards it.
	Stdout, Stderr io.Writer
	// GuestOutputRate bounds the bytes per second each instance may write
	// to Stdout and Stderr together, with a burst of
	// engine.OutputBurstSeconds of it; the rest is dropped, counted and
	// logged. 0 is engine.DefaultOutputRate (1 MiB/s); NoOutputLimit
	// lifts the bound.
	GuestOutputRate int64
	// Logger receives the host's messages; nil discards them.
	Logger *slog.Logger
	// OnReady, when set, is called once every instance is ready, with
	// what is served where.
	OnReady func(Ready)
	// ReadyFile, when set, receives Ready's line once the guest is ready
	// (replaced at once; removed when Serve returns). Its directory must
	// exist.
	ReadyFile string
	// NotifySocket is the service manager's notify socket (systemd's
	// $NOTIFY_SOCKET: a path, or an abstract name starting with @), told
	// READY=1, RELOADING=1 and STOPPING=1; empty for none.
	NotifySocket string
	// Watch reloads the guest when its file changes (as Server.Reload
	// does), on engines with a host-owned listener.
	Watch bool
	// AdminAddr, when set, is the HOST:PORT of a listener of the host's
	// own (never the guest's): Prometheus metrics at /metrics, liveness
	// at /livez and readiness at /readyz (see Server.Readiness). It has
	// no authentication: bind a loopback or private address.
	AdminAddr string
	// ShutdownDelay is how long the guest keeps serving once ctx is done,
	// with /readyz answering 503 "draining", before the listener stops
	// and the drain (DrainTimeout) begins: the time a load balancer or
	// Kubernetes takes to stop sending new requests. 0: no delay; none
	// when ctx ends before the guest is ready. Server.SkipShutdownDelay
	// cuts it short.
	ShutdownDelay time.Duration
}

// Defaults and bounds of Options.
const (
	// DefaultListen is where Serve listens when neither Listen nor
	// Listener is set.
	DefaultListen = "127.0.0.1:8080"
	// DefaultDrainTimeout is the DrainTimeout when it is 0.
	DefaultDrainTimeout = 10 * time.Second
	// MaxInstances bounds Instances.
	MaxInstances = 1024
	// MinMemory is the least MaxMemory a Go guest can start in.
	MinMemory = 1 << 20
	// MaxGuestSize bounds the guest file Serve and each reload read.
	MaxGuestSize = engine.MaxModuleSize
	// NoConnLimit is the MaxConns of no limit.
	NoConnLimit = -1
	// NoOutputLimit is the GuestOutputRate of no limit.
	NoOutputLimit = -1
	// NoDrain is the DrainTimeout that stops guests at once.
	NoDrain time.Duration = -1
)

// instanceFootprint is a serving echo instance's resident memory, for the
// Instances check against the memory available.
const instanceFootprint = 12 << 20

// OptionError reports an option that cannot be used, naming the field of
// Options (or "Guest", the guest's path).
type OptionError struct {
	// Option is the field's name.
	Option string
	// Value is the value as given, empty when it says nothing more.
	Value string
	Err   error
}

func (e *OptionError) Error() string {
	if e.Value == "" {
		return fmt.Sprintf("%s: %v", e.Option, e.Err)
	}
	return fmt.Sprintf("%s %s: %v", e.Option, e.Value, e.Err)
}

func (e *OptionError) Unwrap() error { return e.Err }

// optionErr is an *OptionError.
func optionErr(option, value, format string, args ...any) error {
	return &OptionError{Option: option, Value: value, Err: fmt.Errorf(format, args...)}
}

// Validate checks every option and the guest's path (empty: no guest yet,
// as for a guest still to be built), without starting anything slow: the
// errors are *OptionErrors, or an *engine.UnsupportedError for an option
// that the named engine cannot honour.
func (o Options) Validate(guest string) error {
	_, err := o.resolve(guest)
	return err
}

// resolved is what Validate works out: the engine to use and the checked
// pieces of the options.
type resolved struct {
	kind engine.Kind
	// maxMemory is MaxMemory, or its default.
	maxMemory uint64
	listen    listener.Spec
	notifier  *sdnotify.Notifier
}

// resolve validates o and picks the engine.
func (o Options) resolve(guest string) (resolved, error) {
	var r resolved
	if len(o.Engines) == 0 {
		return r, optionErr("Engines", "", "no engine: list at least one (builtin.Engines() has all)")
	}
	if o.Engine != "" {
		if _, err := o.Engines.Lookup(o.Engine); err != nil {
			return r, &OptionError{Option: "Engine", Err: err}
		}
	}
	r.listen = o.listenSpec()
	if o.Listener == nil {
		// A Spec made by hand must read back as it says.
		if _, err := listener.Parse(r.listen.String()); err != nil {
			return r, &OptionError{Option: "Listen", Err: err}
		}
	}
	if o.Instances < 0 || o.Instances > MaxInstances {
		return r, optionErr("Instances", fmt.Sprint(o.Instances), "want 1 to %d (0: 1)", MaxInstances)
	}
	if o.DrainTimeout < NoDrain {
		return r, optionErr("DrainTimeout", o.DrainTimeout.String(), "want a duration of 0 or more")
	}
	if o.ShutdownDelay < 0 {
		return r, optionErr("ShutdownDelay", o.ShutdownDelay.String(), "want a duration of 0 or more")
	}
	// Read once: each reading is several files, and the checks and their
	// messages must agree.
	avail := availableMemory()
	if avail > 0 && uint64(max(o.Instances, 1))*instanceFootprint > avail {
		return r, optionErr("Instances", fmt.Sprint(o.Instances), "each instance takes about %d MiB and this machine has %d MiB available",
			instanceFootprint>>20, avail>>20)
	}
	if o.MaxMemory != 0 && (o.MaxMemory < MinMemory || o.MaxMemory > 1<<32) {
		return r, optionErr("MaxMemory", fmt.Sprint(o.MaxMemory), "want a size from 1MiB to 4GiB such as 256MiB")
	}
	if o.GuestOutputRate < NoOutputLimit {
		return r, optionErr("GuestOutputRate", fmt.Sprint(o.GuestOutputRate), "want bytes per second, 0 for the default or NoOutputLimit")
	}
	if r.maxMemory = o.memoryBudget(avail); r.maxMemory < MinDefaultMemory && o.MaxMemory == 0 {
		return r, optionErr("Instances", fmt.Sprint(o.Instances), "%d instances do not fit in the %d MiB available: each would get a memory budget of %d MiB, less than %d MiB; use fewer instances, or set each one's budget (MaxMemory; serve's --max-memory)",
			max(o.Instances, 1), avail>>20, r.maxMemory>>20, MinDefaultMemory>>20)
	}
	if o.MaxConns < NoConnLimit {
		return r, optionErr("MaxConns", fmt.Sprint(o.MaxConns), "want 0 or more")
	}
	if err := o.Reclaim.Check(); err != nil {
		return r, &OptionError{Option: "Reclaim", Err: err}
	}
	if o.AdminAddr != "" {
		if _, _, err := net.SplitHostPort(o.AdminAddr); err != nil {
			return r, optionErr("AdminAddr", fmt.Sprintf("%q", o.AdminAddr), "want HOST:PORT: %w", err)
		}
	}
	if o.Watch && guest == "" {
		return r, optionErr("Watch", "", "needs a guest file to watch")
	}
	if err := engine.CheckEnv(o.Env); err != nil {
		return r, &OptionError{Option: "Env", Err: err}
	}
	if err := engine.CheckMounts(o.Dirs); err != nil {
		return r, &OptionError{Option: "Dirs", Err: err}
	}
	if err := (hostsock.Policy{Dial: o.AllowDial}).Check(); err != nil {
		return r, &OptionError{Option: "AllowDial", Err: err}
	}
	if err := (hostsock.Policy{Listen: o.AllowListen}).Check(); err != nil {
		return r, &OptionError{Option: "AllowListen", Err: err}
	}
	if err := o.checkProxyFrom(r.listen); err != nil {
		return r, err
	}
	for _, d := range o.Dirs {
		if st, err := os.Stat(d.Host); err != nil {
			return r, &OptionError{Option: "Dirs", Value: d.String(), Err: err}
		} else if !st.IsDir() {
			return r, optionErr("Dirs", d.String(), "%s is not a directory", d.Host)
		}
	}
	if o.ReadyFile != "" {
		if st, err := os.Stat(filepath.Dir(o.ReadyFile)); err != nil {
			return r, &OptionError{Option: "ReadyFile", Err: err}
		} else if !st.IsDir() {
			return r, optionErr("ReadyFile", o.ReadyFile, "%s is not a directory", filepath.Dir(o.ReadyFile))
		}
	}
	if guest != "" {
		if err := checkGuest(guest); err != nil {
			return r, err
		}
	}
	if err := engine.CheckCacheDir(o.cacheDir()); err != nil {
		return r, &OptionError{Option: "CacheDir", Err: err}
	}
	var err error
	if r.notifier, err = sdnotify.Open(o.NotifySocket); err != nil {
		return r, &OptionError{Option: "NotifySocket", Err: err}
	}
	r.kind, err = o.pickEngine()
	return r, err
}

// checkGuest checks the guest's file: a regular file of at most
// MaxGuestSize (engine.CheckModuleFile, which reloads apply too).
func checkGuest(guest string) error {
	if err := engine.CheckModuleFile(guest); err != nil {
		return &OptionError{Option: "Guest", Err: err}
	}
	return nil
}

// memoryBudget is MaxMemory, or when it is 0 DefaultMaxMemory of avail,
// the memory available (availableMemory).
func (o Options) memoryBudget(avail uint64) uint64 {
	if o.MaxMemory != 0 {
		return o.MaxMemory
	}
	return DefaultMaxMemory(avail, o.Instances)
}

// listenSpec is Listen, or DefaultListen when it is the zero Spec.
func (o Options) listenSpec() listener.Spec {
	if o.Listen == (listener.Spec{}) {
		spec, _ := listener.Parse(DefaultListen)
		return spec
	}
	return o.Listen
}

// cacheDir is CacheDir or the default.
func (o Options) cacheDir() string {
	if o.CacheDir == "" {
		return engine.DefaultCacheDir()
	}
	return o.CacheDir
}

// drainTimeout is DrainTimeout with its default.
func (o Options) drainTimeout() time.Duration {
	switch {
	case o.DrainTimeout == 0:
		return DefaultDrainTimeout
	case o.DrainTimeout == NoDrain:
		return 0
	}
	return o.DrainTimeout
}

// engineConfig is each instance's engine configuration, without the
// listener, and with MaxConns only when given.
func (o Options) engineConfig() engine.Config {
	return engine.Config{Args: o.Args, Env: o.Env, Dirs: o.Dirs, MaxConns: max(o.MaxConns, 0), Reclaim: o.Reclaim,
		AllowDial: o.AllowDial, AllowListen: o.AllowListen, ProxyFrom: o.ProxyFrom,
		Stdout: o.Stdout, Stderr: o.Stderr, OutputRate: o.GuestOutputRate, Logger: o.Logger}
}

// needs lists what the options need of an engine, each with its option.
func (o Options) needs(listen listener.Spec) []engine.Need {
	var needs []engine.Need
	switch {
	case o.Listener != nil && o.Listener.Addr().Network() != "tcp":
		needs = append(needs, engine.Need{Capability: engine.HostListener, Setting: "Listener"})
	case o.Listener == nil && listen.HostOnly():
		needs = append(needs, engine.Need{Capability: engine.HostListener, Setting: "Listen"})
	}
	if o.Instances > 1 {
		needs = append(needs, engine.Need{Capability: engine.HostListener, Setting: "Instances"})
	}
	return append(needs, o.engineConfig().Needs()...)
}

// pickEngine is the named engine, checked against what the options need,
// or, when none is named, the embedded engine of highest rank that has
// it all.
func (o Options) pickEngine() (engine.Kind, error) {
	needs := o.needs(o.listenSpec())
	if o.Engine == "" {
		if k, ok := o.Engines.Pick(needs); ok {
			return k, nil
		}
		def, ok := o.Engines.Default()
		if !ok {
			return engine.Kind{}, optionErr("Engines", "", "none of %s runs here", o.Engines.Names())
		}
		n, _ := def.Capabilities.Missing(needs)
		return engine.Kind{}, &engine.UnsupportedError{Engine: def.Name, Need: n, Engines: o.Engines.With(n.Capability)}
	}
	k, err := o.Engines.Lookup(o.Engine)
	if err != nil {
		return k, &OptionError{Option: "Engine", Err: err}
	}
	if n, missing := k.Capabilities.Missing(needs); missing {
		return k, &engine.UnsupportedError{Engine: k.Name, Need: n, Engines: o.Engines.With(n.Capability)}
	}
	return k, nil
}
