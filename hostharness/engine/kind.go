package engine

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Kind declares one engine: the one place that says what it is called,
// what it can do, how it ranks for the default choice, and how to make
// one. Each engine's package exports its Kind; a Set lists those a
// program links.
type Kind struct {
	// Name is what an operator names the engine by (--engine).
	Name string
	// FormerNames are names of earlier releases, refused with a pointer
	// to Name.
	FormerNames []string
	// Capabilities are what its runs can do beyond running a guest.
	Capabilities Capabilities
	// Rank orders the embedded engines for the default choice: the
	// available one of highest rank is the default. Engines of rank 0 are
	// not embedded (installed runtime CLIs) and never chosen by default.
	Rank int
	// Available, when set, reports why the engine cannot run in this
	// build or on this system (built without cgo, say), or nil.
	Available func() error
	// New builds an engine. Set.New checks the cache directory first.
	New func(ctx context.Context, opts Options) (Engine, error)
}

// available is k.Available's answer, nil when it has none.
func (k Kind) available() error {
	if k.Available == nil {
		return nil
	}
	return k.Available()
}

// Embedded reports whether k runs inside this process and can here.
func (k Kind) Embedded() bool { return k.Rank > 0 && k.available() == nil }

// Set is the engines a program offers, in any order.
type Set []Kind

// ErrUnknownEngine is returned (wrapped) for a name no Kind of the Set has.
var ErrUnknownEngine = errors.New("unknown engine")

// Lookup returns the Kind named name.
func (s Set) Lookup(name string) (Kind, error) {
	for _, k := range s {
		if k.Name == name {
			return k, nil
		}
	}
	for _, k := range s {
		if slices.Contains(k.FormerNames, name) {
			return Kind{}, fmt.Errorf("engine %q: %w: it is now called %q", name, ErrUnknownEngine, k.Name)
		}
	}
	return Kind{}, fmt.Errorf("engine %q: %w (have %s)", name, ErrUnknownEngine, strings.Join(s.Names(), ", "))
}

// Names lists the names of the Set's engines, sorted.
func (s Set) Names() []string {
	names := make([]string, 0, len(s))
	for _, k := range s {
		names = append(names, k.Name)
	}
	slices.Sort(names)
	return names
}

// Embedded lists the engines that run inside this process and can here,
// highest rank first.
func (s Set) Embedded() []Kind {
	var out []Kind
	for _, k := range s {
		if k.Embedded() {
			out = append(out, k)
		}
	}
	slices.SortStableFunc(out, func(a, b Kind) int { return cmp.Compare(b.Rank, a.Rank) })
	return out
}

// EmbeddedNames lists the names of Embedded's engines, in its order.
func (s Set) EmbeddedNames() []string {
	var names []string
	for _, k := range s.Embedded() {
		names = append(names, k.Name)
	}
	return names
}

// Default is the embedded engine of highest rank; ok is false when the
// Set has none that can run here.
func (s Set) Default() (k Kind, ok bool) {
	embedded := s.Embedded()
	if len(embedded) == 0 {
		return Kind{}, false
	}
	return embedded[0], true
}

// With lists the embedded engines that have capability c, highest rank
// first.
func (s Set) With(c Capability) []string {
	var names []string
	for _, k := range s.Embedded() {
		if k.Capabilities.Has(c) {
			names = append(names, k.Name)
		}
	}
	return names
}

// Pick returns the embedded engine of highest rank that has every
// capability in needs; ok is false when none has.
func (s Set) Pick(needs []Need) (k Kind, ok bool) {
	for _, k := range s.Embedded() {
		if _, missing := k.Capabilities.Missing(needs); !missing {
			return k, true
		}
	}
	return Kind{}, false
}

// SelectAll is the engine list that selects every engine (Select).
const SelectAll = "all"

// Select expands a comma-separated list of engine names: SelectAll is
// every embedded engine, then every other one (installed or not: callers
// report the missing ones).
func (s Set) Select(spec string) ([]string, error) {
	if spec == SelectAll {
		names := s.EmbeddedNames()
		for _, name := range s.Names() {
			if !slices.Contains(names, name) {
				names = append(names, name)
			}
		}
		return names, nil
	}
	names := strings.Split(spec, ",")
	for _, name := range names {
		if _, err := s.Lookup(name); err != nil {
			return nil, err
		}
	}
	return names, nil
}

// New returns a new engine of the named Kind. Its cache directory must be
// private to this user (see OpenCacheDir); one that cannot be used
// (read-only, full) is logged, and the engine compiles in memory what it
// cannot load from it.
func (s Set) New(ctx context.Context, name string, opts Options) (Engine, error) {
	k, err := s.Lookup(name)
	if err != nil {
		return nil, err
	}
	return k.Open(ctx, opts)
}

// Open returns a new engine of Kind k, as Set.New does: it opens
// opts.CacheDir as opts.Cache for the engine, and closes it with the
// engine.
func (k Kind) Open(ctx context.Context, opts Options) (Engine, error) {
	if err := k.available(); err != nil {
		return nil, fmt.Errorf("engine %s: %w", k.Name, err)
	}
	if opts.CacheDir == "" {
		opts.CacheDir = DefaultCacheDir()
	}
	cleanup, err := openCache(&opts)
	if err != nil {
		return nil, err
	}
	eng, err := k.New(ctx, opts)
	if err != nil {
		return nil, errors.Join(err, cleanup())
	}
	return cachedEngine{eng, cleanup}, nil
}

// UnsupportedError reports a setting that needs a capability the engine
// lacks.
type UnsupportedError struct {
	// Engine is the engine's name.
	Engine string
	// Need is what was asked of it.
	Need Need
	// Engines lists engines that have it, when the caller knows them.
	Engines []string
}

func (e *UnsupportedError) Error() string {
	msg := fmt.Sprintf("%s needs %s, which engine %s does not support", e.Need.Setting, e.Need.Capability, e.Engine)
	if len(e.Engines) > 0 {
		msg += "; engines that do: " + strings.Join(e.Engines, ", ")
	}
	return msg
}

// MissingImportError is Load's error for a guest that imports a function
// the engine does not provide (a WasmEdge socket extension, say).
type MissingImportError struct {
	// Path is the guest's file; Module and Name the import; Engine the
	// engine's name.
	Path, Module, Name, Engine string
	// Engines lists engines that provide the socket extensions, for a
	// guest that needs them, when the caller knows them.
	Engines []string
}

func (e *MissingImportError) Error() string {
	msg := fmt.Sprintf("load %s: it imports %s.%s, which the %s engine does not provide", e.Path, e.Module, e.Name, e.Engine)
	if e.SocketExtension() {
		msg += "; guests built with the WasmEdge socket extensions run on engines with " + string(SocketExtensions)
		if len(e.Engines) > 0 {
			msg += ": " + strings.Join(e.Engines, ", ")
		}
	}
	return msg
}

// SocketExtension reports whether the missing import is one of the
// WasmEdge socket extensions.
func (e *MissingImportError) SocketExtension() bool {
	return e.Module == "wasi_snapshot_preview1" && strings.HasPrefix(e.Name, "sock_")
}
