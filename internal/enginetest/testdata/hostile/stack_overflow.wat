;; Endless recursion: the engine's stack overflows, and wasmtime's trap
;; message carries one backtrace line per frame (16,370 of them).
(module
  (memory (export "memory") 1)
  (func $f (call $f))
  (func (export "_start") (call $f)))
