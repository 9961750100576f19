#!/usr/bin/env bash
# bench/run_infer.sh — the inference benchmark in one command: builds the
# bench programs (Release), generates the ~100M bench fixtures if absent,
# installs the Node.js reference (npm ci) if absent, then runs in one go
#   bench_stream            memory bandwidth (STREAM-style copy), for the roofline
#   head to head            cohort and Node.js + onnxruntime-node (same ONNX file, one
#                           request at a time) alternating at batch 1, ROUNDS times
#   bench_infer plain       cohort on llama-100m-plain at 1/4/16/64 concurrent requests
#   node_ref plain          the reference serving NODE_AGG requests one after another
#   bench_infer gqa         cohort on llama-100m-gqa (GroupQueryAttention variant)
#   bench_stream            again: bandwidth is taken as the better of the two
# and prints the ratios against the targets of the benchmark brief.
#
#   bench/run_infer.sh [--quick]
#
# Environment (defaults in brackets):
#   THREADS [0 = all online cores]   intra-op threads for cohort and Node alike
#   PROMPT [64]                      prompt tokens per request
#   D1 [128] D4 [64] D16 [48] D64 [16]  decode tokens per request at 1/4/16/64
#   ROUNDS [5]                       batch-1 head-to-head rounds (cohort and
#                                    Node alternate; the best of each counts)
#   R1 [2]                           runs at concurrency 1 in the all-levels run
#   NODE_AGG [4]                     requests the Node reference serves one
#                                    after another for its aggregate figure
#   BUILD [build-bench]  FIXTURES [build/fixtures-bench]  OUT [BUILD/results]
# --quick: tiny lengths, for checking that the script works (numbers are
# meaningless).  Everything is written to $OUT (raw outputs + summary.txt).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

THREADS=${THREADS:-0}
PROMPT=${PROMPT:-64}
D1=${D1:-128} D4=${D4:-64} D16=${D16:-48} D64=${D64:-16}
R1=${R1:-2}
ROUNDS=${ROUNDS:-5}
NODE_AGG=${NODE_AGG:-4}
if [ "${1:-}" = "--quick" ]; then
  PROMPT=8 D1=6 D4=4 D16=3 D64=2 R1=1 ROUNDS=1 NODE_AGG=2
