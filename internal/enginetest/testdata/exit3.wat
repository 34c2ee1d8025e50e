;; Exits with code 3: the code the cache tests plant under exit7's entry.
(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (func $pad (result i32) (i32.const 0))
  (func (export "_start") (call $exit (i32.const 3))))
