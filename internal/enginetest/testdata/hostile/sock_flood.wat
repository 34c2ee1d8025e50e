;; Accepts one connection on its listener (fd 3), then opens up to 100,000
;; TCP sockets with sock_open and keeps them; writes one byte on the
;; connection to say it is done, so that the host can count its
;; descriptors, and waits to read one byte back. Then it exits with the
;; errno of the last sock_open that failed (0 if none did).
(module
  (import "wasi_snapshot_preview1" "sock_open"
    (func $open (param i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "sock_accept"
    (func $accept (param i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write"
    (func $write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read"
    (func $read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  ;; iovec at 32: one byte at 48
  (data (i32.const 32) "\30\00\00\00\01\00\00\00")
  (data (i32.const 48) "!")
  (func (export "_start")
    (local $i i32) (local $errno i32) (local $last i32) (local $conn i32)
    (if (call $accept (i32.const 3) (i32.const 0) (i32.const 20))
      (then (call $exit (i32.const 200))))
    (local.set $conn (i32.load (i32.const 20)))
    (loop $again
      (local.set $errno (call $open (i32.const 1) (i32.const 2) (i32.const 16)))
      (if (local.get $errno) (then (local.set $last (local.get $errno))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $again (i32.lt_u (local.get $i) (i32.const 100000))))
    (drop (call $write (local.get $conn) (i32.const 32) (i32.const 1) (i32.const 40)))
    (drop (call $read (local.get $conn) (i32.const 32) (i32.const 1) (i32.const 40)))
    (call $exit (local.get $last))))
