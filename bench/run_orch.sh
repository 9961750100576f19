#!/usr/bin/env bash
# run_orch.sh — the orchestrator benchmarks (bench/RESULTS.md, "## Orchestrator"):
#
#  (a) routing, no LLM: 1,000 pingpong agents (bench/agents/pingpong.c) in
#      pairs, every agent starting with one message, each message delivered
#      HOPS times; `cohort run` at several worker counts, journal on disk and
#      on tmpfs (/dev/shm), against the original design's stack in the same
#      run: Node.js worker_threads + MessagePort (bench/orch_route_node.mjs)
#      doing the same routing.  Ratio target >= 10x.  Also the same cohort
#      tick loop with no journal at all (bench/orch_nojournal.c), to show what
#      the journal costs.
#  (b) LLM: 64 llmloop agents (bench/agents/llmloop.c), each a closed loop of
#      ROUNDS requests, on the 100M bench fixture (and again on the 20M demo
#      fixture): `cohort run` with max_batch 64 vs max_batch 1 (target >= 4x);
#      and the cost of tick-boundary admission vs free-running admission on
#      the engine API (bench/orch_llm_bench.c), target <= 10% loss.
#  (w) the whole process side by side: `cohort run` of (a)'s scenario, journal
#      on disk, 2 workers, timed from exec to exit (module load, 1,000
#      instantiations, the run, the last commit and close), against the Node
#      reference's whole process at 2 workers, in WHOLE_PAIRS alternating
#      rounds; with BEFORE_BIN=/path/to/cohort (e.g. a build of the commit
#      before a change) that binary joins each round, so before, after and
#      Node are measured under the same load.
#  (c) memory per agent: peak RSS (VmHWM) of `cohort run` with 1,000 and
#      10,000 echo agents minus a 10-agent baseline, divided by N; peak
#      virtual address space; and a run past the address-space ceiling
#      (16,400 agents), which must fail with a clear error.
#
# usage: bench/run_orch.sh            (after cmake --build build)
# env:   BUILD=build dir (default ./build)  REPS=2  HOPS=100  WORKERS="1 2 4"
#        ROUNDS=2 (100M)  ROUNDS2=4 (demo)  LLM_PAIRS=5  MODEL2= (skip demo)
#        MEM_N="1000 10000"  KEEP=1 keeps the work folder
#        SECTIONS="a w b c" (which parts to run)  WHOLE_PAIRS=5  BEFORE_BIN=
# Prints every measurement as it goes and a summary with the ratios at the
# end; raw results (JSON lines) stay in the work folder with KEEP=1.
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$SRC/build}
BIN=$BUILD/cohort
LLMB=$BUILD/bench/orch_llm_bench
NOJ=$BUILD/bench/orch_nojournal
PY=/usr/bin/python3
UTIL="$PY $SRC/bench/orch_util.py"
REPS=${REPS:-2}
AGENTS=${AGENTS:-1000}
HOPS=${HOPS:-100}
WORKERS=${WORKERS:-1 2 4}
CLIENTS=${CLIENTS:-64}
ROUNDS=${ROUNDS:-2}
ROUNDS2=${ROUNDS2:-4}
LLM_PAIRS=${LLM_PAIRS:-5}
MIN_TOK=${MIN_TOK:-8}
MAX_TOK=${MAX_TOK:-24}
THREADS=${THREADS:-2}
MEM_N=${MEM_N:-1000 10000}
SECTIONS=${SECTIONS:-a w b c}
WHOLE_PAIRS=${WHOLE_PAIRS:-5}
BEFORE_BIN=${BEFORE_BIN:-}
want() { case " $SECTIONS " in *" $1 "*) return 0 ;; esac; return 1; }
MEM_LIMIT_N=${MEM_LIMIT_N:-16400}   # past the address-space ceiling: expected to fail cleanly
MODEL=${MODEL-$BUILD/fixtures/llama-100m-plain}   # the bench fixture (100M)
MODEL2=${MODEL2-$BUILD/fixtures/llama-demo}        # the demo fixture (20M); empty: skip

