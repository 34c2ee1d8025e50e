//go:build cgo

package wasmtime

/*
#include <stdlib.h>
#include "hostcall.h"
*/
import "C"

import (
	"context"
	"errors"
	"fmt"
	"io"
	"reflect"
	"runtime"
	"runtime/cgo"
	"unsafe"

	wt "github.com/bytecodealliance/wasmtime-go/v42"

	"github.com/wasiserve/wasiserve/hostharness/engine"
	"github.com/wasiserve/wasiserve/hostharness/engine/internal/enginekit"
	"github.com/wasiserve/wasiserve/internal/hostsock"
)

// cLayout is one wasmtime-go type whose C value this package reads by a
// cast: its first field must be the C value (or a pointer to it) of the
// named C type, of the given size.
type cLayout struct {
	goType reflect.Type
	// cType is the field's type as reflect prints it.
	cType string
	size  uintptr
}

// cLayouts are the casts of this package: storePtr, define (Linker,
// FuncType), attachMemory (Memory, Func) and outputs.attach (WasiConfig).
var cLayouts = []cLayout{
	{reflect.TypeFor[wt.Store](), "*wasmtime._Ctype_struct_wasmtime_store", unsafe.Sizeof(uintptr(0))},
	{reflect.TypeFor[wt.Linker](), "*wasmtime._Ctype_struct_wasmtime_linker", unsafe.Sizeof(uintptr(0))},
	{reflect.TypeFor[wt.FuncType](), "*wasmtime._Ctype_struct_wasm_functype_t", unsafe.Sizeof(uintptr(0))},
	{reflect.TypeFor[wt.WasiConfig](), "*wasmtime._Ctype_struct_wasi_config_t", unsafe.Sizeof(uintptr(0))},
	{reflect.TypeFor[wt.Memory](), "wasmtime._Ctype_struct_wasmtime_memory", C.sizeof_ws_memory_t},
	{reflect.TypeFor[wt.Func](), "wasmtime._Ctype_struct_wasmtime_func", C.sizeof_ws_func_t},
}

// checkWasmtimeLayout checks that every wasmtime-go type this package
// casts to its C value has that value first, of the C type and size its
// C declarations give it (hostcall.h), and that storePtr finds a store of
// eng's C store.
func checkWasmtimeLayout(eng *wt.Engine) error {
	for _, l := range cLayouts {
		f := l.goType.Field(0)
		if f.Offset != 0 || f.Type.String() != l.cType || f.Type.Size() != l.size {
			return fmt.Errorf("wasmtime-go's %s starts with %s %s (%d bytes), not the C API's %s (%d bytes): rebuild against wasmtime-go v42.0.0",
				l.goType, f.Name, f.Type, f.Type.Size(), l.cType, l.size)
		}
	}
	store := wt.NewStore(eng)
	defer store.Close()
	if unsafe.Pointer(C.wasmtime_store_context(storePtr(store))) != unsafe.Pointer(store.Context()) {
		return errors.New("wasmtime-go's Store does not start with its C store: rebuild against wasmtime-go v42.0.0")
	}
	return nil
}

// storePtr is store's C store, the first field of wasmtime-go's Store.
func storePtr(store *wt.Store) *C.wasmtime_store_t {
	return *(**C.wasmtime_store_t)(unsafe.Pointer(store))
}

// maxParams bounds the parameters of a host function (the WasmEdge
// extension sock_getaddrinfo has 8).
const maxParams = 16

// wasmtimeRun is one run of a guest: its wasmtime objects, its Table, and
// the state its host functions share. Host functions run on the goroutine
// that called _start, one at a time.
type wasmtimeRun struct {
	ctx   context.Context
	funcs []wasmtimeFunc
	table *hostsock.Table
	mem   guestMemory
	stack [maxParams]uint64
	// failure is set when a host function panicked: the guest was stopped
	// and Run reports it.
	failure error

	eng     *wt.Engine // the engine's, shared with its other runs
	store   *wt.Store
	linkers []*wt.Linker
	guest   *wt.Instance
	handle  cgo.Handle
	c       *C.ws_run
	out     outputs
	// stopInterrupts ends the interruption of the guest when the run's
	// context is done (interruptOnDone); set from the store's creation,
	// so that a start function that spins is stopped too.
	stopInterrupts func()
}

