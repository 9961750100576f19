#!/usr/bin/env bash
# bench/run_roofline.sh - decode at batch 1 against the memory-bandwidth
# roofline (issue 15's target: >= 60 % at the precision where cohort is
# fastest), fp32 and weight-only int8 / int4 twins of one model, in one run.
#
#   bench/run_roofline.sh
#
# What it does:
#  1. builds bench_stream and bench_infer (Release) in BUILD;
#  2. makes a random-weight llama fixture far larger than the last-level
#     cache (default 16 layers, hidden 1024, MLP 4096, vocab 32000: 1.1 GB of
#     fp32 matrices read per token) with tools/mkfixture.py, and its
#     quantized twins from the same model.safetensors (--from, VARIANTS);
#  3. weight bytes read per decoded token, per model, from model.onnx
#     (bench/roofline_bytes.py: every initializer the graph touches, the
#     embedding one row, lm_head in full, MatMulNBits blocks with scales and
#     zero points);
#  4. a cache probe: single-thread STREAM copy at growing array sizes, so
#     that the report shows where this machine's bandwidth falls to DRAM's
#     (lscpu's L3 figure is the hypervisor's word, not a measurement);
#  5. ROUNDS alternating rounds: STREAM (THREADS threads = the thread count
#     decode uses, and 1 thread), then bench_infer at batch 1 on every model
#     (same prompt, DECODE greedy tokens, THREADS intra-op threads).  The
#     machine is shared: every round's decode is divided by the same
#     round's bandwidth, and the ratios are reported per round and as the
#     median and best over the rounds;
#  6. a summary: per precision, decode tok/s (mean step and median step),
#     achieved GB/s = tok/s x bytes read per token, and % of the roofline.
#
# Bandwidth figure used: STREAM copy, best of STREAM_REPS repeats, at
# THREADS threads (copy is STREAM's headline kernel and the higher of
# copy / read here, so the stricter denominator; the read-only sum is
# printed beside it).  Roofline tok/s = copy GB/s / bytes read per token.
#
# Fixtures go to OUT, raw results and summary to OUT/threads-THREADS.
# Environment: BUILD [build-test-gcc], OUT [$BUILD/roofline-bench], MODEL_NAME
# [llama-300m-plain] (the fp32 fixture; mkfixture remakes it if the sizes change), ROUNDS [3],
# THREADS [2], PROMPT_LEN [16], DECODE [32], STREAM_MIB [256], STREAM_REPS [5],
# LAYERS [16] HIDDEN [1024] HEADS [16] KV_HEADS [4] INTER [4096] VOCAB [32000],
# VARIANTS ["int8:head:acc4 int4:head:acc4"]: QUANT[:asym][:head][:accN][:bN], each
# a --quant twin as in bench/run_quant.sh, block N (:bN) or BLOCK [32].
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
BUILD=${BUILD:-build-test-gcc}
OUT=${OUT:-$BUILD/roofline-bench}
ROUNDS=${ROUNDS:-3}
THREADS=${THREADS:-2}
PROMPT_LEN=${PROMPT_LEN:-16}
DECODE=${DECODE:-32}
STREAM_MIB=${STREAM_MIB:-256}
STREAM_REPS=${STREAM_REPS:-5}
LAYERS=${LAYERS:-16} HIDDEN=${HIDDEN:-1024} HEADS=${HEADS:-16} KV_HEADS=${KV_HEADS:-4}
INTER=${INTER:-4096} VOCAB=${VOCAB:-32000}
BLOCK=${BLOCK:-32}
VARIANTS=${VARIANTS:-"int8:head:acc4 int4:head:acc4"}
PY=/usr/bin/python3
for v in ROUNDS THREADS PROMPT_LEN DECODE STREAM_MIB STREAM_REPS LAYERS HIDDEN HEADS KV_HEADS INTER VOCAB BLOCK; do
  [[ ${!v} =~ ^[0-9]+$ ]] && [ "${!v}" -ge 1 ] && [ "${!v}" -le 100000 ] ||
    { echo "run_roofline: $v='${!v}' is not an integer in 1..100000" >&2; exit 2; }
done
say() { printf '\n=== %s (load average %s)\n' "$*" "$(cut -d' ' -f1-3 /proc/loadavg)"; }
T0=$(date +%s)

say "build (Release) in $BUILD"
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD" -j2 --target bench_infer bench_stream >/dev/null
STREAM="$BUILD/bench/bench_stream"
INFER="$BUILD/bench/bench_infer"

