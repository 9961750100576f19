#!/usr/bin/env bash
# stress-tests.sh [N] [--restart] [-- TEST ARGS...] — runs the whole test
# command (`bash scripts/test.sh`, or what follows --) N times (default 5)
# while `stress-ng --cpu 2` keeps two cores busy, and reports pass/fail per
# round.  A test that passes only on an idle machine depends on timing, which
# is a bug (tests/README.md); this is how such a test is caught.  Exit 0 only
# if N rounds on this commit passed and none failed.
#
# A round of the whole test command takes about an hour under this load on a
# 2-core machine, so N rounds can outlast a working session.  The script
# therefore keeps a record per commit (build-stress/record-COMMIT.txt, one
# line per finished round) and, run again on the same commit, continues after
# the rounds already recorded instead of starting over.  The record counts
# only for a clean work tree (untracked or changed tracked files would make
# the rounds test something other than COMMIT); a dirty tree runs N rounds
# without a record.  A failed round stays in the record: the commit has
# failed, and later passes do not wash it out.  --restart discards the
# record.  A round cut off midway (the session ended, Ctrl-C) is not
# recorded and is run again.  Each round's output is kept in
# build-stress/round-COMMIT-K.log.
#   scripts/stress-tests.sh                  5 rounds of scripts/test.sh
#   scripts/stress-tests.sh 10 -- bash scripts/test.sh --quick
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
N=5
RESTART=0
if [ $# -gt 0 ] && [ "$1" != "--" ] && [ "$1" != "--restart" ]; then N=$1; shift; fi
case "$N" in '' | *[!0-9]* | 0) echo "stress-tests.sh: N must be a positive integer, got '$N'" >&2; exit 2 ;; esac
if [ "${1:-}" = "--restart" ]; then RESTART=1; shift; fi
CMD=(bash scripts/test.sh)
if [ "${1:-}" = "--" ]; then
  shift
  [ $# -gt 0 ] && CMD=("$@")
elif [ $# -gt 0 ]; then
  echo "stress-tests.sh: unexpected argument '$1' (usage: stress-tests.sh [N] [--restart] [-- CMD...])" >&2
  exit 2
fi
if ! command -v stress-ng >/dev/null 2>&1; then
  echo "stress-tests.sh: stress-ng is missing (Debian package stress-ng; scripts/setup.sh installs it)" >&2
  exit 1
fi

LOGS="$ROOT/build-stress"
mkdir -p "$LOGS"
COMMIT=$(git rev-parse --short=12 HEAD 2>/dev/null || echo nogit)
# The record is keyed by commit and by the command, so `-- test.sh --quick`
# rounds never count as rounds of the whole test command.
CMD_KEY=$(printf '%s\n' "${CMD[@]}" | sha256sum | cut -c1-8)
RECORD=""
if [ "$COMMIT" != nogit ] && [ -z "$(git status --porcelain --untracked-files=normal 2>/dev/null)" ]; then
  RECORD="$LOGS/record-$COMMIT-$CMD_KEY.txt"
  [ $RESTART -eq 1 ] && rm -f "$RECORD"
else
  echo "stress-tests.sh: work tree is not a clean checkout of a commit; running $N rounds without a record"
fi

# Rounds already recorded for this commit and command.
done_rounds=0
failed_rounds=0
if [ -n "$RECORD" ] && [ -f "$RECORD" ]; then
  done_rounds=$(grep -c '^round ' "$RECORD" || true)
  failed_rounds=$(grep -c '^round .*: FAIL' "$RECORD" || true)
  echo "stress-tests.sh: $done_rounds round(s) already recorded for $COMMIT ($RECORD), $failed_rounds failed"
  sed 's/^/    /' "$RECORD"
fi
if [ "$failed_rounds" -gt 0 ]; then
  echo "=== stress summary: commit $COMMIT has a failed round; fix it, or rerun with --restart ==="
  exit 1
fi

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

if [ "$done_rounds" -lt "$N" ]; then
  # the load: two CPU hogs for as long as the rounds last
  stress-ng --cpu 2 --quiet &
  stress_pid=$!
  kill -0 "$stress_pid" 2>/dev/null || { echo "stress-tests.sh: stress-ng did not start" >&2; exit 1; }
fi

passed=$done_rounds
for k in $(seq $((done_rounds + 1)) "$N"); do
  start=$SECONDS
  log="$LOGS/round-$COMMIT-$k.log"
  echo "=== round $k/$N on $COMMIT: ${CMD[*]} (under stress-ng --cpu 2) ==="
  if "${CMD[@]}" >"$log" 2>&1; then
    r="round $k: PASS ($((SECONDS - start)) s, $(date -u +%FT%TZ))"
    passed=$((passed + 1))
  else
    r="round $k: FAIL ($((SECONDS - start)) s, $(date -u +%FT%TZ); $log)"
    grep -E "FAIL|Failed|failed" "$log" | head -20 | sed 's/^/    /'
  fi
  echo "$r"
  [ -n "$RECORD" ] && echo "$r" >>"$RECORD"
  case "$r" in *FAIL*) break ;; esac
done
stop_stress

echo "=== stress summary: $passed/$N rounds passed on $COMMIT ==="
[ -n "$RECORD" ] && sed 's/^/    /' "$RECORD"
[ "$passed" -eq "$N" ]
