#!/usr/bin/env bash
# test.sh — build and run the whole test suite the ways CI does: a normal
# -Werror build with gcc (every test), the same with clang (every target
# built; the module test programs and the pinned digests run),
# AddressSanitizer + UBSan (every test that runs code built here),
# ThreadSanitizer (the threaded tests), and the libFuzzer harnesses for a
# fixed number of runs.  Which suite runs what, and why: docs/testing.md.
#   scripts/test.sh           all of them
#   scripts/test.sh --quick   only the normal gcc build
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
QUICK=0
[ "${1:-}" = "--quick" ] && QUICK=1
# Dependencies first (idempotent: it only checks when everything is there).
bash scripts/setup.sh --no-build
J=$(nproc)

# Free disk space, checked before anything is built.  A full disk makes
# tests fail deep inside (a fixture writer's ENOSPC, a journal that cannot
# grow), which reads like a bug in cohort.  Measured during a whole run on
# a 2-core machine (docs/testing.md, "Disk space"): each build folder takes
# up to 0.7 GB (ASan's; gcc's 0.6 GB with its fixtures), and the tests
# running at once hold up to 2.2 GB under $TMPDIR (fixtures_tool writes
# every fixture a second time).  So: 0.7 GB for each build folder not made
# yet, plus 3 GB.
need_free() { # folder, MiB, what for
  local avail
  avail=$(df -Pm "$1" | awk 'NR == 2 { print $4 }')
  if [ -n "$avail" ] && [ "$avail" -lt "$2" ]; then
    echo "test.sh: the file system of $1 has $avail MiB free; the tests' $3 take about $2 MiB there." \
      "Free some space (or point TMPDIR elsewhere for the temporary part) and run it again." >&2
    exit 1
  fi
}
TMP_DIR=${TMPDIR:-/tmp}
need_builds=0
for suite in gcc clang asan tsan; do
  [ $QUICK -eq 1 ] && [ $suite != gcc ] && continue
  [ -d "build-test-$suite" ] || need_builds=$((need_builds + 700))
done
if [ "$(stat -c %d "$TMP_DIR")" = "$(stat -c %d "$ROOT")" ]; then
  need_free "$ROOT" $((need_builds + 3072)) "build folders and temporary files"
else
  need_free "$ROOT" $((need_builds + 100)) "build folders"
  need_free "$TMP_DIR" 3072 "temporary files"
fi

# BUILD_TARGETS: what run_suite builds (empty: every target).
BUILD_TARGETS=()
run_suite() { # name, cmake args... [-- ctest args...]
  local name=$1; shift
  local cm=() ct=() tg=()
  while [ $# -gt 0 ] && [ "$1" != "--" ]; do cm+=("$1"); shift; done
  [ "${1:-}" = "--" ] && { shift; ct=("$@"); }
  local t0=$SECONDS
  [ ${#BUILD_TARGETS[@]} -gt 0 ] && tg=(--target "${BUILD_TARGETS[@]}")
  echo "=== [$name] configure + build ${BUILD_TARGETS[*]:-(all)} ==="
  cmake -S . -B "build-test-$name" -DCOH_WERROR=ON "${cm[@]}" >/dev/null
  cmake --build "build-test-$name" -j"$J" "${tg[@]}" >/dev/null
  echo "=== [$name] ctest (build took $((SECONDS - t0)) s) ==="
  t0=$SECONDS
  ctest --test-dir "build-test-$name" --output-on-failure -j"$J" "${ct[@]}"
  echo "=== [$name] passed (ctest took $((SECONDS - t0)) s) ==="
}

# gcc at -O3 (Release, what scripts/setup.sh builds) catches the most warnings
run_suite gcc -DCMAKE_C_COMPILER=gcc -DCMAKE_BUILD_TYPE=Release
if [ $QUICK -eq 0 ]; then
  # clang builds everything with -Werror (its warnings are not gcc's), but
  # runs only what a second compiler at -O2 adds: the module test programs
  # (label unit), which call each module directly, and the pinned digests
  # (label compiler).  The shell tests drive the same code through the
  # cohort binary; the ASan + UBSan suite below builds it with the same
  # clang and runs every one of them, and the gcc suite runs them optimized.
  run_suite clang -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -- -L '^(unit|compiler)$'
  # Every test except those that run only Python tools (label tool: no code
  # built here runs in them, so a sanitizer has nothing to check; the gcc
  # suite runs them).
  # Debug (assertions on) at -O1, not -O0: the sanitizers instrument the
  # same code and check the same accesses, and the code they check runs
  # about twice as fast (docs/testing.md, "Where the time goes").
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  LSAN_OPTIONS=suppressions="$ROOT/tests/lsan.supp" \
    run_suite asan -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug \
      "-DCMAKE_C_FLAGS_DEBUG=-g -O1" \
      -DCOH_SANITIZE=address,undefined -- -LE '^tool$'
  # ThreadSanitizer over everything that runs threads: the agent runtime's
  # concurrent traps, the SPSC rings, the tokenizer's concurrent encodes,
  # whole orchestrated runs (worker pool + engine threads), and the monitor
  # (server threads against a publishing thread), and the engine's grammar-mask
  # helper thread (constrained requests, batched), the prefix cache on the
  # engine thread (test_pcache, prefix_cache), the journal writer thread, and
  # `cohort serve` (HTTP threads handing requests to the serve loop, SSE
  # writers, cancellation).  Of test_tokenizer, the one case that runs
  # threads (test_tokenizer_threads, registered in TSan builds only).
  # It builds only what those tests run (the clang and ASan suites above
  # build every target): their test programs (test_tokenizer_threads runs
  # the test_tokenizer program), and for the shell tests the cohort binary
  # and the agents.
  TSAN_TESTS=(test_agent test_ring test_tokenizer_threads orch_run test_monitor
              test_engine_grammar test_pcache prefix_cache test_jwriter serve_openai)
  BUILD_TARGETS=(cohort agents)
  for t in "${TSAN_TESTS[@]}"; do
    prog=${t%_threads}
    if [ -f "tests/$prog.c" ]; then BUILD_TARGETS+=("$prog")
    elif [ ! -f "tests/$t.sh" ]; then echo "test.sh: TSan test $t is neither tests/$prog.c nor tests/$t.sh" >&2; exit 1
    fi
  done
  tsan_re=$(IFS='|'; echo "${TSAN_TESTS[*]}")
  TSAN_OPTIONS="halt_on_error=1 suppressions=$ROOT/tests/tsan.supp" \
    run_suite tsan -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug \
      -DCOH_SANITIZE=thread -- -R "^($tsan_re)\$"
  BUILD_TARGETS=()
  # Every fuzz target: its regression inputs, then the seed corpus plus
  # generated inputs up to a fixed number of runs with a fixed seed (long
  # runs: scripts/fuzz.sh TARGET SECONDS; figures in docs/reliability.md).
  t0=$SECONDS
  bash scripts/fuzz.sh --runs "${COH_FUZZ_RUNS:-2000}" all
  echo "=== [fuzz] passed (build and runs took $((SECONDS - t0)) s) ==="
fi
echo "=== all test suites passed in $SECONDS s ==="
