;; Endless recursion in the start function, which the engine runs while
;; it instantiates the guest: as stack_overflow, but before _start.
(module
  (memory (export "memory") 1)
  (func $f (call $f))
  (func (export "_start"))
  (start $f))
