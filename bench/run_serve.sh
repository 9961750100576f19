#!/usr/bin/env bash
# bench/run_serve.sh — issue #13's serving benchmark: `cohort serve` under
# 1, 4, 16 and 64 concurrent streaming clients (bench/serve_load.mjs, on
# loopback) against the reference stack serving the same load one request
# at a time (bench/node_ref/generate.mjs: Node.js + onnxruntime-node, same
# model file; its aggregate is what it delivers to concurrent clients).
#
#   bench/run_serve.sh [MODEL_DIR]      (default: models/shakespeare)
# Environment: THREADS [0: all cores] PROMPT [64] DECODE [64] PER [4]
#   (requests per client) BUILD [build-bench] OUT [BUILD/results-serve]
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
MODEL=${1:-models/shakespeare}
THREADS=${THREADS:-0} PROMPT=${PROMPT:-64} DECODE=${DECODE:-64} PER=${PER:-4}
BUILD=${BUILD:-build-bench}
OUT=${OUT:-$BUILD/results-serve}
mkdir -p "$OUT"
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD" -j"$(nproc)" --target cohort >/dev/null
[ -d bench/node_ref/node_modules/onnxruntime-node ] ||
  (cd bench/node_ref && npm ci --ignore-scripts --no-audit --no-fund --silent)
ID=$(basename "$MODEL")
TARGS=()
[ "$THREADS" = 0 ] || TARGS=(--threads "$THREADS")
"$BUILD/cohort" serve --model "$MODEL" --listen 127.0.0.1:0 --max-batch 64 "${TARGS[@]}" \
  >"$OUT/serve.out" 2>"$OUT/serve.err" &
SPID=$!
trap 'kill $SPID 2>/dev/null || true' EXIT
BASE=
for _ in $(seq 600); do
  BASE=$(sed -n 's/^cohort serve: listening on \(http:[^ ]*\)$/\1/p' "$OUT/serve.out")
  [ -n "$BASE" ] && break
  kill -0 $SPID || { cat "$OUT/serve.err"; exit 1; }
  sleep 0.1
done
[ -n "$BASE" ] || { echo "run_serve: the server did not start"; exit 1; }
: >"$OUT/serve_load.jsonl"
node bench/serve_load.mjs "$BASE" "$ID" "$MODEL" --clients 1 --per-client 1 --prompt-len 8 --decode-len 4 >/dev/null # warm-up
for C in 1 4 16 64; do
  node bench/serve_load.mjs "$BASE" "$ID" "$MODEL" --clients $C --per-client "$PER" \
    --prompt-len "$PROMPT" --decode-len "$DECODE" | tee -a "$OUT/serve_load.jsonl"
done
kill -TERM $SPID
wait $SPID || true
trap - EXIT
node bench/node_ref/generate.mjs "$MODEL" --threads "$THREADS" --prompt-len "$PROMPT" \
  --decode-len "$DECODE" --requests "$PER" >"$OUT/node_ref.json" 2>"$OUT/node_ref.err"
/usr/bin/python3 - "$OUT/serve_load.jsonl" "$OUT/node_ref.json" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
ref = json.loads(open(sys.argv[2]).read().strip().splitlines()[-1])
# the reference serves requests one at a time: per request, prefill + decode
per_req = ref["prompt_len"] / ref["aggregate_prefill_tok_s"] + ref["decode_tokens"] / ref["requests"] / ref["aggregate_decode_tok_s"]
ref_tok_s = (ref["decode_tokens"] / ref["requests"] + 1) / per_req
print(f"reference (Node + onnxruntime-node, one at a time): {ref_tok_s:.1f} output tok/s")
print("clients  agg tok/s  x ref  TTFT p50  TTFT p99  outside ORT (wall / engine)")
for r in rows:
    print(f"{r['clients']:>7}  {r['aggregate_tok_s']:9.1f}  {r['aggregate_tok_s'] / ref_tok_s:5.2f}  "
          f"{r['ttft_p50_s'] * 1000:7.1f}ms {r['ttft_p99_s'] * 1000:7.1f}ms  "
          f"{100 * r['outside_ort_frac_of_wall']:5.1f}% / {100 * r['outside_ort_frac_of_engine']:4.1f}%")
PY
