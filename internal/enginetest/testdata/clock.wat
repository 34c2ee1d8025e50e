;; Calls clock_time_get for each case of the table at 1024 (clock id,
;; result pointer, whether the result is in memory: 12 bytes each) and
;; writes to stdout, for each, its errno (4 bytes) and the 8 bytes at its
;; result pointer (0 where that is outside memory): 12 bytes a case, for
;; the engines' clock tests. The cases: realtime at 64, monotonic at 72
;; and again at 112, the process and thread CPU-time clocks at 80 and 88,
;; realtime in the last 8 bytes of memory, clock ids 4 and 0xffffffff,
;; realtime at 65529 (past the end) and at 0xffffffff, realtime at 97
;; (unaligned).
(module
  (import "wasi_snapshot_preview1" "clock_time_get" (func $clock (param i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 1024) "\00\00\00\00\40\00\00\00\01\00\00\00\01\00\00\00\48\00\00\00\01\00\00\00\01\00\00\00\70\00\00\00\01\00\00\00\02\00\00\00\50\00\00\00\01\00\00\00\03\00\00\00\58\00\00\00\01\00\00\00\00\00\00\00\f8\ff\00\00\01\00\00\00\04\00\00\00\78\00\00\00\01\00\00\00\ff\ff\ff\ff\80\00\00\00\01\00\00\00\00\00\00\00\f9\ff\00\00\00\00\00\00\00\00\00\00\ff\ff\ff\ff\00\00\00\00\00\00\00\00\61\00\00\00\01\00\00\00")
  (func (export "_start") (local $i i32) (local $c i32) (local $o i32)
    (loop $l
      (local.set $c (i32.add (i32.const 1024) (i32.mul (local.get $i) (i32.const 12))))
      (local.set $o (i32.add (i32.const 2048) (i32.mul (local.get $i) (i32.const 12))))
      (i32.store (local.get $o)
        (call $clock (i32.load (local.get $c)) (i64.const 1) (i32.load offset=4 (local.get $c))))
      (if (i32.load offset=8 (local.get $c))
        (then (i64.store offset=4 (local.get $o) (i64.load (i32.load offset=4 (local.get $c))))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 11))))
    (i32.store (i32.const 512) (i32.const 2048))
    (i32.store (i32.const 516) (i32.const 132))
    (drop (call $write (i32.const 1) (i32.const 512) (i32.const 1) (i32.const 520)))))
