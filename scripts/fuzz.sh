#!/usr/bin/env bash
# fuzz.sh — build the libFuzzer harnesses (tests/fuzz, clang) in their own
# build folder and run them.
#   scripts/fuzz.sh [TARGET|all] [SECONDS]   fuzz each target SECONDS (default
#                                            60); new inputs go to
#                                            build-fuzz/corpus/TARGET
#   scripts/fuzz.sh --runs N [TARGET|all]    what the test command does: replay
#                                            the regression inputs, then the
#                                            seed corpus plus generated inputs
#                                            up to N runs (fixed seed), per
#                                            target
# Targets: tokenizer scenario journal wasm llm_request monitor chat
# grammar_schema grammar_ebnf serve.
# A crash leaves its input in build-fuzz/artifacts/TARGET/; once the bug is
# fixed, commit the input as tests/fuzz/regressions/TARGET/NAME-what-it-broke
# (replayed by every --runs). Environment: COH_FUZZ_BUILD (default build-fuzz),
# COH_FUZZ_JOBS (build jobs, default nproc).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
TARGETS=(tokenizer scenario journal wasm llm_request monitor chat grammar_schema grammar_ebnf
         serve)
RUNS=0
if [ "${1:-}" = "--runs" ]; then
  RUNS=${2:?--runs needs a number}
  shift 2
fi
WHICH=${1:-all}
SECONDS_EACH=${2:-60}
case "$RUNS$SECONDS_EACH" in *[!0-9]*)
  echo "fuzz.sh: --runs and SECONDS must be whole numbers" >&2; exit 2;; esac
if [ "$WHICH" = all ]; then
  SEL=("${TARGETS[@]}")
else
  ok=0
  for t in "${TARGETS[@]}"; do [ "$t" = "$WHICH" ] && ok=1; done
  if [ $ok -eq 0 ]; then
    echo "fuzz.sh: unknown target '$WHICH' (one of: ${TARGETS[*]} all)" >&2
    exit 2
  fi
  SEL=("$WHICH")
fi
B=${COH_FUZZ_BUILD:-build-fuzz}
J=${COH_FUZZ_JOBS:-$(nproc)}
echo "=== [fuzz] configure + build (${SEL[*]}) in $B ==="
cmake -S . -B "$B" -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Release \
  -DCOH_WERROR=ON -DCOH_FUZZ=ON >/dev/null
cmake --build "$B" -j"$J" --target "${SEL[@]/#/fuzz_}" >/dev/null

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$ROOT/tests/lsan.supp}
fail=0
for t in "${SEL[@]}"; do
  bin="$B/tests/fuzz/fuzz_$t"
  seeds="tests/fuzz/corpus/$t"
  regs="tests/fuzz/regressions/$t"
  work="$B/corpus/$t"
  arts="$B/artifacts/$t"
  mkdir -p "$work" "$arts"
  opts=(-artifact_prefix="$arts/" -timeout=60 -rss_limit_mb=2048
        -print_final_stats=1)
  [ -f "tests/fuzz/$t.dict" ] && opts+=(-dict="tests/fuzz/$t.dict")
  if [ -d "$regs" ] && [ -n "$(ls -A "$regs")" ]; then
    echo "=== [fuzz] $t: regression inputs ==="
    # each file runs once; any crash or property failure fails the step
    if ! "$bin" "${opts[@]}" "$regs"/* >"$arts/regressions.log" 2>&1; then
      tail -n 40 "$arts/regressions.log"
      echo "fuzz.sh: $t: a regression input fails again" >&2
      fail=1
      continue
    fi
  fi
  if [ "$RUNS" -gt 0 ]; then
    echo "=== [fuzz] $t: seeds + generated inputs, $RUNS runs ==="
    # an empty scratch corpus: only the committed seeds and what this run
    # generates, so the result does not depend on earlier runs
    rm -rf "$work.runs" && mkdir -p "$work.runs"
    log="$arts/runs.log"
    if ! "$bin" "${opts[@]}" -seed=1 -runs="$RUNS" "$work.runs" "$seeds" \
         >"$log" 2>&1; then
      tail -n 60 "$log"
      echo "fuzz.sh: $t failed; the input is in $arts/" >&2
      fail=1
    else
      grep -E "^stat::number_of_executed_units|^stat::peak_rss_mb" "$log" |
        tr '\n' ' '
      echo
    fi
    rm -rf "$work.runs"
  else
    echo "=== [fuzz] $t: ${SECONDS_EACH}s (log: $arts/fuzz.log) ==="
    log="$arts/fuzz.log"
    if ! "$bin" "${opts[@]}" -max_total_time="$SECONDS_EACH" "$work" "$seeds" \
         >"$log" 2>&1; then
      tail -n 60 "$log"
      echo "fuzz.sh: $t found a failure; the input is in $arts/" >&2
      fail=1
    fi
    grep -E "^#[0-9]+.*(DONE|pulse|NEW|REDUCE)" "$log" | tail -n 1 || true
    grep -E "^stat::" "$log" || true
    echo "corpus: $(ls "$work" | wc -l) files in $work"
  fi
done
if [ $fail -ne 0 ]; then exit 1; fi
echo "=== [fuzz] ${SEL[*]}: no failures ==="
