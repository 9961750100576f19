;; unknown_import.wat — imports a function the ABI does not provide.
(module
  (import "env" "system" (func (param i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "cohort_alloc") (param i32) (result i32) (i32.const 0))
  (func (export "cohort_on_event") (param i32 i32 i32) (result i32) (i32.const 0)))