// storeInstances is the most instances a run's store holds: the guest and
// the forwarding module.
const storeInstances = 2

// errEndedInStart reports a run that ended without an error while it was
// being instantiated, in the guest's start function: its context stopped
// it, or it exited with code 0.
var errEndedInStart = errors.New("wasmtime: the guest ended while it was instantiated")

// newRun instantiates the guest for cfg with table, ready to start.
func (m *wasmtimeModule) newRun(ctx context.Context, cfg engine.Config, told []string, table *hostsock.Table) (_ *wasmtimeRun, err error) {
	e := m.engine
	r := &wasmtimeRun{ctx: ctx, funcs: e.funcs, table: table, eng: e.eng}
	r.handle = cgo.NewHandle(r)
	r.out = newOutputs(cfg)
	defer func() {
		if err != nil {
			r.close()
		}
	}()
	if r.c = C.ws_run_new(C.uintptr_t(r.handle), C.size_t(len(r.funcs))); r.c == nil {
		return nil, errors.New("wasmtime: out of memory")
	}
	wasi, err := m.wasiConfig(cfg, told, r.out)
	if err != nil {
		return nil, err
	}
	r.store = wt.NewStore(r.eng)
	r.store.SetWasi(wasi)
	// The instance's budget (engine.Budget): wasmtime caps each memory
	// and each table, so their numbers are capped too. The instances are
	// the guest and the forwarding module, which defines no memory or
	// table of its own.
	r.store.Limiter(e.budget.MemoryBytes(), int64(e.budget.TableElements), storeInstances, engine.MaxTables, engine.MaxMemories)
	r.store.SetEpochDeadline(1)
	C.ws_set_epoch_deadline_callback(storePtr(r.store), r.c)
	r.stopInterrupts = interruptOnDone(ctx, r.interrupt)

	linker, err := r.linker()
	if err != nil {
		return nil, err
	}
	if err := r.define(linker); err != nil {
		return nil, err
	}
	if r.guest, err = linker.Instantiate(r.store, m.mod); err != nil {
		defer closeWasmtimeError(err)
		if ctx.Err() != nil {
			return nil, errEndedInStart
		}
		// A trap or an exit in the start function ends the run as one in
		// _start does: an ExitError, its trap message bounded (a stack
		// overflow's carries a backtrace of 16,370 frames, 775 KB).
		var trap *wt.Trap
		if _, exited := exitStatus(err); errors.As(err, &trap) || exited {
			if exit := wasmtimeExit(ctx, err); exit != nil {
				return nil, exit
			}
			return nil, errEndedInStart
		}
		// Its text only: err is closed on return.
		return nil, fmt.Errorf("wasmtime: instantiate %s: %s", m.name, err)
	}
	if err := r.attachMemory(e.forward); err != nil {
		return nil, err
	}
	return r, nil
}

// linker returns a new linker with wasmtime's WASI, closed with the run.
func (r *wasmtimeRun) linker() (*wt.Linker, error) {
	l := wt.NewLinker(r.eng)
	r.linkers = append(r.linkers, l)
	if err := l.DefineWasi(); err != nil {
		return nil, fmt.Errorf("wasmtime: define WASI: %w", err)
	}
	return l, nil
}

// define defines the run's host functions in l, in place of wasmtime's
// functions of the same names, through the C API's unchecked definitions
// (see hostcall.c): a call costs one cgo callback, with no allocation;
// clock_time_get costs none (defineClock).
func (r *wasmtimeRun) define(l *wt.Linker) error {
	l.AllowShadowing(true)
	lptr := *(**C.wasmtime_linker_t)(unsafe.Pointer(l))
	module := C.CString(wasiModule)
	defer C.free(unsafe.Pointer(module))
	for i, f := range r.funcs {
		name := C.CString(f.Name)
		ty := f.funcType()
		tptr := *(**C.wasm_functype_t)(unsafe.Pointer(ty))
		cerr := C.ws_define(lptr, module, C.size_t(len(wasiModule)), name, C.size_t(len(f.Name)), tptr, r.c, C.uint32_t(i))
		// ty's finalizer deletes the C function type that tptr points to:
		// ty must outlive the call that reads it.
		runtime.KeepAlive(ty)
		C.free(unsafe.Pointer(name))
		if cerr != nil {
			return fmt.Errorf("wasmtime: define %s: %w", f.Name, takeError(cerr))
		}
	}
	runtime.KeepAlive(l) // lptr is l's
	return r.defineClock(l, module)
}

