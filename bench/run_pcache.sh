#!/usr/bin/env bash
# bench/run_pcache.sh — the prefix-cache benchmark of issue #15 in one
# command: 32 agents whose prompts share a 512-token preamble, each adding a
# 32-token turn, all submitted at once to one engine (max_batch 32); time to
# first token with the prefix cache against without, and the digest of both
# (every token, the bits of every logit, the engine step of each: they must
# be equal).  Builds bench_pcache (Release), generates the ~100M bench
# fixture if absent, runs the default chunk (512: the preamble is one block)
# and 64-token chunks (the preamble is 8 blocks).
#
#   bench/run_pcache.sh [--quick]
#
# Environment (defaults in brackets): THREADS [0 = all online cores]
# AGENTS [32] PREAMBLE [512] TURN [32] DECODE [8] ROUNDS [3]
# MODEL [llama-100m-plain]  BUILD [build-bench]  FIXTURES [build/fixtures-bench]
# OUT [BUILD/results-pcache]
# --quick: 4 agents, one round, on the tests' llama-long fixture (numbers
# meaningless; checks that the script works).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

THREADS=${THREADS:-0}
AGENTS=${AGENTS:-32} PREAMBLE=${PREAMBLE:-512} TURN=${TURN:-32} DECODE=${DECODE:-8}
ROUNDS=${ROUNDS:-3}
MODEL=${MODEL:-llama-100m-plain}
BUILD=${BUILD:-build-bench}
FIXTURES=${FIXTURES:-build/fixtures-bench}
SUITE=bench
if [ "${1:-}" = "--quick" ]; then
  AGENTS=4 ROUNDS=1 DECODE=2 MODEL=llama-long-plain-fp32 SUITE=tests
elif [ $# -gt 0 ]; then
  echo "usage: bench/run_pcache.sh [--quick]" >&2
  exit 2
fi
OUT=${OUT:-$BUILD/results-pcache}
PY=/usr/bin/python3

say() { printf '\n=== %s (load average %s)\n' "$*" "$(cut -d' ' -f1-3 /proc/loadavg)"; }

say "build (Release) in $BUILD"
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD" -j2 --target bench_pcache >/dev/null

say "fixtures in $FIXTURES"
"$PY" tools/mkfixture.py --suite "$SUITE" --out "$FIXTURES" >/dev/null

mkdir -p "$OUT"
{
  echo "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
  echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet 2>/dev/null || echo ' (+local changes)')"
  echo "cpu: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) online cores"
  echo "memory: $(free -g | awk '/^Mem:/ {print $2}') GiB"
  echo "settings: MODEL=$MODEL THREADS=$THREADS AGENTS=$AGENTS PREAMBLE=$PREAMBLE TURN=$TURN DECODE=$DECODE ROUNDS=$ROUNDS"
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$OUT/machine.txt"

status=0
for chunk in 512 64; do
  say "chunk $chunk: cache off / on, $ROUNDS rounds (ABBA)"
  rc=0
  "$BUILD/bench/bench_pcache" "$FIXTURES/$MODEL" --agents "$AGENTS" --preamble "$PREAMBLE" \
    --turn "$TURN" --decode "$DECODE" --chunk "$chunk" --rounds "$ROUNDS" --threads "$THREADS" \
    | tee "$OUT/chunk-$chunk.txt" || rc=$?
  [ $rc -eq 0 ] || { echo "bench_pcache failed (exit $rc; 3: digests differ)"; status=1; }
done

say "summary"
{
  for chunk in 512 64; do
    j=$(grep '^{' "$OUT/chunk-$chunk.txt" || true)
    [ -n "$j" ] || continue
    echo "$j" | "$PY" -c '
import json, sys
r = json.loads(sys.stdin.read())
print("chunk %4d: TTFT mean %.3f s -> %.3f s (%.2fx), max %.3f s -> %.3f s (%.2fx); "
      "%d of %d chunks loaded; same digest: %s (target >= 3x)" % (
      r["chunk"], r["ttft_mean_off_s"], r["ttft_mean_on_s"], r["speedup_mean"],
      r["ttft_max_off_s"], r["ttft_max_on_s"], r["speedup_max"], r["hits"], r["lookups"],
      r["same_digest"]))'
  done
} | tee "$OUT/summary.txt"
exit $status
