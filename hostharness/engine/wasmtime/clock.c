//go:build cgo

// clock_time_get served in C, without a call into Go nor into wasmtime's
// WASI: a Go guest reads the clock several times per request (deadlines,
// the Date header, the scheduler), and each call through wasmtime's WASI
// costs hundreds of instructions more than the vDSO's clock_gettime.

#include "hostcall.h"

#include <time.h>

// WASI's clock ids (witx clockid).
enum {
  WS_CLOCK_REALTIME = 0,
  WS_CLOCK_MONOTONIC = 1,
  WS_CLOCK_PROCESS_CPUTIME = 2,
  WS_CLOCK_THREAD_CPUTIME = 3,
};

static uint64_t ws_clock_ns(clockid_t id) {
  struct timespec ts;
  clock_gettime(id, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t ws_monotonic_now(void) { return ws_clock_ns(CLOCK_MONOTONIC); }

// ws_clock_time_get serves clock_time_get(id, precision, result) as
// wasmtime's WASI does for every call that wasmtime does not trap on:
// the realtime clock in nanoseconds since the Unix epoch, the monotonic
// clock in nanoseconds since the run was created, EBADF for the CPU-time
// clocks, which wasmtime does not provide; precision is ignored, as
// wasmtime and wazero ignore it. Where wasmtime traps, it answers as
// wazero and the host socket layer do: EINVAL for an unknown clock id,
// EFAULT for a result that is not wholly in the guest's memory (or a
// guest without memory); an unaligned result is written, as wazero does.
// A run the host is stopping ends here, as at any other host call.
static wasm_trap_t *ws_clock_time_get(void *env, wasmtime_caller_t *caller,
                                      ws_val_raw_t *args, size_t n) {
  ws_run *run = env;
  if (__atomic_load_n(&run->stopping, __ATOMIC_SEQ_CST)) {
    return ws_stopped_trap();
  }
  if (n < 3) { // not the type ws_define_clock_time_get was given
    args[0].i64 = WS_ERRNO_INVAL;
    return NULL;
  }
  uint32_t id = (uint32_t)args[0].i32;
  uint32_t result = (uint32_t)args[2].i32;
  int32_t errno_ = 0;
  uint64_t now = 0;
  switch (id) {
  case WS_CLOCK_REALTIME:
    now = ws_clock_ns(CLOCK_REALTIME);
    break;
  case WS_CLOCK_MONOTONIC:
    now = ws_clock_ns(CLOCK_MONOTONIC) - run->monotonic_origin;
    break;
  case WS_CLOCK_PROCESS_CPUTIME:
  case WS_CLOCK_THREAD_CPUTIME:
    errno_ = WS_ERRNO_BADF;
    break;
  default:
    errno_ = WS_ERRNO_INVAL;
  }
  if (errno_ == 0) {
    errno_ = WS_ERRNO_FAULT;
    if (run->has_memory) {
      wasmtime_context_t *cx = wasmtime_caller_context(caller);
      size_t len = wasmtime_memory_data_size(cx, &run->memory);
      // In 64 bits: result+8 wraps in 32 for a result at the last bytes.
      if ((uint64_t)result + 8 <= len) {
        uint8_t *p = wasmtime_memory_data(cx, &run->memory) + result;
        for (int i = 0; i < 8; i++) {
          p[i] = (uint8_t)(now >> (8 * i)); // little-endian, as wasm is
        }
        errno_ = 0;
      }
    }
  }
  args[0].i64 = 0;
  args[0].i32 = errno_;
  return NULL;
}

wasmtime_error_t *ws_define_clock_time_get(wasmtime_linker_t *linker,
                                           const char *module,
                                           size_t module_len,
                                           const wasm_functype_t *type,
                                           ws_run *run) {
  static const char name[] = "clock_time_get";
  return wasmtime_linker_define_func_unchecked(linker, module, module_len,
                                               name, sizeof name - 1, type,
                                               ws_clock_time_get, run, NULL);
}