// takeError converts and frees a wasmtime_error_t.
func takeError(cerr *C.wasmtime_error_t) error {
	var buf [1024]C.char
	n := C.ws_error_take(cerr, &buf[0], C.size_t(len(buf)))
	return errors.New(C.GoStringN(&buf[0], C.int(n)))
}

// attachMemory gives the host functions the guest's exported memory and
// instantiates the forwarding module on it, through which calls on fds
// the Table does not own reach wasmtime's own functions. A guest without
// a memory export gets EFAULT from every function that needs memory.
func (r *wasmtimeRun) attachMemory(forward *wt.Module) error {
	exp := r.guest.GetExport(r.store, "memory")
	if exp == nil || exp.Memory() == nil {
		return nil
	}
	mem := exp.Memory()
	r.c.memory = *(*C.ws_memory_t)(unsafe.Pointer(mem))
	r.c.has_memory = 1
	l, err := r.linker()
	if err != nil {
		return err
	}
	if err := l.Define(r.store, forwardMemoryModule, "memory", mem); err != nil {
		return fmt.Errorf("wasmtime: forwarding module: %w", err)
	}
	fwd, err := l.Instantiate(r.store, forward)
	if err != nil {
		return fmt.Errorf("wasmtime: forwarding module: %w", err)
	}
	fns := unsafe.Slice(r.c.fns, r.c.nfns)
	for i, f := range r.funcs {
		if !f.forwards {
			continue
		}
		fn := fwd.GetFunc(r.store, f.Name)
		if fn == nil {
			return fmt.Errorf("wasmtime: forwarding module has no %s", f.Name)
		}
		fns[i].forward = *(*C.ws_func_t)(unsafe.Pointer(fn))
		fns[i].has_forward = 1
	}
	return nil
}

// start runs the guest's _start to its end. Cancelling the run's context
// wakes the guest's waits on its sockets (the Table's), ends it at its
// next host call, and interrupts it at its next loop header or function
// entry (epoch interruption) if it is computing.
func (r *wasmtimeRun) start() error {
	start := r.guest.GetFunc(r.store, "_start")
	if start == nil {
		return errors.New("wasmtime: the module has no _start: not a WASI command")
	}
	_, err := procs.call(func() (any, error) { return start.Call(r.store) })
	defer closeWasmtimeError(err)
	if r.failure != nil {
		return fmt.Errorf("wasmtime: %w", r.failure)
	}
	return wasmtimeExit(r.ctx, err)
}

// closeWasmtimeError frees err's wasmtime error or trap now rather than
// at its finalizer: a trap's backtrace holds the module whose code it went
// through, which would stay mapped after Module.Close until the next
// garbage collection.
func closeWasmtimeError(err error) {
	var wErr *wt.Error
	if errors.As(err, &wErr) {
		wErr.Close()
	}
	var trap *wt.Trap
	if errors.As(err, &trap) {
		trap.Close()
	}
}

// interrupt stops the guest at its next loop header or function entry:
// it marks the run as stopping, then increments the engine's epoch, which
// makes every run of the engine call its epoch deadline callback
// (ws_epoch_deadline): this run's traps, the others' carry on.
func (r *wasmtimeRun) interrupt() {
	C.ws_run_stop(r.c)
	r.eng.IncrementEpoch()
}

// interruptOnDone calls interrupt when ctx is done. The function it
// returns stops that, and waits for an interruption already under way:
// the run frees the state interrupt uses right after.
func interruptOnDone(ctx context.Context, interrupt func()) (stop func()) {
	interrupted := make(chan struct{})
	cancel := context.AfterFunc(ctx, func() {
		defer close(interrupted)
		interrupt()
	})
	return func() {
		if !cancel() {
			<-interrupted
		}
	}
}

// close releases the run: the store (which closes the guest's files), the
// linkers, then the C state their functions and the store's epoch
// deadline callback point to. The module and the engine stay: they are
// shared with the module's other runs.
func (r *wasmtimeRun) close() {
	if r.store != nil {
		r.store.Close()
	}
	for _, l := range r.linkers {
		l.Close()
	}
	if r.stopInterrupts != nil {
		r.stopInterrupts()
	}
	C.ws_run_free(r.c)
	r.c = nil
	r.handle.Delete()
	r.out.close()
}

