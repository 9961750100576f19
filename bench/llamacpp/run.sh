#!/usr/bin/env bash
# bench/llamacpp/run.sh — cohort and llama.cpp side by side on identical weights.
#
#   bench/llamacpp/run.sh [--quick]
#
# 1. GGUF files of every model in MODELS (tools/mkgguf.py: F32, F16, and the
#    quantized types in QTYPES), from the same model.safetensors the ONNX
#    file was written from.
# 2. Greedy agreement (proves the same model): for AGREE_PROMPTS prompts
#    (bench_infer's prompts for requests 0..N-1, fed as token ids, so no
#    tokenizer is involved) `cohort generate --prompt-ids .. --ignore-eos
#    --print-ids` against llama.cpp F32, AGREE_TOKENS tokens each.
# 3. ROUNDS rounds; in each, the engines alternate on the first model:
#      cohort    bench_infer --concurrency 1:D1,16:D16  (prefill + decode at 1 and 16)
#      llama.cpp F32, F16, QTYPES: 1 sequence (D1 tokens) and 16 sequences (D16)
#    all with THREADS threads and PROMPT-token prompts (the same ids).
#    Medians over rounds and ratios are printed by summary.py.
#
# Environment (defaults in brackets): THREADS [2] PROMPT [64] D1 [64] D16 [16]
#   ROUNDS [3] AGREE_PROMPTS [3] AGREE_TOKENS [48] QTYPES [q8_0 q4_0]
#   LLAMA_THREADS_EXTRA [1]  (also run llama.cpp with this many threads, "" = no)
#   MODELS ["build/fixtures-gguf/shakespeare-fp32 build/fixtures-gguf/llama-demo"]
#   (the first is timed; shakespeare-fp32 is the float twin of models/shakespeare,
#   which ships int4: tools/mkfixture.py --from models/shakespeare; llama-demo is
#   tools/mkfixture.py --suite demo; both are generated here when named)
#   LLAMA_TYPES ["f32 f16 $QTYPES"]  the GGUF types llama.cpp is timed on
#   COHORT_TYPE [fp32]  label of cohort's rows (int8 / int4 for a quantized
#   twin from tools/mkfixture.py --quant ... --from models/shakespeare)
#   BUILD [build-bench]  OUT [$BUILD/llamacpp]
# Needs bench/llamacpp/node_modules: (cd bench/llamacpp && npm ci --ignore-scripts --omit=optional)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
THREADS=${THREADS:-2} PROMPT=${PROMPT:-64} D1=${D1:-64} D16=${D16:-16} ROUNDS=${ROUNDS:-3}
AGREE_PROMPTS=${AGREE_PROMPTS:-3} AGREE_TOKENS=${AGREE_TOKENS:-48}
QTYPES=${QTYPES-q8_0 q4_0}
LLAMA_THREADS_EXTRA=${LLAMA_THREADS_EXTRA-1}
MODELS=${MODELS:-build/fixtures-gguf/shakespeare-fp32 build/fixtures-gguf/llama-demo}
COHORT_TYPE=${COHORT_TYPE:-fp32}
if [ "${1:-}" = "--quick" ]; then
  PROMPT=8 D1=4 D16=2 ROUNDS=1 AGREE_PROMPTS=1 AGREE_TOKENS=8 QTYPES="" LLAMA_THREADS_EXTRA=""
elif [ $# -gt 0 ]; then
  echo "usage: bench/llamacpp/run.sh [--quick]" >&2
  exit 2
fi
BUILD=${BUILD:-build-bench}
OUT=${OUT:-$BUILD/llamacpp}
PY=/usr/bin/python3
LL="node bench/llamacpp/llama.mjs"
mkdir -p "$OUT"
RAW=$OUT/raw.jsonl
: >"$RAW"

say() { printf '\n=== %s (load average %s)\n' "$*" "$(cut -d' ' -f1-3 /proc/loadavg)"; }

if [ ! -f bench/llamacpp/node_modules/node-llama-cpp/package.json ]; then
  say "node-llama-cpp: npm ci"
  (cd bench/llamacpp && npm ci --ignore-scripts --omit=optional --no-audit --no-fund)
fi
say "build (Release) in $BUILD"
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD" -j2 --target bench_infer cohort >/dev/null
case " $MODELS " in *" build/fixtures-gguf/llama-demo "*)
  "$PY" tools/mkfixture.py --suite demo --out build/fixtures-gguf >/dev/null ;;
