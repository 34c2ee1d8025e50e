;; One poll_oneoff with 80,000,000 subscriptions (3.84 GB of them, far
;; beyond its one page of memory). Exits with the errno.
(module
  (import "wasi_snapshot_preview1" "poll_oneoff"
    (func $poll (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    (call $exit (call $poll (i32.const 0) (i32.const 0) (i32.const 80000000) (i32.const 16)))))