die() { echo "run_orch.sh: $*" >&2; exit 1; }
[ -x "$BIN" ] || die "no $BIN: build first (cmake --build build -j2)"
[ -x "$LLMB" ] && [ -x "$NOJ" ] || die "no $LLMB or $NOJ: build first (cmake --build build -j2)"
command -v node >/dev/null || die "node (20) is needed for the reference"
command -v clang >/dev/null || die "clang (wasm32-wasi) is needed for the bench agents"
# the fixtures (deterministic; a folder whose stamp matches is kept)
if want b && [ ! -f "$BUILD/fixtures/llama-100m-plain/model.onnx" ]; then
  echo "generating the 100M fixture (llama-100m-plain, as in --suite bench) into $BUILD/fixtures"
  $PY "$SRC/tools/mkfixture.py" --name llama-100m-plain --layers 8 --hidden 768 --heads 12 \
    --kv-heads 4 --intermediate 2048 --vocab 32000 --context 1024 --seed 42 --attention plain \
    --dtype fp32 --layout genai --out "$BUILD/fixtures" >/dev/null
fi
if want b && [ -n "$MODEL2" ] && [ ! -f "$BUILD/fixtures/llama-demo/model.onnx" ]; then
  echo "generating the demo fixture into $BUILD/fixtures"
  $PY "$SRC/tools/mkfixture.py" --suite demo --out "$BUILD/fixtures" >/dev/null
fi

WORK=$(mktemp -d /tmp/orchbench.XXXXXX)   # on disk (/tmp is not tmpfs here)
SHM=$(mktemp -d /dev/shm/orchbench.XXXXXX)
cleanup() { rm -rf "$SHM"; [ "${KEEP:-0}" = 1 ] || rm -rf "$WORK"; }
trap cleanup EXIT
RES=$WORK/results.jsonl
CACHE=$WORK/cache
: >"$RES"
jget() { $PY -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }
sumline() { sed -n "s/^$2: //p" "$1" | head -n1; }

echo "== machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores," \
  "$(free -g | awk '/^Mem:/{print $2}') GiB RAM; load $(cut -d' ' -f1-3 /proc/loadavg); $(date -u +%FT%TZ)"
echo "== commit $(git -C "$SRC" rev-parse --short HEAD 2>/dev/null || echo '?'), work folder $WORK"

# ---- bench agents ---------------------------------------------------------
mkdir -p "$WORK/agents"
for a in pingpong llmloop; do
  clang --target=wasm32-wasi --sysroot=/usr -mexec-model=reactor -O2 -Wall -Werror \
    -I "$SRC/include" -I "$SRC/sdk" "$SRC/bench/agents/$a.c" -o "$WORK/agents/$a.wasm"
done

# ---- (a) routing ------------------------------------------------------------
ROUTE=$WORK/route.yaml
{
  echo "name: route"
  echo "seed: 1"
  echo "policy: {kind: round_robin, quantum: 1}"
  echo "stop: {max_ticks: $((HOPS + 1)), quiescence: true}"
  echo "agents:"
  echo "  - {id: p, module: $WORK/agents/pingpong.wasm, count: $AGENTS, fuel: 1000000, memory_mb: 1, inbox: 4}"
  echo "messages:"
  for ((k = 0; k < AGENTS; k++)); do
    echo "  - {from: p-$((k ^ 1)), to: p-$k, body: \"message $k from p-$((k ^ 1))\"}"
  done
} >"$ROUTE"
"$BIN" run "$ROUTE" --journal "$WORK/warm.db" --workers 1 --quiet --cache-dir "$CACHE" >/dev/null
if want a; then
echo
echo "== (a) routing: $AGENTS agents, $HOPS hops per message"
for rep in $(seq 1 "$REPS"); do
  for w in $WORKERS; do
    for loc in disk tmpfs; do
      dir=$WORK; [ $loc = tmpfs ] && dir=$SHM
      db=$dir/route-$w-$rep.db
      "$BIN" run "$ROUTE" --journal "$db" --workers "$w" --quiet --cache-dir "$CACHE" >"$WORK/out"
      st=$($UTIL journal "$db")
      steps=$(jget "$st" steps); loop=$(jget "$st" loop_seconds); wall=$(sumline "$WORK/out" wall | cut -d' ' -f1)
      rate=$(awk -v s="$steps" -v l="$loop" 'BEGIN{printf "%.1f", s / l}')
      wrate=$(awk -v s="$steps" -v l="$wall" 'BEGIN{printf "%.1f", s / l}')
      echo "$st" | $UTIL tag bench=route impl=cohort workers="$w" journal=$loc rep="$rep" agents="$AGENTS" \
        hops="$HOPS" rate="$rate" wall="$wall" wall_rate="$wrate" digest="$(sumline "$WORK/out" digest)" | tee -a "$RES"
      rm -f "$db" "$db-wal" "$db-shm"
    done
    "$NOJ" "$ROUTE" "$CACHE" "$w" | $UTIL tag bench=route impl=cohort-nojournal workers="$w" rep="$rep" |
      tee -a "$RES"
    node "$SRC/bench/orch_route_node.mjs" "$AGENTS" "$HOPS" "$w" >"$WORK/node.out"
    rate=$(jget "$(cat "$WORK/node.out")" deliveries_per_s)
    $UTIL tag bench=route impl=node rep="$rep" rate="$rate" <"$WORK/node.out" | tee -a "$RES"
  done
