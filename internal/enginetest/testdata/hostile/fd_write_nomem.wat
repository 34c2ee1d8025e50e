;; A module without a linear memory that calls fd_write on stdout (an fd
;; the host's Table does not own, so the call is the engine's own) with
;; pointers it has no memory for. It returns from _start (exit 0) when the
;; call answers EFAULT (21) or EINVAL (28), and traps on any other answer.
;; (It cannot exit with the errno: wasmtime's proc_exit needs a memory.)
(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $write (param i32 i32 i32 i32) (result i32)))
  (func (export "_start")
    (local $errno i32)
    (local.set $errno (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 16)))
    (if (i32.and (i32.ne (local.get $errno) (i32.const 21)) (i32.ne (local.get $errno) (i32.const 28)))
      (then unreachable))))
