;; hostile.wat — one module per trap kind, selected by the event kind.
;; Used by tests/test_agent.c; each kind is documented beside its branch.
(module
  (import "cohort" "emit" (func $emit (param i32 i32)))
  (type $v_i (func (result i32)))
  (type $i_i (func (param i32) (result i32)))
  (memory (export "memory") 1 100)
  (table 4 funcref)
  (elem (i32.const 0) $forty_two $ident)
  (global $counter (mut i32) (i32.const 0))
  (func $forty_two (type $v_i) (i32.const 42))
  (func $ident (type $i_i) (local.get 0))
  (func $recurse (param i32) (result i32)
    (i32.add (call $recurse (i32.add (local.get 0) (i32.const 1))) (i32.const 1)))
  (func (export "cohort_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "cohort_init") (param i32 i32) (result i32) (i32.const 0))
  (func (export "cohort_on_event") (param $k i32) (param $p i32) (param $n i32) (result i32)
    (local $i i32)
    ;; 1: load far out of bounds (guard-page fault)
    (if (i32.eq (local.get $k) (i32.const 1))
      (then (return (i32.load (i32.const 0xfffffff0)))))
    ;; 2: unreachable
    (if (i32.eq (local.get $k) (i32.const 2)) (then unreachable))
    ;; 3: integer divide by zero (divisor from the payload length, 0)
    (if (i32.eq (local.get $k) (i32.const 3))
      (then (return (i32.div_s (i32.const 7) (local.get $n)))))
    ;; 4: unbounded recursion
    (if (i32.eq (local.get $k) (i32.const 4))
      (then (return (call $recurse (i32.const 0)))))
    ;; 5: indirect call through an empty slot
    (if (i32.eq (local.get $k) (i32.const 5))
      (then (return (call_indirect (type $v_i) (i32.const 3)))))
    ;; 6: indirect call with the wrong signature
    (if (i32.eq (local.get $k) (i32.const 6))
      (then (return (call_indirect (type $v_i) (i32.const 1)))))
    ;; 7: endless loop counting iterations in memory[0] (fuel)
    (if (i32.eq (local.get $k) (i32.const 7))
      (then (i32.store (i32.const 0) (i32.const 0))
            (loop $l
              (i32.store (i32.const 0) (i32.add (i32.load (i32.const 0)) (i32.const 1)))
              (br $l))))
    ;; 8: grow memory one page at a time until refused; returns the pages
    (if (i32.eq (local.get $k) (i32.const 8))
      (then (block $done
              (loop $l
                (br_if $done (i32.eq (memory.grow (i32.const 1)) (i32.const -1)))
                (br $l)))
            (return (memory.size))))
    ;; 9: emit with a pointer outside memory
    (if (i32.eq (local.get $k) (i32.const 9))
      (then (call $emit (i32.const 0x7ffffff0) (i32.const 64)) (return (i32.const 0))))
    ;; 10: signed division overflow
    (if (i32.eq (local.get $k) (i32.const 10))
      (then (return (i32.div_s (i32.const 0x80000000) (i32.sub (local.get $n) (i32.const 1))))))
    ;; 11: read memory[0]
    (if (i32.eq (local.get $k) (i32.const 11))
      (then (return (i32.load (i32.const 0)))))
    ;; 12: compute: sum of i*i for i < payload[0..4] (a well-behaved agent)
    (if (i32.eq (local.get $k) (i32.const 12))
      (then (local.set $i (i32.const 0))
            (global.set $counter (i32.const 0))
            (block $done
              (loop $l
                (br_if $done (i32.ge_u (local.get $i) (i32.load (local.get $p))))
                (global.set $counter (i32.add (global.get $counter) (i32.mul (local.get $i) (local.get $i))))
                (local.set $i (i32.add (local.get $i) (i32.const 1)))
                (br $l)))
            (return (global.get $counter))))
    ;; 13: good indirect call
    (if (i32.eq (local.get $k) (i32.const 13))
      (then (return (call_indirect (type $v_i) (i32.const 0)))))
    ;; 14: store just past the end of memory (bounds at the exact edge)
    (if (i32.eq (local.get $k) (i32.const 14))
      (then (i32.store (i32.sub (i32.mul (memory.size) (i32.const 65536)) (i32.const 2))
                       (i32.const 1))))
    (i32.const 0))
)
