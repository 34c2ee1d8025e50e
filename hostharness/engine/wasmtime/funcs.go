//go:build cgo

package wasmtime

import (
	"fmt"
	"slices"
	"strings"

	wt "github.com/bytecodealliance/wasmtime-go/v42"

	"github.com/wasiserve/wasiserve/internal/hostsock"
)

// wasmtimeFunc is one function of the socket layer (hostsock.Funcs) as
// the wasmtime engine defines it for its guests, in module
// wasi_snapshot_preview1.
type wasmtimeFunc struct {
	hostsock.Func
	params []wt.ValKind
	// i64 has bit i set when parameter i is an i64 (the others are i32).
	i64 uint32
	// forwards is set for a function wasmtime's WASI also defines (all but
	// the WasmEdge extensions): calls the Table leaves to the engine go to
	// wasmtime's function, through the forwarding module.
	forwards bool
}

// funcType is f's wasm type: its parameters, and an i32 errno.
func (f *wasmtimeFunc) funcType() *wt.FuncType {
	params := make([]*wt.ValType, len(f.params))
	for i, k := range f.params {
		params[i] = wt.NewValType(k)
	}
	return wt.NewFuncType(params, []*wt.ValType{wt.NewValType(wt.KindI32)})
}

// wasmtimeFuncs lists the functions the engine defines: hostsock's, each
// checked against the type of wasmtime's function of that name in eng.
func wasmtimeFuncs(eng *wt.Engine) ([]wasmtimeFunc, error) {
	linker := wt.NewLinker(eng)
	defer linker.Close()
	if err := linker.DefineWasi(); err != nil {
		return nil, fmt.Errorf("define WASI: %w", err)
	}
	store := wt.NewStore(eng)
	defer store.Close()
	var funcs []wasmtimeFunc
	for _, hf := range hostsock.Funcs() {
		f := wasmtimeFunc{Func: hf, forwards: !hf.Extension}
		if len(hf.Params) > maxParams {
			return nil, fmt.Errorf("%s: %d parameters, more than %d", hf.Name, len(hf.Params), maxParams)
		}
		for i, p := range hf.Params {
			k := wt.KindI32
			if p == hostsock.I64 {
				k, f.i64 = wt.KindI64, f.i64|1<<i
			}
			f.params = append(f.params, k)
		}
		if f.forwards {
			ext := linker.Get(store, wasiModule, hf.Name)
			if ext == nil || ext.Func() == nil {
				return nil, fmt.Errorf("wasmtime's WASI has no %s to replace", hf.Name)
			}
			if want, got := f.funcType(), ext.Func().Type(store); !sameFuncType(want, got) {
				return nil, fmt.Errorf("%s: hostsock's type %v is not wasmtime's %v", hf.Name, valKinds(want.Params()), valKinds(got.Params()))
			}
		}
		funcs = append(funcs, f)
	}
	return funcs, nil
}

func valKinds(types []*wt.ValType) []wt.ValKind {
	out := make([]wt.ValKind, len(types))
	for i, t := range types {
		out[i] = t.Kind()
	}
	return out
}

func sameFuncType(a, b *wt.FuncType) bool {
	return slices.Equal(valKinds(a.Params()), valKinds(b.Params())) && slices.Equal(valKinds(a.Results()), valKinds(b.Results()))
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
		s.WriteString(" (result i32)")
		return s.String()
	}
	for i := range funcs {
		f := &funcs[i]
		if f.forwards {
			fmt.Fprintf(&b, "  (import %q %q (func $%s%s))\n", wasiModule, f.Name, f.Name, sig(f))
		}
	}
	for i := range funcs {
		f := &funcs[i]
		if !f.forwards {
			continue
		}
		fmt.Fprintf(&b, "  (func (export %q)%s", f.Name, sig(f))
		for j := range f.params {
			fmt.Fprintf(&b, " (local.get %d)", j)
		}
		fmt.Fprintf(&b, " (call $%s))\n", f.Name)
	}
	b.WriteString(")\n")
	return b.String()
}
