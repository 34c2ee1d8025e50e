;; Exits with code 7 in its start function, which the engine runs while it
;; instantiates the guest, before _start.
(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (func $start (call $exit (i32.const 7)))
  (func (export "_start"))
  (start $start))