// releaseFreeMemory hands the memory free in the C allocator back to the
// system, where the C library can (glibc's malloc_trim).
func releaseFreeMemory() { C.ws_release_free_memory() }

// fixMallocThresholds keeps the C allocator from keeping large freed
// blocks in its arenas (ws_malloc_fixed_thresholds), where the C library
// can.
func fixMallocThresholds() { C.ws_malloc_fixed_thresholds() }

//export wasiserveHostCall
func wasiserveHostCall(handle C.uintptr_t, index C.uint32_t, args unsafe.Pointer, n C.size_t, base *C.uint8_t, length C.size_t) (result C.int64_t) {
	r := cgo.Handle(handle).Value().(*wasmtimeRun)
	f := &r.funcs[index]
	defer func() {
		if p := recover(); p != nil {
			r.failure = fmt.Errorf("host function %s panicked: %v", f.Name, p)
			result = C.WS_STOP
		}
	}()
	if int(n) < len(f.params) {
		r.failure = fmt.Errorf("host function %s: called with %d parameter slots for %d parameters", f.Name, n, len(f.params))
		return C.WS_STOP
	}
	stack := r.stack[:len(f.params)]
	for i := range stack {
		v := *(*uint64)(unsafe.Add(args, i*C.sizeof_ws_val_raw_t))
		if f.i64&(1<<i) == 0 {
			v = uint64(uint32(v))
		}
		stack[i] = v
	}
	var mem hostsock.Memory
	if base != nil {
		r.mem.b = unsafe.Slice((*byte)(unsafe.Pointer(base)), int(length))
		mem = &r.mem
	}
	outcome := f.Call(r.table, mem, stack)
	r.mem.b = nil
	switch outcome {
	case hostsock.Served:
		return C.int64_t(uint32(stack[0]))
	case hostsock.Delegate:
		return C.WS_DELEGATE
	default:
		return C.WS_STOP
	}
}

// guestMemory is the guest's linear memory during one host call: a view
// of it, fetched anew for each call, as memory may grow between calls.
type guestMemory struct {
	b []byte
}

// Read returns the n bytes at off, or false if they are not all in
// memory.
func (m *guestMemory) Read(off, n uint32) ([]byte, bool) {
	// In 64 bits: off+n wraps in 32 for a range that ends at 4 GiB.
	start, end := uint64(off), uint64(off)+uint64(n)
	if end > uint64(len(m.b)) {
		return nil, false
	}
	return m.b[start:end:end], true
}

// Size is the memory's size in bytes (the guest memory gauge of Stats).
func (m *guestMemory) Size() uint32 { return uint32(len(m.b)) }

// outputs are the guest's stdout and stderr writers, reached from
// wasmtime's WASI through handles (wasi_config_set_stdout_custom): each
// guest write reaches the writer synchronously, on the guest's thread.
type outputs struct {
	stdout, stderr cgo.Handle
}

func newOutputs(cfg engine.Config) outputs {
	return outputs{
		stdout: cgo.NewHandle(enginekit.WriterOrDiscard(cfg.Stdout)),
		stderr: cgo.NewHandle(enginekit.WriterOrDiscard(cfg.Stderr)),
	}
}

// attach makes wasi's stdout and stderr write to o's writers.
func (o outputs) attach(wasi *wt.WasiConfig) {
	ptr := *(**C.wasi_config_t)(unsafe.Pointer(wasi))
	C.ws_set_output(ptr, 1, C.uintptr_t(o.stdout))
	C.ws_set_output(ptr, 2, C.uintptr_t(o.stderr))
}

// close releases the handles; call it once the store is closed.
func (o outputs) close() {
	o.stdout.Delete()
	o.stderr.Delete()
}

// errnoIO is the OS error code (EIO) an output callback answers for a
// writer that failed without writing.
const errnoIO = 5

//export wasiserveOutput
func wasiserveOutput(handle C.uintptr_t, buf unsafe.Pointer, n C.size_t) C.ptrdiff_t {
	w := cgo.Handle(handle).Value().(io.Writer)
	written, err := w.Write(unsafe.Slice((*byte)(buf), int(n)))
	if err != nil && written == 0 {
		return -errnoIO
	}
	return C.ptrdiff_t(written)
}
