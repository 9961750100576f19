#!/usr/bin/env bash
# stress-tests.sh [N] [-- TEST ARGS...] — runs the whole test command
# (`bash scripts/test.sh`, or what follows --) N times (default 5) while
# `stress-ng --cpu 2` keeps two cores busy, and reports pass/fail per round.
# A test that passes only on an idle machine depends on timing, which is a
# bug (tests/README.md); this is how such a test is caught.  Exit 0 only if
# every round passed.  Each round's output is kept in
# build-stress/round-K.log.
#   scripts/stress-tests.sh                  5 rounds of scripts/test.sh
#   scripts/stress-tests.sh 10 -- bash scripts/test.sh --quick
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
N=5
if [ $# -gt 0 ] && [ "$1" != "--" ]; then N=$1; shift; fi
case "$N" in '' | *[!0-9]* | 0) echo "stress-tests.sh: N must be a positive integer, got '$N'" >&2; exit 2 ;; esac
CMD=(bash scripts/test.sh)
if [ "${1:-}" = "--" ]; then
  shift
  [ $# -gt 0 ] && CMD=("$@")
fi
if ! command -v stress-ng >/dev/null 2>&1; then
  echo "stress-tests.sh: stress-ng is missing (Debian package stress-ng; scripts/setup.sh installs it)" >&2
  exit 1
fi

LOGS="$ROOT/build-stress"
mkdir -p "$LOGS"
stress_pid=""
stop_stress() {
  if [ -n "$stress_pid" ]; then
    kill -TERM "$stress_pid" 2>/dev/null
    wait "$stress_pid" 2>/dev/null
    stress_pid=""
  fi
}
trap stop_stress EXIT
trap 'stop_stress; exit 130' INT
trap 'stop_stress; exit 143' TERM

# the load: two CPU hogs for as long as the rounds last
stress-ng --cpu 2 --quiet &
stress_pid=$!
kill -0 "$stress_pid" 2>/dev/null || { echo "stress-tests.sh: stress-ng did not start" >&2; exit 1; }

passed=0
results=()
for k in $(seq 1 "$N"); do
  start=$SECONDS
  echo "=== round $k/$N: ${CMD[*]} (under stress-ng --cpu 2) ==="
  if "${CMD[@]}" >"$LOGS/round-$k.log" 2>&1; then
    r="round $k: PASS ($((SECONDS - start)) s)"
    passed=$((passed + 1))
  else
    r="round $k: FAIL ($((SECONDS - start)) s; $LOGS/round-$k.log)"
    grep -E "FAIL|Failed|failed" "$LOGS/round-$k.log" | head -20 | sed 's/^/    /'
  fi
  echo "$r"
  results+=("$r")
done
stop_stress

echo "=== stress summary: $passed/$N rounds passed ==="
printf '%s\n' "${results[@]}"
[ "$passed" -eq "$N" ]