RES=$OUT/threads-$THREADS
mkdir -p "$OUT" "$RES"
BASE=${MODEL_NAME:-llama-300m-plain}
say "fixtures in $OUT (mkfixture skips a folder whose stamp matches)"
"$PY" tools/mkfixture.py --name "$BASE" --layers "$LAYERS" --hidden "$HIDDEN" --heads "$HEADS" \
  --kv-heads "$KV_HEADS" --intermediate "$INTER" --vocab "$VOCAB" --context 512 --seed 42 \
  --attention plain --dtype fp32 --layout genai --out "$OUT" >/dev/null
models=("$OUT/$BASE")
labels=("fp32")
for v in $VARIANTS; do
  IFS=: read -r -a parts <<<"$v"
  blk=$BLOCK
  args=(--quant "${parts[0]}")
  for p in "${parts[@]:1}"; do
    case $p in
      b[0-9]*) blk=${p#b} ;;
      asym) args+=(--asym) ;;
      head) args+=(--quant-head) ;;
      acc*) args+=(--accuracy-level "${p#acc}") ;;
      *) echo "run_roofline: unknown variant part '$p' in '$v'" >&2; exit 2 ;;
    esac
  done
  args+=(--block "$blk")
  name="$BASE-${v//:/-}"
  [ "$blk" -eq 32 ] || [[ $v == *:b"$blk"* ]] || name+="-b$blk"
  # --from always rewrites; keep a twin newer than its source's weights
  # (mkfixture writes a folder under a temporary name and renames it when
  # complete, so a model.onnx there is whole)
  if ! [ "$OUT/$name/model.onnx" -nt "$OUT/$BASE/model.safetensors" ]; then
    "$PY" tools/mkfixture.py "${args[@]}" --from "$OUT/$BASE" --name "$name" --out "$OUT" >/dev/null
  fi
  models+=("$OUT/$name")
  labels+=("$v")
done

{
  echo "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
  echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet 2>/dev/null || echo ' (+local changes)')"
  echo "cpu: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) online cores"
  lscpu | grep -E '^(L1d|L2|L3) cache' | sed 's/^/cache: /; s/  */ /g'
  echo "memory: $(free -g | awk '/^Mem:/ {print $2}') GiB"
  echo "kernel: $(uname -r)"
  echo "settings: ROUNDS=$ROUNDS THREADS=$THREADS PROMPT_LEN=$PROMPT_LEN DECODE=$DECODE" \
       "STREAM=${STREAM_MIB}MiBx3,best of $STREAM_REPS VARIANTS='$VARIANTS' BLOCK=$BLOCK"
  echo "decode command: $INFER MODEL --threads $THREADS --prompt-len $PROMPT_LEN --concurrency 1:$DECODE --warmup 2"
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$RES/machine.txt"

say "weight bytes read per decoded token (from model.onnx)"
"$PY" bench/roofline_bytes.py "${models[@]}" >"$RES/bytes.jsonl"

say "cache probe: single-thread STREAM copy by array size (3 arrays each)"
: >"$RES/probe.txt"
for mib in 2 8 32 128 512; do
  "$STREAM" -t 1 -m "$mib" -n 3 | grep '"kernel":"copy"' | tee -a "$RES/probe.txt"
done

for r in $(seq 1 "$ROUNDS"); do
  say "round $r/$ROUNDS: STREAM, $THREADS threads and 1 thread"
  "$STREAM" -t "$THREADS" -m "$STREAM_MIB" -n "$STREAM_REPS" | grep '^{' | tee "$RES/stream-$r.txt"
  "$STREAM" -t 1 -m "$STREAM_MIB" -n "$STREAM_REPS" | grep '^{' | tee "$RES/stream1-$r.txt"
  for i in "${!models[@]}"; do
    say "round $r/$ROUNDS: decode, ${labels[$i]}"
    "$INFER" "${models[$i]}" --threads "$THREADS" --prompt-len "$PROMPT_LEN" \
      --concurrency "1:$DECODE" --warmup 2 >"$RES/infer-$r-$i.txt"
    grep -E '^ +1 ' "$RES/infer-$r-$i.txt" || true
  done
done
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$RES/machine.txt"
echo "wall time: $(( $(date +%s) - T0 )) s" | tee -a "$RES/machine.txt"

say "summary"
"$PY" - "$RES" "$ROUNDS" "${labels[@]}" <<'PYEOF' | tee "$RES/summary.txt"
import json, os, sys
out, rounds, labels = sys.argv[1], int(sys.argv[2]), sys.argv[3:]

def jl(name):
    with open(os.path.join(out, name)) as f:
        return [json.loads(l) for l in f if l.startswith("{")]

