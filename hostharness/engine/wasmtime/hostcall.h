// Declarations of the parts of wasmtime's C API (wasmtime 42, as bundled
// with wasmtime-go v42.0.0) that wasmtime-go does not wrap, and the host
// call trampoline of the wasmtime engine (hostcall.c).
// wasmtime-go's headers are not on this package's include path, so the
// types are declared here; wasmtime_cgo.go checks at init that the two
// value types it copies out of wasmtime-go have these sizes.

#ifndef WASISERVE_WASMTIME_HOSTCALL_H
#define WASISERVE_WASMTIME_HOSTCALL_H

#include <stddef.h>
#include <stdint.h>

typedef struct wasmtime_linker wasmtime_linker_t;
typedef struct wasmtime_store wasmtime_store_t;
typedef struct wasmtime_caller wasmtime_caller_t;
typedef struct wasmtime_context wasmtime_context_t;
typedef struct wasmtime_error wasmtime_error_t;
typedef struct wasm_trap_t wasm_trap_t;
typedef struct wasm_functype_t wasm_functype_t;
typedef struct wasi_config_t wasi_config_t;

// wasmtime_memory_t and wasmtime_func_t: values naming a store's memory
// and function.
typedef struct {
  struct {
    uint64_t store_id;
    uint32_t private1;
  };
  uint32_t private2;
} ws_memory_t;

typedef struct {
  uint64_t store_id;
  void *private1;
} ws_func_t;

// wasmtime_val_raw_t: one untyped parameter or result slot.
typedef union {
  int32_t i32;
  int64_t i64;
  uint8_t v128[16];
  void *ref;
} ws_val_raw_t;

typedef struct ws_run ws_run;

// ws_fn is one function defined by the trampoline: its index in the run's
// table of host functions and, once the forwarding module exists, the
// function that gives a call to wasmtime's own implementation.
typedef struct {
  ws_run *run;
  uint32_t index;
  uint32_t has_forward;
  ws_func_t forward;
} ws_fn;

// ws_run is one guest run's state on the C side: the Go handle of the
// run, whether the host is stopping it, the guest's memory once it is
// instantiated, and its functions. stopping is read and written only
// through atomic operations (ws_run_stop, ws_epoch_deadline).
struct ws_run {
  uintptr_t handle;
  uint32_t stopping;
  uint32_t has_memory;
  ws_memory_t memory;
  size_t nfns;
  ws_fn *fns;
  // monotonic_origin is CLOCK_MONOTONIC, in nanoseconds, when the run was
  // created: the guest's monotonic clock counts from there, as wasmtime's
  // WASI clock counts from its context's creation (clock.c).
  uint64_t monotonic_origin;
};

// Results of the Go side of a host call (wasiserveHostCall) other than an
// errno (0..65535).
enum {
  WS_DELEGATE = -1, // hand the call to wasmtime's own function
  WS_STOP = -2,     // end the guest's run with a trap
};

// ws_unchecked_callback is the callback of a function defined with
// wasmtime_linker_define_func_unchecked: its parameters in args, its
// results written back there.
typedef wasm_trap_t *(*ws_unchecked_callback)(void *env,
                                              wasmtime_caller_t *caller,
                                              ws_val_raw_t *args, size_t n);

// The parts of wasmtime's C API the trampolines call (wasmtime/store.h,
// memory.h, trap.h, linker.h).
extern wasmtime_context_t *wasmtime_caller_context(wasmtime_caller_t *caller);
extern uint8_t *wasmtime_memory_data(const wasmtime_context_t *store,
                                     const ws_memory_t *memory);
extern size_t wasmtime_memory_data_size(const wasmtime_context_t *store,
                                        const ws_memory_t *memory);
extern wasm_trap_t *wasmtime_trap_new(const char *msg, size_t msg_len);
extern wasmtime_error_t *wasmtime_linker_define_func_unchecked(
    wasmtime_linker_t *linker, const char *module, size_t module_len,
    const char *name, size_t name_len, const wasm_functype_t *ty,
    ws_unchecked_callback cb, void *data, void (*finalizer)(void *));

// WASI errnos the trampolines answer themselves.
enum {
  WS_ERRNO_BADF = 8,
  WS_ERRNO_FAULT = 21, // also the answer when the guest exports no memory
  WS_ERRNO_INVAL = 28,
};

// ws_monotonic_now is CLOCK_MONOTONIC in nanoseconds.
uint64_t ws_monotonic_now(void);

// ws_stopped_trap is the trap that ends a run the host stopped.
wasm_trap_t *ws_stopped_trap(void);

ws_run *ws_run_new(uintptr_t handle, size_t nfns);
void ws_run_free(ws_run *run);
wasmtime_error_t *ws_define(wasmtime_linker_t *linker, const char *module,
                            size_t module_len, const char *name,
                            size_t name_len, const wasm_functype_t *type,
                            ws_run *run, uint32_t index);
size_t ws_error_take(wasmtime_error_t *err, char *buf, size_t cap);
void ws_set_output(wasi_config_t *config, int stream, uintptr_t handle);
wasmtime_context_t *wasmtime_store_context(wasmtime_store_t *store);
void ws_set_epoch_deadline_callback(wasmtime_store_t *store, ws_run *run);
void ws_run_stop(ws_run *run);
void ws_release_free_memory(void);
wasmtime_error_t *ws_define_clock_time_get(wasmtime_linker_t *linker,
                                           const char *module,
                                           size_t module_len,
                                           const wasm_functype_t *type,
                                           ws_run *run);
void ws_malloc_fixed_thresholds(void);

#endif
