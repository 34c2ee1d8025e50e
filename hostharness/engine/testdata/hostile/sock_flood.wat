;; Opens up to 100,000 TCP sockets with sock_open and keeps them, then
;; waits in a blocking sock_accept on its listener (fd 3) so that the host
;; can count its descriptors. Once a client connects it exits with the
;; errno of the last sock_open that failed (0 if none did).
(module
  (import "wasi_snapshot_preview1" "sock_open"
    (func $open (param i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "sock_accept"
    (func $accept (param i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    (local $i i32) (local $errno i32) (local $last i32)
    (loop $again
      (local.set $errno (call $open (i32.const 1) (i32.const 2) (i32.const 16)))
      (if (local.get $errno) (then (local.set $last (local.get $errno))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $again (i32.lt_u (local.get $i) (i32.const 100000))))
    (drop (call $accept (i32.const 3) (i32.const 0) (i32.const 20)))
    (call $exit (local.get $last))))
