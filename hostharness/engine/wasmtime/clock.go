//go:build cgo

package wasmtime

/*
#include "hostcall.h"
*/
import "C"

import (
	"fmt"
	"runtime"
	"unsafe"

	wt "github.com/bytecodealliance/wasmtime-go/v42"
)

// clockTimeGet is the WASI function the trampoline serves in C
// (ws_clock_time_get in clock.c), in place of wasmtime's: a request of a
// Go guest reads the clock several times, and wasmtime's WASI costs
// hundreds of instructions a call more.
const clockTimeGet = "clock_time_get"

// clockTimeGetType is clock_time_get's type: (id i32, precision i64,
// result i32) -> errno i32.
func clockTimeGetType() *wt.FuncType {
	return wt.NewFuncType(
		[]*wt.ValType{wt.NewValType(wt.KindI32), wt.NewValType(wt.KindI64), wt.NewValType(wt.KindI32)},
		[]*wt.ValType{wt.NewValType(wt.KindI32)})
}

// defineClock defines clock_time_get in l, in place of wasmtime's, served
// by the trampoline with the run's memory and monotonic origin.
func (r *wasmtimeRun) defineClock(l *wt.Linker, module *C.char) error {
	lptr := *(**C.wasmtime_linker_t)(unsafe.Pointer(l))
	ty := clockTimeGetType()
	tptr := *(**C.wasm_functype_t)(unsafe.Pointer(ty))
	cerr := C.ws_define_clock_time_get(lptr, module, C.size_t(len(wasiModule)), tptr, r.c)
	runtime.KeepAlive(ty)
	runtime.KeepAlive(l)
	if cerr != nil {
		return fmt.Errorf("wasmtime: define %s: %w", clockTimeGet, takeError(cerr))
	}
	return nil
}