esac
case " $MODELS " in *" build/fixtures-gguf/shakespeare-fp32 "*)
  "$PY" tools/mkfixture.py --from models/shakespeare --name shakespeare-fp32 --out build/fixtures-gguf >/dev/null ;;
esac

{
  echo "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
  echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet 2>/dev/null || echo ' (+local changes)')"
  echo "cpu: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) online cores"
  echo "node: $(node --version), node-llama-cpp $(node -p 'require("./bench/llamacpp/node_modules/node-llama-cpp/package.json").version')"
  echo "settings: MODELS='$MODELS' COHORT_TYPE=$COHORT_TYPE LLAMA_TYPES='${LLAMA_TYPES:-}' THREADS=$THREADS PROMPT=$PROMPT D1=$D1 D16=$D16 ROUNDS=$ROUNDS QTYPES='$QTYPES' LLAMA_THREADS_EXTRA='$LLAMA_THREADS_EXTRA'"
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$OUT/machine.txt"

info() { # MODEL FIELD  (vocab / bos from config.json)
  "$PY" -c "import json,sys;c=json.load(open(sys.argv[1]+'/config.json'));print(c[sys.argv[2]])" "$1" "$2"
}

for M in $MODELS; do
  name=$(basename "$M")
  say "GGUF for $name"
  for t in f32 f16 $QTYPES; do
    "$PY" tools/mkgguf.py "$M" --type "$t" --out "$OUT/$name-$t.gguf"
  done
done

say "greedy agreement: cohort fp32 vs llama.cpp F32 ($AGREE_PROMPTS prompts x $AGREE_TOKENS tokens)"
for M in $MODELS; do
  name=$(basename "$M") V=$(info "$M" vocab_size) B=$(info "$M" bos_token_id)
  for r in $(seq 0 $((AGREE_PROMPTS - 1))); do
    ids=$($LL prompt --prompt-len "$PROMPT" --req "$r" --vocab "$V" --bos "$B")
    c=$("$BUILD/cohort" generate --model "$M" --threads "$THREADS" --prompt-ids "$ids" --ignore-eos \
          --max-tokens "$AGREE_TOKENS" --print-ids 2>/dev/null | tail -1)
    l=$($LL greedy --model "$OUT/$name-f32.gguf" --threads "$THREADS" --prompt-ids "$ids" --n "$AGREE_TOKENS")
    echo "{\"agree\":\"$name\",\"req\":$r,\"cohort\":$c,\"llamacpp\":$l}" | tee -a "$RAW"
  done
done

M=${MODELS%% *}
name=$(basename "$M") V=$(info "$M" vocab_size) B=$(info "$M" bos_token_id)
for round in $(seq 1 "$ROUNDS"); do
  say "round $round/$ROUNDS: cohort"
  "$BUILD/bench/bench_infer" "$M" --threads "$THREADS" --prompt-len "$PROMPT" \
    --concurrency "1:$D1,16:$D16" 2>/dev/null | grep '^{"bench":"infer",' |
    sed "s/^{/{\"round\":$round,\"engine\":\"cohort\",\"type\":\"$COHORT_TYPE\",/" | tee -a "$RAW" | cut -c1-200
  for t in ${LLAMA_TYPES:-f32 f16 $QTYPES}; do
    for th in $THREADS $LLAMA_THREADS_EXTRA; do
      say "round $round/$ROUNDS: llama.cpp $t, $th threads"
      for s in 1 16; do
        d=$D1; [ "$s" = 16 ] && d=$D16
        $LL bench --model "$OUT/$name-$t.gguf" --threads "$th" --prompt-len "$PROMPT" --decode "$d" \
          --seqs "$s" --vocab "$V" --bos "$B" |
          sed "s/^{/{\"round\":$round,\"type\":\"$t\",/" | tee -a "$RAW" | cut -c1-200
      done
    done
  done
done
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/machine.txt"
say "summary"
"$PY" bench/llamacpp/summary.py "$RAW" --threads "$THREADS" --cohort-type "$COHORT_TYPE" | tee "$OUT/summary.txt"
