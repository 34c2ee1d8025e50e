//go:build cgo

#include "hostcall.h"

#include <stdlib.h>
#include <string.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "_cgo_export.h"

typedef struct {
  size_t size;
  char *data;
} ws_name_t;

typedef ptrdiff_t (*ws_output_callback)(void *, const unsigned char *, size_t);
typedef uint8_t wasmtime_update_deadline_kind_t;
typedef wasmtime_error_t *(*ws_epoch_callback)(
    wasmtime_context_t *context, void *data, uint64_t *epoch_deadline_delta,
    wasmtime_update_deadline_kind_t *update_kind);
#define WASMTIME_UPDATE_DEADLINE_CONTINUE 0

extern wasmtime_error_t *wasmtime_func_call_unchecked(
    wasmtime_context_t *store, const ws_func_t *func, ws_val_raw_t *args,
    size_t n, wasm_trap_t **trap);
extern void wasmtime_error_message(const wasmtime_error_t *error,
                                   ws_name_t *message);
extern void wasmtime_error_delete(wasmtime_error_t *error);
extern wasmtime_error_t *wasmtime_error_new(const char *message);
extern void wasmtime_store_epoch_deadline_callback(wasmtime_store_t *store,
                                                   ws_epoch_callback func,
                                                   void *data,
                                                   void (*finalizer)(void *));
extern void wasm_byte_vec_delete(ws_name_t *vec);
extern void wasi_config_set_stdout_custom(wasi_config_t *config,
                                          ws_output_callback callback,
                                          void *data,
                                          void (*finalizer)(void *));
extern void wasi_config_set_stderr_custom(wasi_config_t *config,
                                          ws_output_callback callback,
                                          void *data,
                                          void (*finalizer)(void *));

ws_run *ws_run_new(uintptr_t handle, size_t nfns) {
  ws_run *run = calloc(1, sizeof(ws_run));
  if (run == NULL) {
    return NULL;
  }
  run->fns = calloc(nfns, sizeof(ws_fn));
  if (run->fns == NULL) {
    free(run);
    return NULL;
  }
  run->handle = handle;
  run->nfns = nfns;
  run->monotonic_origin = ws_monotonic_now();
  for (size_t i = 0; i < nfns; i++) {
    run->fns[i].run = run;
    run->fns[i].index = (uint32_t)i;
  }
  return run;
}

void ws_run_free(ws_run *run) {
  if (run != NULL) {
    free(run->fns);
    free(run);
  }
}

static wasm_trap_t *ws_trap_from_error(wasmtime_error_t *err) {
  ws_name_t msg;
  wasmtime_error_message(err, &msg);
  wasm_trap_t *trap = wasmtime_trap_new(msg.data, msg.size);
  wasm_byte_vec_delete(&msg);
  wasmtime_error_delete(err);
  return trap;
}

// ws_call is every host function's callback: one call into Go with the
// raw parameters and the guest's memory, then the errno Go answered, a
// call of wasmtime's own function through the forwarding module, or a
// trap.
static wasm_trap_t *ws_call(void *env, wasmtime_caller_t *caller,
                            ws_val_raw_t *args, size_t n) {
  ws_fn *fn = env;
  ws_run *run = fn->run;
  wasmtime_context_t *cx = wasmtime_caller_context(caller);
  uint8_t *base = NULL;
  size_t len = 0;
  if (run->has_memory) {
    base = wasmtime_memory_data(cx, &run->memory);
    len = wasmtime_memory_data_size(cx, &run->memory);
  }
  int64_t r = wasiserveHostCall(run->handle, fn->index, args, n, base, len);
  if (r >= 0 || (r == WS_DELEGATE && !fn->has_forward)) {
    args[0].i64 = 0;
    args[0].i32 = r >= 0 ? (int32_t)r : WS_ERRNO_FAULT;
    return NULL;
  }
  if (r == WS_DELEGATE) {
    wasm_trap_t *trap = NULL;
    wasmtime_error_t *err =
        wasmtime_func_call_unchecked(cx, &fn->forward, args, n, &trap);
    if (err != NULL) {
      return ws_trap_from_error(err);
    }
    return trap;
  }
  return ws_stopped_trap();
}

