;; big_memory.wat — asks for 2000 initial pages (125 MiB), over the default cap.
(module
  (memory (export "memory") 2000)
  (func (export "cohort_alloc") (param i32) (result i32) (i32.const 0))
  (func (export "cohort_on_event") (param i32 i32 i32) (result i32) (i32.const 0)))
