// Package wazysock binds package hostsock to wazy (a fork of wazero with its API): it builds the
// guest's wasi_snapshot_preview1 host module from wazero's own functions
// with hostsock's in place of the ones that may touch a socket, plus the
// WasmEdge socket extensions.
package wazysock

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/samyfodil/wazy"
	"github.com/samyfodil/wazy/api"
	wasi "github.com/samyfodil/wazy/imports/wasi_snapshot_preview1"
	"github.com/samyfodil/wazy/sys"

	"github.com/wasiserve/wasiserve/internal/hostsock"
)

// Instantiate instantiates the wasi_snapshot_preview1 host module in rt:
// wazero's own functions, with hostsock's in their place where one exists
// (see Export). Guests then get host sockets for the fds of the Table in
// the context they are instantiated with (WithTable), and wazero's
// behaviour for every other fd.
func Instantiate(ctx context.Context, rt wazy.Runtime) (api.Closer, error) {
	b := rt.NewHostModuleBuilder(wasi.ModuleName)
	if err := Export(ctx, rt, b); err != nil {
		return nil, err
	}
	mod, err := b.Instantiate(ctx)
	if err != nil {
		return nil, fmt.Errorf("instantiate %s: %w", wasi.ModuleName, err)
	}
	return mod, nil
}

// Export exports wazero's WASI functions into b and then replaces each
// one that hostsock serves (hostsock.Funcs): the replacement serves the
// fds of the calling context's Table and calls wazero's own function, with
// the same module and stack, for every other fd. It adds the socket
// extensions, which answer ENOTSUP to a guest run without a Table.
func Export(ctx context.Context, rt wazy.Runtime, b wazy.HostModuleBuilder) error {
	wasi.NewFunctionExporter().ExportFunctions(b)
	defs, err := wazeroFunctions(ctx, rt)
	if err != nil {
		return err
	}
	for _, f := range hostsock.Funcs() {
		var delegate api.GoModuleFunction = notSupported{}
		params := valueTypes(f.Params)
		if !f.Extension {
			def, ok := defs[f.Name]
			if !ok {
				return fmt.Errorf("wazy exports no %s to replace", f.Name)
			}
			if !slices.Equal(def.ParamTypes(), params) {
				return fmt.Errorf("%s: hostsock's parameters %v are not wazero's %v", f.Name, params, def.ParamTypes())
			}
			if delegate, ok = def.GoFunction().(api.GoModuleFunction); !ok {
				return fmt.Errorf("wazero's %s is not a Go module function (%T)", f.Name, def.GoFunction())
			}
		}
		b.NewFunctionBuilder().
			WithGoModuleFunction(serve(f, delegate), params, []api.ValueType{api.ValueTypeI32}).
			WithParameterNames(f.ParamNames...).
			WithResultNames("errno").
			Export(f.Name)
	}
	return nil
}

// serve is f as a wazy host function: it calls f with the Table of the
// call's context, and delegate when there is none or f leaves the call to
// the engine.
func serve(f hostsock.Func, delegate api.GoModuleFunction) api.GoModuleFunction {
	if usesMemory(f) {
		// wazy's own functions dereference the module's memory
		// unchecked: a module without one gets EFAULT from them, as
		// from hostsock's.
		delegate = needsMemory{delegate}
	}
	return api.GoModuleFunc(func(ctx context.Context, mod api.Module, stack []uint64) {
		t, _ := ctx.Value(tableKey{}).(*hostsock.Table)
		if t == nil {
			delegate.Call(ctx, mod, stack)
			return
		}
		var mem hostsock.Memory
		if m := mod.Memory(); m != nil {
			mem = m
		}
		switch f.Call(t, mem, stack) {
		case hostsock.Delegate:
			delegate.Call(ctx, mod, stack)
		case hostsock.Stop:
			// As proc_exit does: the run of _start ends with this code.
			mod.CloseWithExitCode(ctx, sys.ExitCodeContextCanceled)
			panic(sys.NewExitError(sys.ExitCodeContextCanceled))
		}
	})
}

// needsMemory is the delegate of a function that reads or writes guest
// memory: it answers EFAULT to a module without memory.
type needsMemory struct{ api.GoModuleFunction }

// errnoFault is WASI's EFAULT.
const errnoFault = 21

// Call answers EFAULT to a module without memory and delegates otherwise.
func (d needsMemory) Call(ctx context.Context, mod api.Module, stack []uint64) {
	if mod.Memory() == nil {
		stack[0] = errnoFault
		return
	}
	d.GoModuleFunction.Call(ctx, mod, stack)
}

// usesMemory reports whether f takes a pointer into guest memory: a
// result pointer, an iovec list, a path, a buffer, subscriptions or
// events (WASI preview 1's parameter names, as hostsock.Funcs gives them).
func usesMemory(f hostsock.Func) bool {
	for _, name := range f.ParamNames {
		switch {
		case strings.HasPrefix(name, "result."),
			slices.Contains([]string{"iovs", "ri_data", "si_data", "in", "out", "path", "old_path", "new_path", "buf"}, name):
			return true
		}
	}
	return false
}

// notSupported is the delegate of an extension called without a Table.
type notSupported struct{}

// errnoNotsup is WASI's ENOTSUP.
const errnoNotsup = 58

func (notSupported) Call(_ context.Context, _ api.Module, stack []uint64) {
	stack[0] = errnoNotsup
}

func valueTypes(types []hostsock.ValueType) []api.ValueType {
	out := make([]api.ValueType, len(types))
	for i, t := range types {
		out[i] = api.ValueTypeI32
		if t == hostsock.I64 {
			out[i] = api.ValueTypeI64
		}
	}
	return out
}

// wazeroFunctions returns the definitions of wazero's WASI functions, read
// from a host module compiled for that purpose only.
func wazeroFunctions(ctx context.Context, rt wazy.Runtime) (map[string]api.FunctionDefinition, error) {
	b := rt.NewHostModuleBuilder(wasi.ModuleName)
	wasi.NewFunctionExporter().ExportFunctions(b)
	compiled, err := b.Compile(ctx)
	if err != nil {
		return nil, fmt.Errorf("compile wazero's %s: %w", wasi.ModuleName, err)
	}
	defer compiled.Close(ctx)
	return compiled.ExportedFunctions(), nil
}

// tableKey is the context key of a module instance's Table.
type tableKey struct{}

// WithTable returns a context under which an instantiated module's WASI
// calls use t. Pass it to wazero's InstantiateModule: the host functions
// see that context for the whole run of _start.
func WithTable(ctx context.Context, t *hostsock.Table) context.Context {
	return context.WithValue(ctx, tableKey{}, t)
}
