;; sock_getaddrinfo with max_res_len 2^32-1 and a result chain whose only
;; addrinfo points to itself (ai_next = itself), called 10,000 times. Exits
;; with 10 + the result count of the last call, or 100 + its errno.
(module
  (import "wasi_snapshot_preview1" "sock_getaddrinfo"
    (func $getaddrinfo (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "127.0.0.1")       ;; node
  ;; hints at 64: all zero
  ;; addrinfo at 128: ai_addr (offset 12) = 192, ai_next (offset 24) = 128
  (data (i32.const 140) "\c0\00\00\00")
  (data (i32.const 152) "\80\00\00\00")
  ;; sockaddr at 192: family 0, data_len 26, data 256
  (data (i32.const 196) "\1a\00\00\00\00\01\00\00")
  ;; res at 320 points to the addrinfo at 128; res_len at 324
  (data (i32.const 320) "\80\00\00\00")
  (func (export "_start")
    (local $i i32) (local $errno i32)
    (loop $again
      (local.set $errno
        (call $getaddrinfo (i32.const 0) (i32.const 9) (i32.const 0) (i32.const 0)
          (i32.const 64) (i32.const 320) (i32.const -1) (i32.const 324)))
      (if (local.get $errno)
        (then (call $exit (i32.add (i32.const 100) (local.get $errno)))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $again (i32.lt_u (local.get $i) (i32.const 10000))))
    (call $exit (i32.add (i32.const 10) (i32.load (i32.const 324))))))
