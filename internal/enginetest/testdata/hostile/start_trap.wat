;; A guest whose start function, which the engine runs while it
;; instantiates the guest (before _start), writes all 16 MiB of its
;; memory and traps: each run fails to instantiate, and must still give
;; back its memory.
(module
  (memory (export "memory") 256)
  (func (export "_start"))
  (func $fill_and_trap
    (memory.fill (i32.const 0) (i32.const 1) (i32.const 16777216))
    unreachable)
  (start $fill_and_trap))
