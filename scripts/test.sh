#!/usr/bin/env bash
# test.sh — build and run the whole test suite the ways CI does: a normal
# -Werror build with gcc, the same with clang, and AddressSanitizer + UBSan.
#   scripts/test.sh           all three
#   scripts/test.sh --quick   only the normal gcc build
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
QUICK=0
[ "${1:-}" = "--quick" ] && QUICK=1
[ -f third_party/onnxruntime/lib/libonnxruntime.so.1 ] || bash scripts/setup.sh --no-build
J=$(nproc)

run_suite() { # name, cmake args...
  local name=$1; shift
  echo "=== [$name] configure + build ==="
  cmake -S . -B "build-test-$name" -DCOH_WERROR=ON "$@" >/dev/null
  cmake --build "build-test-$name" -j"$J" >/dev/null
  echo "=== [$name] ctest ==="
  ctest --test-dir "build-test-$name" --output-on-failure -j"$J"
}

run_suite gcc -DCMAKE_C_COMPILER=gcc -DCMAKE_BUILD_TYPE=RelWithDebInfo
if [ $QUICK -eq 0 ]; then
  run_suite clang -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  LSAN_OPTIONS=suppressions="$ROOT/tests/lsan.supp" \
    run_suite asan -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug \
      -DCOH_SANITIZE=address,undefined
  # ThreadSanitizer over the threaded agent runtime tests
  echo "=== [tsan] configure + build ==="
  cmake -S . -B build-test-tsan -DCOH_WERROR=ON -DCMAKE_C_COMPILER=clang \
    -DCMAKE_BUILD_TYPE=Debug -DCOH_SANITIZE=thread >/dev/null
  cmake --build build-test-tsan -j"$J" >/dev/null
  echo "=== [tsan] agent tests ==="
  (cd build-test-tsan && TSAN_OPTIONS=halt_on_error=1 COH_BUILD_DIR=$PWD \
    ./tests/test_agent)
fi
echo "=== all test suites passed ==="
