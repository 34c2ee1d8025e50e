;; Grows one table by 65,536 elements at a time, each element set to a
;; function reference (so that the host's table memory is touched), up to
;; 100,000 times (52 GB of elements), until a grow fails. Exits 255 if
;; none failed, else 1 + the number of grows that succeeded (at most 254):
;; a table outside the instance's memory budget grows the host unbounded.
(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (table $t 0 funcref)
  (func $f)
  (elem declare func $f)
  (func (export "_start")
    (local $i i32)
    (loop $again
      (if (i32.eq (table.grow $t (ref.func $f) (i32.const 65536)) (i32.const -1))
        (then (call $exit (i32.add (i32.const 1) (select (local.get $i) (i32.const 253) (i32.lt_u (local.get $i) (i32.const 253)))))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $again (i32.lt_u (local.get $i) (i32.const 100000))))
    (call $exit (i32.const 255))))
