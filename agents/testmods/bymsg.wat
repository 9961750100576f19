;; bymsg.wat — misbehaves as told by the last byte of a message payload
;; (for `cohort exec` tests, which can only send messages):
;; 'o' out-of-bounds load, 's' unbounded recursion, 'f' endless loop,
;; 'd' divide by zero, anything else: return 0.
(module
  (memory (export "memory") 1)
  (func $rec (param i32) (result i32)
    (i32.add (call $rec (local.get 0)) (i32.const 1)))
  (func (export "cohort_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "cohort_on_event") (param $k i32) (param $p i32) (param $n i32) (result i32)
    (local $c i32)
    (if (i32.eqz (local.get $n)) (then (return (i32.const 0))))
    ;; the last byte, or the one before a closing '"' (JSON strings)
    (local.set $c (i32.load8_u (i32.add (local.get $p) (i32.sub (local.get $n) (i32.const 1)))))
    (if (i32.and (i32.eq (local.get $c) (i32.const 34)) (i32.gt_u (local.get $n) (i32.const 1)))
      (then (local.set $c (i32.load8_u (i32.add (local.get $p) (i32.sub (local.get $n) (i32.const 2)))))))
    (if (i32.eq (local.get $c) (i32.const 111)) (then (return (i32.load (i32.const -4)))))
    (if (i32.eq (local.get $c) (i32.const 115)) (then (return (call $rec (i32.const 0)))))
    (if (i32.eq (local.get $c) (i32.const 102)) (then (loop $l (br $l))))
    (if (i32.eq (local.get $c) (i32.const 100))
      (then (return (i32.div_u (i32.const 1) (i32.sub (local.get $c) (i32.const 100))))))
    (i32.const 0)))
