;; Declares 4 tables, as many as an instance may have, and grows each by
;; 65,536 elements at a time, each element a function reference (so that
;; the host touches it), until a grow fails or each has grown 100 times
;; (52 MB apiece). Exits with 1 + the number of grows that succeeded (at
;; most 254; 255 if none failed): the caps of the tables must add up to
;; no more than the budget.
(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (table $t0 0 funcref)
  (table $t1 0 funcref)
  (table $t2 0 funcref)
  (table $t3 0 funcref)
  (func $f)
  (elem declare func $f)
  (func (export "_start")
    (local $i i32) (local $n i32) (local $failed i32)
    (loop $again
      (if (i32.eq (table.grow $t0 (ref.func $f) (i32.const 65536)) (i32.const -1)) (then (local.set $failed (i32.const 1))) (else (local.set $n (i32.add (local.get $n) (i32.const 1)))))
      (if (i32.eq (table.grow $t1 (ref.func $f) (i32.const 65536)) (i32.const -1)) (then (local.set $failed (i32.const 1))) (else (local.set $n (i32.add (local.get $n) (i32.const 1)))))
      (if (i32.eq (table.grow $t2 (ref.func $f) (i32.const 65536)) (i32.const -1)) (then (local.set $failed (i32.const 1))) (else (local.set $n (i32.add (local.get $n) (i32.const 1)))))
      (if (i32.eq (table.grow $t3 (ref.func $f) (i32.const 65536)) (i32.const -1)) (then (local.set $failed (i32.const 1))) (else (local.set $n (i32.add (local.get $n) (i32.const 1)))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $again (i32.lt_u (local.get $i) (i32.const 100))))
    (if (i32.eqz (local.get $failed)) (then (call $exit (i32.const 255))))
    (call $exit (i32.add (i32.const 1) (select (local.get $n) (i32.const 253) (i32.lt_u (local.get $n) (i32.const 253)))))))
