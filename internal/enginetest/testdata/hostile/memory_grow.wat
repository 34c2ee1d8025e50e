;; Grows its memory by 320 pages (20 MiB) at a time, touching one byte of
;; each new page, as a Go guest's allocations do, until a grow fails or it
;; reaches 4 GiB. Exits with 1 + the number of grows that succeeded (at
;; most 205): a host that cannot give the memory must fail the grow, not
;; die.
(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    (local $n i32) (local $at i32) (local $end i32)
    (loop $grow
      (if (i32.eq (memory.grow (i32.const 320)) (i32.const -1))
        (then (call $exit (i32.add (i32.const 1) (local.get $n)))))
      (local.set $n (i32.add (local.get $n) (i32.const 1)))
      (local.set $end (i32.mul (memory.size) (i32.const 65536)))
      (local.set $at (i32.sub (local.get $end) (i32.const 20971520)))
      (loop $touch
        (i32.store8 (local.get $at) (i32.const 1))
        (local.set $at (i32.add (local.get $at) (i32.const 4096)))
        (br_if $touch (i32.lt_u (local.get $at) (local.get $end))))
      (br_if $grow (i32.lt_u (local.get $n) (i32.const 204))))
    (call $exit (i32.add (i32.const 1) (local.get $n)))))