elif [ $# -gt 0 ]; then
  echo "usage: bench/run_infer.sh [--quick]" >&2
  exit 2
fi
BUILD=${BUILD:-build-bench}
FIXTURES=${FIXTURES:-build/fixtures-bench}
OUT=${OUT:-$BUILD/results}
PY=/usr/bin/python3
NODE_REF=bench/node_ref
T0=$(date +%s)

say() { printf '\n=== %s (load average %s)\n' "$*" "$(cut -d' ' -f1-3 /proc/loadavg)"; }

say "build (Release) in $BUILD"
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD" -j2 --target bench_infer bench_stream >/dev/null

say "fixtures in $FIXTURES"
# The tool skips a folder whose stamp matches, so this is cheap when present.
"$PY" tools/mkfixture.py --suite bench --out "$FIXTURES"

if [ ! -f "$NODE_REF/node_modules/onnxruntime-node/package.json" ]; then
  say "Node reference: npm ci"
  (cd "$NODE_REF" && npm ci --ignore-scripts --no-audit --no-fund)
fi

mkdir -p "$OUT"
{
  echo "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
  echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet 2>/dev/null || echo ' (+local changes)')"
  echo "cpu: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) online cores"
  echo "memory: $(free -g | awk '/^Mem:/ {print $2}') GiB"
  echo "kernel: $(uname -r)"
  echo "node: $(node --version)"
  echo "settings: THREADS=$THREADS PROMPT=$PROMPT D1=$D1 D4=$D4 D16=$D16 D64=$D64 R1=$R1 ROUNDS=$ROUNDS NODE_AGG=$NODE_AGG"
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$OUT/machine.txt"

say "bench_stream (1/2)"
"$BUILD/bench/bench_stream" -n 10 | tee "$OUT/stream1.txt"
BW=$(grep '"kernel":"copy"' "$OUT/stream1.txt" | sed 's/.*"best_gbs":\([0-9.]*\).*/\1/')

# Batch 1, head to head: cohort and the Node reference alternate, ROUNDS
# times, so that both see the same moments of a shared machine; the best
# run of each is compared.  Round 1 also checks the greedy tokens.
for r in $(seq 1 "$ROUNDS"); do
  say "batch 1 head to head, round $r/$ROUNDS: cohort"
  "$BUILD/bench/bench_infer" "$FIXTURES/llama-100m-plain" --threads "$THREADS" \
    --prompt-len "$PROMPT" --concurrency "1:$D1" --warmup 4 \
    --dump-tokens "$OUT/tokens-plain.json" > "$OUT/h2h-cohort-$r.txt"
  grep -E '^ +1 ' "$OUT/h2h-cohort-$r.txt"
  say "batch 1 head to head, round $r/$ROUNDS: Node reference"
  node "$NODE_REF/generate.mjs" "$FIXTURES/llama-100m-plain" --threads "$THREADS" \
    --prompt-len "$PROMPT" --decode-len "$D1" --requests 1 --warmup 4 \
    --check "$OUT/tokens-plain.json" > "$OUT/h2h-node-$r.json"
  cat "$OUT/h2h-node-$r.json"
done

CONC="1:$D1:$R1,4:$D4:2,16:$D16:2,64:$D64"
say "cohort bench_infer on llama-100m-plain, all levels"
"$BUILD/bench/bench_infer" "$FIXTURES/llama-100m-plain" --threads "$THREADS" \
  --prompt-len "$PROMPT" --concurrency "$CONC" --bandwidth "$BW" \
  | tee "$OUT/infer-plain.txt"

# NODE_AGG requests served one after another with the decode length of the
# concurrency-16 row: the reference's aggregate throughput for that many
# concurrent clients (it serves them sequentially).
say "Node reference: $NODE_AGG requests one after another"
node "$NODE_REF/generate.mjs" "$FIXTURES/llama-100m-plain" --threads "$THREADS" \
  --prompt-len "$PROMPT" --decode-len "$D16" --requests "$NODE_AGG" > "$OUT/node-agg.json"
cat "$OUT/node-agg.json"

say "cohort bench_infer on llama-100m-gqa"
"$BUILD/bench/bench_infer" "$FIXTURES/llama-100m-gqa" --threads "$THREADS" \
  --prompt-len "$PROMPT" --concurrency "$CONC" --bandwidth "$BW" \
  --dump-tokens "$OUT/tokens-gqa.json" | tee "$OUT/infer-gqa.txt"

say "bench_stream (2/2)"
"$BUILD/bench/bench_stream" -n 10 | tee "$OUT/stream2.txt"
say "bench_stream, one thread (context: what one core can pull)"
"$BUILD/bench/bench_stream" -t 1 -n 10 | tee "$OUT/stream-1thread.txt"
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/machine.txt"
echo "wall time: $(( $(date +%s) - T0 )) s" | tee -a "$OUT/machine.txt"

say "summary"
"$PY" - "$OUT" <<'PYEOF' | tee "$OUT/summary.txt"
import json, sys, os
out = sys.argv[1]

def lines(name):
    with open(os.path.join(out, name)) as f:
        return [json.loads(l) for l in f if l.startswith("{")]

bw = max(x["best_gbs"] for n in ("stream1.txt", "stream2.txt") for x in lines(n)
         if x["kernel"] == "copy")
models = {}
for tag in ("plain", "gqa"):
    rows = lines("infer-%s.txt" % tag)
    lv = {r["concurrency"]: r for r in rows if r["bench"] == "infer"}
    summ = [r for r in rows if r["bench"] == "infer_summary"][0]
    models[tag] = (lv, summ)
import glob
h2h_c = [[r for r in lines(os.path.basename(f)) if r["bench"] == "infer"][0]
         for f in sorted(glob.glob(os.path.join(out, "h2h-cohort-*.txt")))]
h2h_n = [lines(os.path.basename(f))[0] for f in sorted(glob.glob(os.path.join(out, "h2h-node-*.json")))]
nodeagg = lines("node-agg.json")[0]
c1_best = max(r["decode_tok_s"] for r in h2h_c)
n1_best = max(r["best_decode_tok_s"] for r in h2h_n)
c1p_best = max(r["prefill_tok_s"] for r in h2h_c)
n1p_best = max(r["best_prefill_tok_s"] for r in h2h_n)
match = h2h_n[0]["tokens_match_cohort"]
c1_p50 = max(r["decode_tok_s_p50"] for r in h2h_c)
n1_p50 = max(r["best_decode_tok_s_p50"] for r in h2h_n)
paired = sorted(c["decode_tok_s"] / n["best_decode_tok_s"] for c, n in zip(h2h_c, h2h_n))
paired_median = paired[len(paired) // 2] if len(paired) % 2 else \
    (paired[len(paired) // 2 - 1] + paired[len(paired) // 2]) / 2

bw1 = [x["best_gbs"] for x in lines("stream-1thread.txt") if x["kernel"] == "copy"][0]
print("bandwidth (STREAM copy, all cores, best of both probes): %.2f GB/s; one thread: %.2f GB/s"
      % (bw, bw1))
for tag, (lv, s) in models.items():
    print("\ncohort, llama-100m-%s (%s attention), %d intra-op threads" %
          (tag, s["attention"], lv[1]["threads"]))
    print("  %5s %7s %15s %14s %10s %12s %12s %10s" % ("conc", "decode", "prefill tok/s",
          "decode tok/s", "(p50)", "outside Run", "batch-inv", "runq wait"))
    for c in sorted(lv):
        r = lv[c]
        bi = r["batch_invariant"]
        print("  %5d %7d %15.1f %14.1f %10.1f %11.2f%% %12s %9.0f%%" % (
            c, r["decode_len"], r["prefill_tok_s"], r["decode_tok_s"], r["decode_tok_s_p50"],
            100 * r["outside_run_frac"], "ref" if bi is None else ("yes" if bi else "NO"),
            100 * r["decode_runq_wait_s"] / r["decode_s"]))
print("\nbatch 1 head to head on llama-100m-plain (prompt %d, decode %d), rounds alternating:" %
      (h2h_c[0]["prompt_len"], h2h_c[0]["decode_len"]))
print("  cohort decode tok/s: %s  -> best %.1f (p50 best %.1f); prefill best %.1f" %
      (" ".join("%.1f" % r["decode_tok_s"] for r in h2h_c), c1_best, c1_p50, c1p_best))
print("  node   decode tok/s: %s  -> best %.1f (p50 best %.1f); prefill best %.1f" %
      (" ".join("%.1f" % r["best_decode_tok_s"] for r in h2h_n), n1_best, n1_p50, n1p_best))
print("  run-queue wait / decode wall, cohort: %s; node: %s" %
      (" ".join("%.0f%%" % (100 * r["decode_runq_wait_s"] / r["decode_s"]) for r in h2h_c),
       " ".join("%.0f%%" % (100 * r["best_decode_runq_wait_frac"]) for r in h2h_n)))
print("  per-round ratio cohort/node: %s  -> median %.2fx" %
      (" ".join("%.2f" % (c["decode_tok_s"] / n["best_decode_tok_s"]) for c, n in zip(h2h_c, h2h_n)),
       paired_median))
node1 = h2h_n[0]
print("\nNode.js %s + onnxruntime-node %s (llama-100m-plain, one request at a time, %d threads)" %
      (node1["node"], node1["ort_version"], node1["threads"]))
print("  %d requests one after another: prefill %.1f tok/s, decode %.1f tok/s (aggregate)" %
      (nodeagg["requests"], nodeagg["aggregate_prefill_tok_s"], nodeagg["aggregate_decode_tok_s"]))
print("  greedy tokens equal cohort's (same prompt, %d tokens): %s" %
      (node1["decode_len"], {True: "yes", False: "NO", None: "not checked"}[match]))

lv, s = models["plain"]
wread = s["weight_bytes_read_per_token"]
wall = s["weight_bytes"]
d1 = lv[1]["decode_tok_s"]
d1_best = max(d1, c1_best)  # every cohort batch-1 run on this model
roof_read = bw * 1e9 / wread
roof_all = bw * 1e9 / wall
ratios = [
    ("decode@16 / decode@1 (cohort, plain)", lv[16]["decode_tok_s"] / d1, ">=", 4.0, "x"),
    ("decode@16 / decode@1 (cohort, gqa)",
     models["gqa"][0][16]["decode_tok_s"] / models["gqa"][0][1]["decode_tok_s"], ">=", 4.0, "x"),
    ("cohort@1 / node@1 (decode, head to head)", c1_best / n1_best, ">=", 1.5, "x"),
    ("cohort@16 / node aggregate (decode)", lv[16]["decode_tok_s"] / nodeagg["aggregate_decode_tok_s"],
     ">=", 4.0, "x"),
    ("outside-Run fraction of decode step, batch 1", 100 * lv[1]["outside_run_frac"], "<=", 5.0, "%"),
    ("best decode@1 / roofline (%.1f MB read per token)" % (wread / 1e6), 100 * d1_best / roof_read,
     ">=", 60.0, "%"),
]
print("\nroofline: %.2f GB/s / %.1f MB read per token = %.1f tok/s (%.1f tok/s if all %.1f MB of "
      "weights were read: decode@1 = %.1f%% of that; against the one-thread copy bandwidth "
      "decode@1 = %.1f%%)" % (bw, wread / 1e6, roof_read, roof_all, wall / 1e6,
                             100 * d1_best / roof_all, 100 * d1_best / (bw1 * 1e9 / wread)))
print("best decode@1 (%.1f tok/s) streams weights at %.2f GB/s" % (d1_best, d1_best * wread / 1e9))
print("\nrun-queue wait = time our threads were runnable but another process had the CPU,\n"
      "summed over threads, per second of decode wall time (0% = an undisturbed run).")
print("\n%-52s %10s %10s  %s" % ("ratio", "measured", "target", "verdict"))
summary = {"bandwidth_gbs": bw, "bandwidth_1thread_gbs": bw1, "ratios": [],
           "cohort_plain": {str(c): lv[c] for c in lv}, "cohort_gqa": {str(c): r for c, r in
           models["gqa"][0].items()}, "h2h_cohort_decode": [r["decode_tok_s"] for r in h2h_c],
           "h2h_node_decode": [r["best_decode_tok_s"] for r in h2h_n], "node_aggregate": nodeagg,
           "greedy_tokens_match": match}
for name, val, op, tgt, unit in ratios:
    ok = val >= tgt if op == ">=" else val <= tgt
    print("%-52s %9.2f%s %7s%.1f%s  %s" % (name, val, unit, op, tgt, unit, "met" if ok else "MISSED"))
    summary["ratios"].append({"name": name, "value": val, "op": op, "target": tgt, "met": ok})
extra = [
    ("decode cohort@1 / node@1, median of the rounds' ratios", paired_median),
    ("decode cohort@1 / node@1, best p50 step rates", c1_p50 / n1_p50),
    ("prefill cohort@1 / node@1 (head to head)", c1p_best / n1p_best),
    ("decode cohort@64 / node aggregate", lv[64]["decode_tok_s"] / nodeagg["aggregate_decode_tok_s"]),
]
for name, val in extra:
    print("%-52s %9.2fx" % (name, val))
    summary["ratios"].append({"name": name, "value": val})
with open(os.path.join(out, "summary.json"), "w") as f:
    json.dump(summary, f, indent=1)
PYEOF