done
fi

# ---- (w) whole process, side by side ----------------------------------------------
if want w; then
echo
echo "== (w) whole process: $AGENTS agents x $HOPS hops, 2 workers, journal on disk;" \
  "$WHOLE_PAIRS alternating rounds${BEFORE_BIN:+ (before: $BEFORE_BIN)}"
[ -z "$BEFORE_BIN" ] || [ -x "$BEFORE_BIN" ] || die "BEFORE_BIN=$BEFORE_BIN is not executable"
[ -z "$BEFORE_BIN" ] ||
  "$BEFORE_BIN" run "$ROUTE" --journal "$WORK/warm-before.db" --workers 1 --quiet --cache-dir "$CACHE" >/dev/null
whole() { # impl, command...: one JSON line with the process's wall and CPU seconds
  local impl=$1 t0 t1 rc=0; shift
  t0=$(date +%s.%N)
  /usr/bin/time -f '%U %S' -o "$WORK/time.out" "$@" >"$WORK/whole.out" 2>&1 || rc=$?
  t1=$(date +%s.%N)
  [ $rc = 0 ] || die "$impl failed (exit $rc): $(tail -n 3 "$WORK/whole.out")"
  echo "{\"seconds\": $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.4f", b - a}'),"\
    "\"cpu_seconds\": $(awk '{printf "%.3f", $1 + $2}' "$WORK/time.out")}" |
    $UTIL tag bench=whole impl="$impl" workers=2 journal=disk agents="$AGENTS" hops="$HOPS" \
      load="$(cut -d' ' -f1 /proc/loadavg)" \
      digest="$(sed -n 's/^digest: //p' "$WORK/whole.out" | head -n1)" | tee -a "$RES"
}
for rep in $(seq 1 "$WHOLE_PAIRS"); do
  if [ -n "$BEFORE_BIN" ]; then
    whole before "$BEFORE_BIN" run "$ROUTE" --journal "$WORK/whole-b$rep.db" --workers 2 --quiet --cache-dir "$CACHE"
    rm -f "$WORK/whole-b$rep.db"*
  fi
  whole cohort "$BIN" run "$ROUTE" --journal "$WORK/whole-a$rep.db" --workers 2 --quiet --cache-dir "$CACHE"
  rm -f "$WORK/whole-a$rep.db"*
  whole node node "$SRC/bench/orch_route_node.mjs" "$AGENTS" "$HOPS" 2
done
fi

