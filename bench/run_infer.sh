#!/usr/bin/env bash
# bench/run_infer.sh — the inference benchmark in one command: builds the
# bench programs (Release), generates the ~100M bench fixtures if absent,
# installs the Node.js reference (npm ci) if absent, then runs in one go
#   bench_stream            memory bandwidth (STREAM-style copy), for the roofline
#   bench_infer plain       cohort on llama-100m-plain at 1/4/16/64 concurrent requests
#   node_ref plain          Node.js + onnxruntime-node, same ONNX file, one request at a time
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
#   R1 [3]                           runs at concurrency 1 (best kept); the
#                                    Node reference serves R1+1 requests
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
R1=${R1:-3}
NODE_AGG=${NODE_AGG:-4}
if [ "${1:-}" = "--quick" ]; then
  PROMPT=8 D1=6 D4=4 D16=3 D64=2 R1=1 NODE_AGG=2
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
  echo "settings: THREADS=$THREADS PROMPT=$PROMPT D1=$D1 D4=$D4 D16=$D16 D64=$D64 R1=$R1 NODE_AGG=$NODE_AGG"
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$OUT/machine.txt"

say "bench_stream (1/2)"
"$BUILD/bench/bench_stream" -n 10 | tee "$OUT/stream1.txt"
BW=$(grep '"kernel":"copy"' "$OUT/stream1.txt" | sed 's/.*"best_gbs":\([0-9.]*\).*/\1/')

CONC="1:$D1:$R1,4:$D4:2,16:$D16,64:$D64"
say "cohort bench_infer on llama-100m-plain"
"$BUILD/bench/bench_infer" "$FIXTURES/llama-100m-plain" --threads "$THREADS" \
  --prompt-len "$PROMPT" --concurrency "$CONC" --bandwidth "$BW" \
  --dump-tokens "$OUT/tokens-plain.json" | tee "$OUT/infer-plain.txt"

say "Node.js + onnxruntime-node reference on llama-100m-plain"
# Requests 0..R1: the best single request is the reference's figure at 1
# concurrent request (request 0 is the greedy cross-check against cohort).
node "$NODE_REF/generate.mjs" "$FIXTURES/llama-100m-plain" --threads "$THREADS" \
  --prompt-len "$PROMPT" --decode-len "$D1" --requests $((R1 + 1)) \
  --check "$OUT/tokens-plain.json" > "$OUT/node-single.json"
cat "$OUT/node-single.json"
# NODE_AGG requests served one after another with the decode length of the
# concurrency-16 row: the reference's aggregate throughput for that many
# concurrent clients (it serves them sequentially).
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
node1 = lines("node-single.json")[0]
nodeagg = lines("node-agg.json")[0]

bw1 = [x["best_gbs"] for x in lines("stream-1thread.txt") if x["kernel"] == "copy"][0]
print("bandwidth (STREAM copy, all cores, best of both probes): %.2f GB/s; one thread: %.2f GB/s"
      % (bw, bw1))
for tag, (lv, s) in models.items():
    print("\ncohort, llama-100m-%s (%s attention), %d intra-op threads" %
          (tag, s["attention"], lv[1]["threads"]))
    print("  %5s %7s %15s %14s %12s %12s" % ("conc", "decode", "prefill tok/s", "decode tok/s",
                                            "outside Run", "batch-inv"))
    for c in sorted(lv):
        r = lv[c]
        bi = r["batch_invariant"]
        print("  %5d %7d %15.1f %14.1f %11.2f%% %12s" % (
            c, r["decode_len"], r["prefill_tok_s"], r["decode_tok_s"],
            100 * r["outside_run_frac"], "ref" if bi is None else ("yes" if bi else "NO")))
print("\nNode.js %s + onnxruntime-node %s (llama-100m-plain, one request at a time, %d threads)" %
      (node1["node"], node1["ort_version"], node1["threads"]))
print("  single request (best of %d): prefill %.1f tok/s, decode %.1f tok/s" %
      (node1["requests"], node1["best_prefill_tok_s"], node1["best_decode_tok_s"]))
print("  %d requests one after another: prefill %.1f tok/s, decode %.1f tok/s (aggregate)" %
      (nodeagg["requests"], nodeagg["aggregate_prefill_tok_s"], nodeagg["aggregate_decode_tok_s"]))
print("  greedy tokens equal cohort's (same prompt, %d tokens): %s" %
      (node1["decode_len"], {True: "yes", False: "NO", None: "not checked"}[node1["tokens_match_cohort"]]))

lv, s = models["plain"]
wread = s["weight_bytes_read_per_token"]
wall = s["weight_bytes"]
d1 = lv[1]["decode_tok_s"]
roof_read = bw * 1e9 / wread
roof_all = bw * 1e9 / wall
ratios = [
    ("decode@16 / decode@1 (cohort, plain)", lv[16]["decode_tok_s"] / d1, ">=", 4.0, "x"),
    ("decode@16 / decode@1 (cohort, gqa)",
     models["gqa"][0][16]["decode_tok_s"] / models["gqa"][0][1]["decode_tok_s"], ">=", 4.0, "x"),
    ("cohort@1 / node@1 (decode)", d1 / node1["best_decode_tok_s"], ">=", 1.5, "x"),
    ("cohort@16 / node aggregate (decode)", lv[16]["decode_tok_s"] / nodeagg["aggregate_decode_tok_s"],
     ">=", 4.0, "x"),
    ("outside-Run fraction of decode step, batch 1", 100 * lv[1]["outside_run_frac"], "<=", 5.0, "%"),
    ("decode@1 / roofline (bytes read per token %.1f MB)" % (wread / 1e6), 100 * d1 / roof_read,
     ">=", 60.0, "%"),
]
print("\nroofline: %.2f GB/s / %.1f MB read per token = %.1f tok/s (%.1f tok/s if all %.1f MB of "
      "weights were read: decode@1 = %.1f%% of that; against the one-thread copy bandwidth "
      "decode@1 = %.1f%%)" % (bw, wread / 1e6, roof_read, roof_all, wall / 1e6,
                             100 * d1 / roof_all, 100 * d1 / (bw1 * 1e9 / wread)))
print("decode@1 streams weights at %.2f GB/s" % (d1 * wread / 1e9))
print("\n%-52s %10s %10s  %s" % ("ratio", "measured", "target", "verdict"))
summary = {"bandwidth_gbs": bw, "bandwidth_1thread_gbs": bw1, "ratios": []}
for name, val, op, tgt, unit in ratios:
    ok = val >= tgt if op == ">=" else val <= tgt
    print("%-52s %9.2f%s %7s%.1f%s  %s" % (name, val, unit, op, tgt, unit, "met" if ok else "MISSED"))
    summary["ratios"].append({"name": name, "value": val, "op": op, "target": tgt, "met": ok})
extra = [
    ("prefill cohort@1 / node@1", lv[1]["prefill_tok_s"] / node1["best_prefill_tok_s"]),
    ("decode cohort@64 / node aggregate", lv[64]["decode_tok_s"] / nodeagg["aggregate_decode_tok_s"]),
]
for name, val in extra:
    print("%-52s %9.2fx" % (name, val))
with open(os.path.join(out, "summary.json"), "w") as f:
    json.dump(summary, f, indent=1)
PYEOF
