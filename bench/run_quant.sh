#!/usr/bin/env bash
# bench/run_quant.sh - decode speed of the default model (models/shakespeare,
# fp16 weights under an fp32 graph) against its weight-only quantized twins
# (tools/mkfixture.py --quant --from), side by side: every round runs each
# model once, in the same order, `cohort generate --threads T --ignore-eos
# --max-tokens N --verbose`, greedy, the same prompt.  Decode tok/s = steps /
# OrtRun milliseconds as cohort --verbose reports them (the time inside ONNX
# Runtime, which is what the weights change); the wall figure (steps / the
# command's own total) is printed beside it.  Best and median of ROUNDS.
#
#   bench/run_quant.sh
#
# Environment: BUILD [build-test-gcc] (holds the cohort binary), ROUNDS [7],
# TOKENS [256], THREADS [1], OUT [$BUILD/quant-bench] (twins + raw logs),
# VARIANTS ["int8 int4"]: each is QUANT[:asym][:head][:accN] for mkfixture
# (--quant QUANT [--asym] [--quant-head] [--accuracy-level N]), block BLOCK [32].
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
BUILD=${BUILD:-build-test-gcc}
ROUNDS=${ROUNDS:-7}
TOKENS=${TOKENS:-256}
THREADS=${THREADS:-1}
BLOCK=${BLOCK:-32}
VARIANTS=${VARIANTS:-"int8 int4"}
OUT=${OUT:-$BUILD/quant-bench}
PROMPT="ROMEO:"
BIN="$BUILD/cohort"
[ -x "$BIN" ] || { echo "run_quant: $BIN missing (build first)" >&2; exit 2; }
mkdir -p "$OUT"

models=("$ROOT/models/shakespeare")
for v in $VARIANTS; do
  IFS=: read -r -a parts <<<"$v"
  args=(--quant "${parts[0]}" --block "$BLOCK")
  for p in "${parts[@]:1}"; do
    case $p in
      asym) args+=(--asym) ;;
      head) args+=(--quant-head) ;;
      acc*) args+=(--accuracy-level "${p#acc}") ;;
      *) echo "run_quant: unknown variant part '$p' in '$v'" >&2; exit 2 ;;
    esac
  done
  name="shakespeare-${v//:/-}"
  /usr/bin/python3 tools/mkfixture.py "${args[@]}" --from models/shakespeare --name "$name" --out "$OUT" >/dev/null
  models+=("$OUT/$name")
done

echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(nproc) cores;" \
     "$(date -u '+%Y-%m-%d %H:%M UTC'); commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
echo "command: $BIN generate --model M --threads $THREADS --max-tokens $TOKENS --ignore-eos --verbose '$PROMPT'"
declare -A ort wall
for r in $(seq 1 "$ROUNDS"); do
  for m in "${models[@]}"; do
    log="$OUT/$(basename "$m").round$r.log"
    "$BIN" generate --model "$m" --threads "$THREADS" --max-tokens "$TOKENS" --ignore-eos --verbose \
      --print-ids "$PROMPT" >"$log.out" 2>"$log" || { echo "run_quant: $m failed: $(tail -3 "$log")" >&2; exit 1; }
    line=$(grep -m1 'ms in OrtRun' "$log") || { echo "run_quant: no timing line in $log" >&2; exit 1; }
    steps=$(sed -E 's/.* ([0-9]+) steps, .*/\1/' <<<"$line")
    ortms=$(sed -E 's/.*steps, ([0-9.]+) ms in OrtRun.*/\1/' <<<"$line")
    totms=$(sed -E 's/.*OrtRun of ([0-9.]+) ms total.*/\1/' <<<"$line")
    ort[$m]+="$(awk -v s="$steps" -v t="$ortms" 'BEGIN{printf "%.1f", s*1000/t}') "
    wall[$m]+="$(awk -v s="$steps" -v t="$totms" 'BEGIN{printf "%.1f", s*1000/t}') "
  done
  echo "round $r done (load average $(cut -d' ' -f1-3 /proc/loadavg))"
done
summ() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END{printf "best %7.1f  median %7.1f", a[NR], a[int((NR+1)/2)]}'; }
printf '%-34s %10s  %-32s %-32s\n' model "onnx MB" "decode tok/s (OrtRun)" "decode tok/s (wall)"
for m in "${models[@]}"; do
  mb=$(awk -v b="$(stat -c %s "$m/model.onnx")" 'BEGIN{printf "%.2f", b/1e6}')
  printf '%-34s %10s  %-32s %-32s\n' "$(basename "$m")" "$mb" "$(summ <<<"${ort[$m]}")" "$(summ <<<"${wall[$m]}")"
done
# the greedy ids of each run, for the record (quantized twins may differ from the float model)
for m in "${models[@]}"; do
  printf '%s first ids: %s\n' "$(basename "$m")" "$(tail -1 "$OUT/$(basename "$m").round1.log.out" | cut -c1-80)"
done