# ---- (b) LLM ----------------------------------------------------------------------
llm_yaml() { # $1 model dir, $2 max_batch, $3 rounds
  echo "name: llm$2"
  echo "seed: 3"
  echo "models:"
  echo "  - {name: m, path: $1, device: cpu, max_batch: $2, threads: $THREADS}"
  echo "policy: {kind: round_robin, quantum: 1}"
  echo "stop: {max_ticks: 100000, quiescence: true}"
  echo "agents:"
  echo "  - {id: c, module: $WORK/agents/llmloop.wasm, count: $CLIENTS,"
  echo "     config: {rounds: $3, min_tokens: $MIN_TOK, max_tokens: $MAX_TOK}}"
  echo "messages:"
  local prompts=("Once upon a time, in a quiet village by the sea," "The committee met at dawn to decide"
    "Here is a short story about a robot who" "In the year 2050 the city of")
  for ((k = 0; k < CLIENTS; k++)); do echo "  - {to: c-$k, body: \"$k ${prompts[k % 4]}\"}"; done
}
llm_suite() { # $1 model dir, $2 rounds
  local model=$1 rounds=$2 name rep mb db st tokens loop wall rate wrate
  name=$(basename "$model")
  echo
  echo "== (b) LLM: $CLIENTS agents x $rounds requests, $name, $THREADS ORT threads"
  for rep in $(seq 1 "$REPS"); do
    for mb in 64 1; do
      llm_yaml "$model" $mb "$rounds" >"$WORK/llm.yaml"
      db=$WORK/llm-$name-$mb-$rep.db
      "$BIN" run "$WORK/llm.yaml" --journal "$db" --workers 1 --quiet --cache-dir "$CACHE" >"$WORK/out"
      st=$($UTIL journal "$db")
      tokens=$(sumline "$WORK/out" llm | sed 's/.*requests, \([0-9]*\) tokens.*/\1/')
      loop=$(jget "$st" loop_seconds); wall=$(sumline "$WORK/out" wall | cut -d' ' -f1)
      rate=$(awk -v s="$tokens" -v l="$loop" 'BEGIN{printf "%.2f", s / l}')
      wrate=$(awk -v s="$tokens" -v l="$wall" 'BEGIN{printf "%.2f", s / l}')
      echo "$st" | $UTIL tag bench=llm impl=cohort model="$name" max_batch=$mb rep="$rep" clients="$CLIENTS" \
        rounds="$rounds" tokens="$tokens" threads="$THREADS" rate="$rate" wall="$wall" \
        wall_rate="$wrate" digest="$(sumline "$WORK/out" digest)" | tee -a "$RES"
      rm -f "$db" "$db-wal" "$db-shm"
    done
  done
  # the engine alone: free vs tick admission in adjacent pairs, and one
  # request at a time (free) to separate the engine's batching gain from
  # cohort's per-tick cost
  "$LLMB" "$model" --mode both --reps "$LLM_PAIRS" --clients "$CLIENTS" --rounds "$rounds" \
    --min-tokens "$MIN_TOK" --max-tokens "$MAX_TOK" --max-batch 64 --threads "$THREADS" |
    $UTIL tag bench=llm model="$name" | tee -a "$RES"
  "$LLMB" "$model" --mode free --reps 1 --clients "$CLIENTS" --rounds "$rounds" \
    --min-tokens "$MIN_TOK" --max-tokens "$MAX_TOK" --max-batch 1 --threads "$THREADS" |
    $UTIL tag bench=llm model="$name" | tee -a "$RES"
}
if want b; then
llm_suite "$MODEL" "$ROUNDS"
if [ -n "$MODEL2" ]; then llm_suite "$MODEL2" "$ROUNDS2"; fi
fi

# ---- (c) memory ---------------------------------------------------------------------
if want c; then
echo
echo "== (c) memory: echo agents"
for n in 10 $MEM_N $MEM_LIMIT_N; do
  {
    echo "name: mem$n"
    echo "seed: 1"
    echo "stop: {max_ticks: 4, quiescence: true}"
    echo "agents:"
    echo "  - {id: e, module: $BUILD/agents/echo.wasm, count: $n, inbox: 4}"
    echo "messages:"
    for ((k = 0; k < 10; k++)); do echo "  - {from: e-$(((k + 1) % n)), to: e-$k, body: \"hello $k\"}"; done
  } >"$WORK/mem$n.yaml"
  [ "$n" = 10 ] && "$BIN" run "$WORK/mem$n.yaml" --journal "$SHM/warm.db" --quiet --cache-dir "$CACHE" >/dev/null
  $UTIL mem -- "$BIN" run "$WORK/mem$n.yaml" --journal "$SHM/mem$n.db" --workers 1 --quiet \
    --cache-dir "$CACHE" 2>"$WORK/mem.err" >"$WORK/mem.out"
  why=$(grep -o "agent '[^']*': .*Cannot allocate memory" "$WORK/mem.err" | head -n 1 || true)
  $UTIL tag bench=mem agents="$n" error="$why" <"$WORK/mem.out" | tee -a "$RES"
  rm -f "$SHM/mem$n.db"*
done
fi

echo
echo "================================ summary ================================"
$UTIL summary "$RES"