wasm_trap_t *ws_stopped_trap(void) {
  static const char stopped[] = "guest stopped by the host";
  return wasmtime_trap_new(stopped, sizeof stopped - 1);
}

wasmtime_error_t *ws_define(wasmtime_linker_t *linker, const char *module,
                            size_t module_len, const char *name,
                            size_t name_len, const wasm_functype_t *type,
                            ws_run *run, uint32_t index) {
  return wasmtime_linker_define_func_unchecked(linker, module, module_len,
                                               name, name_len, type, ws_call,
                                               &run->fns[index], NULL);
}

size_t ws_error_take(wasmtime_error_t *err, char *buf, size_t cap) {
  ws_name_t msg;
  wasmtime_error_message(err, &msg);
  size_t n = msg.size < cap ? msg.size : cap;
  memcpy(buf, msg.data, n);
  wasm_byte_vec_delete(&msg);
  wasmtime_error_delete(err);
  return n;
}

static ptrdiff_t ws_output(void *data, const unsigned char *buf, size_t n) {
  return wasiserveOutput((uintptr_t)data, (void *)buf, n);
}

void ws_set_output(wasi_config_t *config, int stream, uintptr_t handle) {
  if (stream == 1) {
    wasi_config_set_stdout_custom(config, ws_output, (void *)handle, NULL);
  } else {
    wasi_config_set_stderr_custom(config, ws_output, (void *)handle, NULL);
  }
}

// ws_epoch_deadline is every store's epoch deadline callback, called when
// the engine's epoch passes the store's deadline: the epoch is the
// engine's, so any run's stop gets there. It ends the run the host is
// stopping, and gives the others a deadline one increment ahead.
static wasmtime_error_t *
ws_epoch_deadline(wasmtime_context_t *context, void *data, uint64_t *delta,
                  wasmtime_update_deadline_kind_t *update_kind) {
  (void)context;
  ws_run *run = data;
  // Pairs with the fence in ws_run_stop: the increment that got here was
  // made after the flag was set.
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
  if (__atomic_load_n(&run->stopping, __ATOMIC_SEQ_CST)) {
    return wasmtime_error_new("guest stopped by the host");
  }
  *delta = 1;
  *update_kind = WASMTIME_UPDATE_DEADLINE_CONTINUE;
  return NULL;
}

void ws_set_epoch_deadline_callback(wasmtime_store_t *store, ws_run *run) {
  wasmtime_store_epoch_deadline_callback(store, ws_epoch_deadline, run, NULL);
}

// ws_run_stop marks run as stopping; the caller increments the engine's
// epoch next, which the fence keeps after the flag's store.
void ws_run_stop(ws_run *run) {
  __atomic_store_n(&run->stopping, 1, __ATOMIC_SEQ_CST);
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
}

// ws_malloc_fixed_thresholds fixes glibc's mmap and trim thresholds at
// their defaults (128 KiB), which glibc otherwise raises, up to 32 and
// 64 MiB, after a large mmapped block is freed. Compiling a large module
// frees such blocks, and with raised thresholds a later block of tens of
// MiB (the module's object image, its serialisation) comes from a
// thread's arena instead and, once freed, stays resident at the arena's
// top, which neither free nor malloc_trim give back for arenas other
// than the main one. With fixed thresholds such blocks are mapped and
// unmapped on their own.
void ws_malloc_fixed_thresholds(void) {
#ifdef __GLIBC__
  mallopt(M_MMAP_THRESHOLD, 128 * 1024);
  mallopt(M_TRIM_THRESHOLD, 128 * 1024);
#endif
}

// ws_release_free_memory returns the free memory of glibc's malloc arenas
// to the system: compiling a module frees most of what cranelift
// allocated, on several threads, and glibc keeps it in their arenas
// otherwise. Other C libraries have no malloc_trim; it does nothing there.
void ws_release_free_memory(void) {
#ifdef __GLIBC__
  malloc_trim(0);
#endif
}
