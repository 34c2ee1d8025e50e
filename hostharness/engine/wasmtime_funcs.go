//go:build cgo && !wasmtime19

package engine

import (
	"fmt"
	"strings"

	"github.com/bytecodealliance/wasmtime-go/v42"
)

// wasmtimeFunc is one host function the wasmtime engine defines for its
// guests in module wasi_snapshot_preview1.
type wasmtimeFunc struct {
	name            string
	params, results []wasmtime.ValKind
	// i64 has bit i set when parameter i is an i64 (the others are i32).
	i64 uint32
	// forwards is set for a function wasmtime's WASI also defines: calls
	// that call answers with delegate go to wasmtime's function, through
	// the forwarding module.
	forwards bool
	// call serves one call with the run's memory: it returns the errno, or
	// delegate.
	call func(r *wasmtimeRun, stack []uint64) (errno uint32, delegate bool)
}

// funcType is f's wasm type.
func (f *wasmtimeFunc) funcType() *wasmtime.FuncType {
	valTypes := func(kinds []wasmtime.ValKind) []*wasmtime.ValType {
		types := make([]*wasmtime.ValType, len(kinds))
		for i, k := range kinds {
			types[i] = wasmtime.NewValType(k)
		}
		return types
	}
	return wasmtime.NewFuncType(valTypes(f.params), valTypes(f.results))
}

// wasmtimeSpec is what the socket layer's binding says about one function:
// its name, its implementation, and, for a function wasmtime's WASI does
// not define (the WasmEdge socket extensions), its number of i32
// parameters (its result is an i32 errno).
type wasmtimeSpec struct {
	name   string
	params int
	call   func(r *wasmtimeRun, stack []uint64) (errno uint32, delegate bool)
}

// typedFuncs gives each spec its wasm type: wasmtime's own for a function
// its WASI defines (which it then forwards to), i32s otherwise.
func typedFuncs(specs []wasmtimeSpec) ([]wasmtimeFunc, error) {
	eng := newWasmtime()
	linker := wasmtime.NewLinker(eng)
	defer linker.Close()
	if err := linker.DefineWasi(); err != nil {
		return nil, fmt.Errorf("define WASI: %w", err)
	}
	store := wasmtime.NewStore(eng)
	defer store.Close()
	funcs := make([]wasmtimeFunc, 0, len(specs))
	for _, s := range specs {
		f := wasmtimeFunc{name: s.name, call: s.call}
		if ext := linker.Get(store, wasiModule, s.name); ext != nil && ext.Func() != nil {
			ty := ext.Func().Type(store)
			for i, p := range ty.Params() {
				f.params = append(f.params, p.Kind())
				if p.Kind() == wasmtime.KindI64 {
					f.i64 |= 1 << i
				}
			}
			for _, res := range ty.Results() {
				f.results = append(f.results, res.Kind())
			}
			f.forwards = true
		} else {
			for range s.params {
				f.params = append(f.params, wasmtime.KindI32)
			}
			f.results = []wasmtime.ValKind{wasmtime.KindI32}
		}
		if len(f.params) > maxParams || len(f.results) != 1 || f.results[0] != wasmtime.KindI32 {
			return nil, fmt.Errorf("%s: type %v -> %v: want at most %d parameters and an i32 errno", s.name, f.params, f.results, maxParams)
		}
		funcs = append(funcs, f)
	}
	return funcs, nil
}

// forwardMemoryModule is the module name under which the forwarding
// module imports the guest's memory.
const forwardMemoryModule = "guest"

// forwardModuleWAT is the forwarding module for funcs: it imports the
// guest's memory and re-exports it as "memory", and exports, for each
// function wasmtime's WASI defines, a function of the same name that
// calls wasmtime's. wasmtime's WASI functions find guest memory through
// the memory export of the instance that calls them, so a host function
// cannot call them itself; it calls these instead, instantiated on the
// guest's memory in the guest's store, which hold the same WASI context.
func forwardModuleWAT(funcs []wasmtimeFunc) string {
	var b strings.Builder
	b.WriteString("(module\n  (import \"" + forwardMemoryModule + "\" \"memory\" (memory 0))\n  (export \"memory\" (memory 0))\n")
	sig := func(f *wasmtimeFunc) string {
		var s strings.Builder
		for _, p := range f.params {
			s.WriteString(" (param " + p.String() + ")")
		}
		for _, r := range f.results {
			s.WriteString(" (result " + r.String() + ")")
		}
		return s.String()
	}
	for i := range funcs {
		f := &funcs[i]
		if f.forwards {
			fmt.Fprintf(&b, "  (import %q %q (func $%s%s))\n", wasiModule, f.name, f.name, sig(f))
		}
	}
	for i := range funcs {
		f := &funcs[i]
		if !f.forwards {
			continue
		}
		fmt.Fprintf(&b, "  (func (export %q)%s", f.name, sig(f))
		for j := range f.params {
			fmt.Fprintf(&b, " (local.get %d)", j)
		}
		fmt.Fprintf(&b, " (call $%s))\n", f.name)
	}
	b.WriteString(")\n")
	return b.String()
}
