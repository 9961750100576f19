;; simd_ops.wat — an agent written with fixed-width SIMD (v128): every kind
;; of SIMD immediate the validator decodes (memarg, v128.const, shuffle lane
;; indices, extract/replace lane, load/store lane, load_zero, splat) in a
;; function with two loops, so that fuel is charged at its entry and at both
;; loop headers.  Event kind 1: sums the payload's bytes four lanes at a time
;; and returns the sum (the scalar sum of the same bytes: padding is zeros).
(module
  (memory (export "memory") 1)
  (func (export "cohort_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "cohort_on_event") (param $k i32) (param $p i32) (param $n i32) (result i32)
    (local $acc v128) (local $i i32) (local $t v128)
    ;; zero-pad the payload to a multiple of 16 bytes
    (v128.store offset=0 align=1 (i32.add (local.get $p) (local.get $n)) (v128.const i32x4 0 0 0 0))
    (local.set $acc (v128.const i32x4 0 0 0 0))
    (block $done
      (loop $bytes
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        ;; widen 4 bytes to i32 lanes: load32_zero, then shuffle to lanes 0,4,8,12
        (local.set $t (v128.load32_zero align=1 (i32.add (local.get $p) (local.get $i))))
        (local.set $t (i8x16.shuffle 0 16 16 16 1 16 16 16 2 16 16 16 3 16 16 16
                        (local.get $t) (v128.const i32x4 0 0 0 0)))
        (local.set $acc (i32x4.add (local.get $acc) (local.get $t)))
        (local.set $i (i32.add (local.get $i) (i32.const 4)))
        (br $bytes)))
    ;; lane traffic: store lane 3 to scratch memory, load it back into lane 2
    (v128.store32_lane align=4 3 (i32.const 64) (local.get $acc))
    (local.set $t (v128.load32_lane align=4 2 (i32.const 64) (i32x4.splat (i32.const 0))))
    (local.set $t (i32x4.replace_lane 3 (local.get $t) (i32.const 0)))
    (local.set $acc (i32x4.replace_lane 3 (local.get $acc) (i32.const 0)))
    (local.set $acc (i32x4.add (local.get $acc) (local.get $t)))
    ;; horizontal sum (rotate by two lanes and add, then by one), in a
    ;; second loop that runs once
    (local.set $i (i32.const 0))
    (loop $lanes
      (local.set $acc (i32x4.add (local.get $acc)
        (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $acc) (local.get $acc))))
      (local.set $acc (i32x4.add (local.get $acc)
        (i8x16.shuffle 4 5 6 7 8 9 10 11 12 13 14 15 0 1 2 3 (local.get $acc) (local.get $acc))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $lanes (i32.lt_u (local.get $i) (i32.const 1))))
    (drop (v128.load8_splat (i32.const 0)))
    (i32x4.extract_lane 0 (local.get $acc))))
