;; fuel_paths.wat — every way a function can hand control back (branch to
;; the function's label, br_table, return, falling off the end, br_if, and
;; calls, direct and indirect, nested), each in a loop of payload[0..4]
;; iterations with a call, followed by a call-free loop of as many (whose
;; charges live only in the caller's counter until it leaves).  tests/test_agent.c checks that fuel_used is exact on each
;; path and that a budget one unit short traps: the fuel counter lives in a
;; local per function and must be written back on all of them.
;; Cost of kinds 1-5 with n = payload: cohort_alloc entry (1) + cohort_on_event
;; entry (1) + n loop headers + n callee entries + n loop headers = 3n + 2.
;; Kind 6: 2 + 2 * (1 + 2n) + n = 5n + 4.
(module
  (type $v_i (func (result i32)))
  (memory (export "memory") 1)
  (table 1 funcref)
  (elem (i32.const 0) $one)
  (func $one (type $v_i) (i32.const 1))
  (func $ident (param i32) (result i32) (local.get 0))
  (func $sum (param $n i32) (result i32) (local $i i32) (local $s i32)
    (loop $l
      (local.set $s (i32.add (local.get $s) (call $ident (local.get $i))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (local.get $n))))
    (local.get $s))
  (func (export "cohort_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "cohort_on_event") (param $k i32) (param $p i32) (param $n i32) (result i32)
    (local $i i32) (local $lim i32) (local $j i32)
    (local.set $lim (i32.load (local.get $p)))
    ;; 1: leave by a branch to the function's label
    (if (i32.eq (local.get $k) (i32.const 1))
      (then
        (loop $l
          (local.set $i (call $ident (i32.add (local.get $i) (i32.const 1))))
          (br_if $l (i32.lt_u (local.get $i) (local.get $lim))))
        (loop $m
          (local.set $j (i32.add (local.get $j) (i32.const 1)))
          (br_if $m (i32.lt_u (local.get $j) (local.get $lim))))
        (br 1 (local.get $i))))
    ;; 2: leave by br_table whose targets are the function's label
    (if (i32.eq (local.get $k) (i32.const 2))
      (then
        (loop $l
          (local.set $i (call $ident (i32.add (local.get $i) (i32.const 1))))
          (br_if $l (i32.lt_u (local.get $i) (local.get $lim))))
        (loop $m
          (local.set $j (i32.add (local.get $j) (i32.const 1)))
          (br_if $m (i32.lt_u (local.get $j) (local.get $lim))))
        (br_table 1 1 (local.get $i) (i32.const 0))))
    ;; 3: indirect calls, leave by return
    (if (i32.eq (local.get $k) (i32.const 3))
      (then
        (loop $l
          (local.set $i (i32.add (local.get $i)
                                 (call_indirect (type $v_i) (i32.const 0))))
          (br_if $l (i32.lt_u (local.get $i) (local.get $lim))))
        (loop $m
          (local.set $j (i32.add (local.get $j) (i32.const 1)))
          (br_if $m (i32.lt_u (local.get $j) (local.get $lim))))
        (return (local.get $i))))
    ;; 5: leave by a taken br_if to the function's label
    (if (i32.eq (local.get $k) (i32.const 5))
      (then
        (loop $l
          (local.set $i (call $ident (i32.add (local.get $i) (i32.const 1))))
          (br_if $l (i32.lt_u (local.get $i) (local.get $lim))))
        (loop $m
          (local.set $j (i32.add (local.get $j) (i32.const 1)))
          (br_if $m (i32.lt_u (local.get $j) (local.get $lim))))
        (drop (br_if 1 (local.get $i) (i32.const 1)))))
    ;; 6: nested: a callee with its own loop and calls, twice
    (if (i32.eq (local.get $k) (i32.const 6))
      (then
        (local.set $i (i32.add (call $sum (local.get $lim))
                               (call $sum (local.get $lim))))
        (loop $m
          (local.set $j (i32.add (local.get $j) (i32.const 1)))
          (br_if $m (i32.lt_u (local.get $j) (local.get $lim))))
        (return (local.get $i))))
    ;; 4: leave by falling off the end
    (if (i32.eq (local.get $k) (i32.const 4))
      (then
        (loop $l
          (local.set $i (call $ident (i32.add (local.get $i) (i32.const 1))))
          (br_if $l (i32.lt_u (local.get $i) (local.get $lim))))
        (loop $m
          (local.set $j (i32.add (local.get $j) (i32.const 1)))
          (br_if $m (i32.lt_u (local.get $j) (local.get $lim))))))
    (local.get $i))
)