def med(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2

nbytes = jl("bytes.jsonl")
if len(nbytes) != len(labels):
    sys.exit("run_roofline: %d byte counts for %d models" % (len(nbytes), len(labels)))
print("cache probe (1 thread, copy GB/s by MiB per array):",
      ", ".join("%d MiB %.1f" % (x["array_mib"], x["best_gbs"]) for x in jl("probe.txt")))
bw, bwr, bw1 = [], [], []
for r in range(1, rounds + 1):
    s = {x["kernel"]: x for x in jl("stream-%d.txt" % r)}
    s1 = {x["kernel"]: x for x in jl("stream1-%d.txt" % r)}
    bw.append(s["copy"]["best_gbs"]); bwr.append(s["read"]["best_gbs"]); bw1.append(s1["copy"]["best_gbs"])
threads = None
print("STREAM copy GB/s per round, decode's thread count: %s; read (sum): %s; 1 thread copy: %s" % (
    " ".join("%.2f" % x for x in bw), " ".join("%.2f" % x for x in bwr),
    " ".join("%.2f" % x for x in bw1)))
rows = []
print("\nper round: decode tok/s as mean step / median (p50) step / best step; % of roofline = tok/s x"
      " MB/token / the same round's STREAM copy")
for i, lab in enumerate(labels):
    rb = nbytes[i]["read_per_token"]
    d, p, b, rq = [], [], [], []
    for r in range(1, rounds + 1):
        x = [y for y in jl("infer-%d-%d.txt" % (r, i)) if y["bench"] == "infer"][0]
        threads = x["threads"]
        d.append(x["decode_tok_s"]); p.append(x["decode_tok_s_p50"]); b.append(x["decode_tok_s_best_step"])
        rq.append(x["decode_runq_wait_s"] / x["decode_s"] if x["decode_s"] > 0 else 0.0)
    pct = [100 * d[k] * rb / (bw[k] * 1e9) for k in range(rounds)]
    pct50 = [100 * p[k] * rb / (bw[k] * 1e9) for k in range(rounds)]
    pctb = [100 * b[k] * rb / (bw[k] * 1e9) for k in range(rounds)]
    print("%-16s %7.1f MB/token | tok/s %s | GB/s (p50) %s | %% of roofline mean %s, p50 %s, best step %s" % (
        lab, rb / 1e6, "  ".join("%.2f/%.2f/%.2f" % (d[k], p[k], b[k]) for k in range(rounds)),
        " ".join("%.2f" % (v * rb / 1e9) for v in p), " ".join("%.0f" % v for v in pct),
        " ".join("%.0f" % v for v in pct50), " ".join("%.0f" % v for v in pctb)))
    rows.append({"precision": lab, "model": nbytes[i]["model"], "read_per_token": rb,
                 "weight_bytes": nbytes[i]["weight_bytes"], "decode_tok_s": d, "decode_tok_s_p50": p,
                 "decode_tok_s_best_step": b, "runq_wait_frac": rq, "pct_roofline": pct,
                 "pct_roofline_p50": pct50, "pct_roofline_best_step": pctb,
                 "median_pct_p50": med(pct50), "best_pct_p50": max(pct50),
                 "median_pct_best_step": med(pctb), "best_pct_best_step": max(pctb)})
print("\n(decode threads: %s; run-queue wait per round, share of decode wall time:" % threads)
for row in rows:
    print("   %-20s %s" % (row["precision"], " ".join("%.0f%%" % (100 * v) for v in row["runq_wait_frac"])))
print(")")
fast = max(rows, key=lambda x: med(x["decode_tok_s_p50"]))
print("\nfastest precision (median of the rounds' p50-step rates): %s, %.2f tok/s" %
      (fast["precision"], med(fast["decode_tok_s_p50"])))
print("%-44s %9s %9s %8s  %s" % ("decode@1 / roofline (median over rounds)", "p50 step", "best step",
                                 "target", "verdict (on the p50 step)"))
for row in rows:
    m = row["median_pct_p50"]
    print("%-44s %8.1f%% %8.1f%% %7.0f%%  %s%s" % (
        row["precision"], m, row["median_pct_best_step"], 60,
        "met" if m >= 60 else "MISSED", "  <- fastest" if row is fast else ""))
with open(os.path.join(out, "summary.json"), "w") as f:
    json.dump({"stream_copy_gbs": bw, "stream_read_gbs": bwr, "stream_copy_1thread_gbs": bw1,
               "threads": threads, "models": rows, "fastest": fast["precision"]}, f, indent=1)
PYEOF
