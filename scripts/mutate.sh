#!/usr/bin/env bash
# mutate.sh — the mutation score: applies each committed mutant in
# tests/mutants/ to the source, one at a time, rebuilds, runs the tests the
# mutant names, restores the source, and reports which mutants the tests
# kill and which survive.  A surviving mutant is a bug the suite would let
# through; the target is 0 survivors (docs/testing.md).
#
#   scripts/mutate.sh                 every mutant
#   scripts/mutate.sh 003 sampler     only mutants whose file name contains
#                                     one of the words (e.g. a number)
#   scripts/mutate.sh --list          list the mutants, run nothing
#   scripts/mutate.sh --no-baseline   skip the unmutated run of the tests
#   scripts/mutate.sh --new NAME 'CTEST_REGEX' TIMEOUT_S 'WHY'
#                                     turn the uncommitted diff under src/
#                                     into the next tests/mutants/NNN-NAME.patch
#                                     and restore src/ (needs a clean src/
#                                     apart from the mutation)
#
# Each mutant is a patch, tests/mutants/NNN-name.patch, whose header lines
#   # tests: CTEST_REGEX      the tests that should kill it (ctest -R)
#   # timeout: SECONDS        a run past this counts as killed by timeout
#   # why: ...                what the mutant breaks
# precede the diff (git apply skips them).  A mutant that does not apply
# or does not compile is BROKEN: reported, never skipped in silence, and it
# makes the exit status non-zero like a survivor does.
#
# The build folder (build-mutate, or $COH_MUTATE_BUILD) is reused, so each
# mutant rebuilds incrementally: gcc, Release, -DCOH_WERROR=OFF (a mutant may
# leave an unused variable behind; that must not stop it from being tested).
# The source is restored after every mutant, on error, on Ctrl-C and on
# TERM (a trap); if the script was killed with SIGKILL the next run restores
# first, from the backup it left in the build folder.  The run is CPU heavy:
# it renices itself to 10.  Exit status: 0 when every mutant was killed.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
MUT_DIR=tests/mutants
BUILD=${COH_MUTATE_BUILD:-build-mutate}
BACKUP="$BUILD/mutate-backup"
REPORT="$BUILD/mutate-report.txt"
LOGS="$BUILD/mutate-logs"
J=$(nproc)

say() { printf '[mutate] %s\n' "$*"; }
die() { printf '[mutate] error: %s\n' "$*" >&2; exit 2; }

# ---- options ---------------------------------------------------------------
LIST=0
BASELINE=1
FILTERS=()
if [ "${1:-}" = "--new" ]; then
  NEW=1
else
  NEW=0
fi
if [ $NEW -eq 0 ]; then
  for arg in "$@"; do
    case "$arg" in
      --list) LIST=1 ;;
      --no-baseline) BASELINE=0 ;;
      -h|--help) sed -n '2,33p' "$0"; exit 0 ;;
      -*) die "unknown option '$arg' (see --help)" ;;
      *) FILTERS+=("$arg") ;;
    esac
  done
fi

# ---- mutant files ------------------------------------------------------------
header() { # file key: the value of the first "# key:" line
  sed -n "s/^# $2: *//p" "$1" | head -n 1
}

# The files a patch touches (its "+++ b/..." lines).
touched() {
  sed -n 's|^+++ b/||p' "$1"
}

if [ $NEW -eq 1 ]; then
  [ $# -eq 5 ] || die "usage: --new NAME 'CTEST_REGEX' TIMEOUT_S 'WHY'"
  name=$2 regex=$3 tmo=$4 why=$5
  case "$name" in *[!a-z0-9-]*|"") die "NAME '$name': use a-z, 0-9 and -" ;; esac
  case "$tmo" in *[!0-9]*|"") die "TIMEOUT_S '$tmo' is not a number of seconds" ;; esac
  git diff --quiet -- src && die "no uncommitted change under src/ to record"
  [ -z "$(git diff --cached --name-only -- src)" ] || die "src/ has staged changes"
  mkdir -p "$MUT_DIR"
  last=$(ls "$MUT_DIR" | sed -n 's/^\([0-9][0-9][0-9]\)-.*\.patch$/\1/p' | sort | tail -n 1)
  num=$(printf '%03d' $((10#${last:-0} + 1)))
  out="$MUT_DIR/$num-$name.patch"
  { printf '# mutant: %s\n# tests: %s\n# timeout: %s\n# why: %s\n' \
      "$num-$name" "$regex" "$tmo" "$why"
    git diff -- src; } > "$out"
  git diff --name-only -- src | while read -r f; do git checkout -q -- "$f"; done
  say "wrote $out; src/ restored"
  exit 0
fi

mapfile -t ALL < <(ls "$MUT_DIR"/[0-9][0-9][0-9]-*.patch 2>/dev/null | sort)
[ ${#ALL[@]} -gt 0 ] || die "no mutants in $MUT_DIR"
MUTANTS=()
for m in "${ALL[@]}"; do
  if [ ${#FILTERS[@]} -eq 0 ]; then MUTANTS+=("$m"); continue; fi
  for f in "${FILTERS[@]}"; do
    case "$(basename "$m")" in *"$f"*) MUTANTS+=("$m"); break ;; esac
  done
done
[ ${#MUTANTS[@]} -gt 0 ] || die "no mutant matches: ${FILTERS[*]}"

# Every mutant must say which tests kill it and within what time.
for m in "${MUTANTS[@]}"; do
  [ -n "$(header "$m" tests)" ] || die "$m: no '# tests:' line"
  case "$(header "$m" timeout)" in
    *[!0-9]*|"") die "$m: '# timeout:' is not a number of seconds" ;;
  esac
  [ -n "$(touched "$m")" ] || die "$m: no '+++ b/FILE' line (not a patch?)"
done

if [ $LIST -eq 1 ]; then
  for m in "${MUTANTS[@]}"; do
    printf '%-40s %-38s %s\n' "$(basename "$m" .patch)" "$(header "$m" tests)" \
      "$(header "$m" why)"
  done
  exit 0
fi

# CPU heavy on a shared machine: run at nice 10 (or nicer).
if [ "$(nice)" -lt 10 ]; then
  exec nice -n $((10 - $(nice))) bash "$0" "$@"
fi

# ---- restore: always -----------------------------------------------------------
# $BACKUP/list names the files a mutant changed; their originals are kept
# under $BACKUP/orig/.  The copy back gets a new mtime (cp without -p), so
# the next build recompiles what the mutant had changed.
restore() {
  local f
  [ -f "$BACKUP/list" ] || return 0
  while read -r f; do
    [ -n "$f" ] || continue
    cp "$BACKUP/orig/$f" "$f"
  done < "$BACKUP/list"
  while read -r f; do
    [ -n "$f" ] || continue
    cmp -s "$BACKUP/orig/$f" "$f" || { echo "[mutate] error: could not restore $f" >&2; return 1; }
  done < "$BACKUP/list"
  rm -rf "$BACKUP"
}

TEST_PID=
on_signal() {
  trap - INT TERM
  if [ -n "$TEST_PID" ]; then
    kill -TERM "$TEST_PID" 2>/dev/null || true
    wait "$TEST_PID" 2>/dev/null || true
  fi
  restore && say "interrupted; source restored" >&2
  exit 130
}
trap on_signal INT TERM
trap restore EXIT

if [ -f "$BACKUP/list" ]; then
  say "a previous run left a mutant applied; restoring: $(tr '\n' ' ' < "$BACKUP/list")"
  restore
fi

# ---- build + tests ---------------------------------------------------------------
build() { # log file
  cmake --build "$BUILD" -j"$J" > "$1" 2>&1
}

# Runs the tests matching $1 with a wall-clock limit of $2 seconds, output to
# $3.  Returns ctest's status, or 124 when the limit was hit.  timeout(1)
# signals the whole process group (ctest and the test it runs); it runs in
# the background so that Ctrl-C reaches the trap at once.
run_tests() {
  local rc=0
  timeout --kill-after=10 "$2" \
    ctest --test-dir "$BUILD" -R "$1" -FA '.*' --no-tests=error \
          --output-on-failure -j"$J" > "$3" 2>&1 &
  TEST_PID=$!
  wait "$TEST_PID" || rc=$?
  TEST_PID=
  [ $rc -eq 137 ] && rc=124
  return $rc
}

if [ ! -f "$BUILD/CMakeCache.txt" ]; then
  say "configuring $BUILD (gcc, Release, COH_WERROR=OFF)"
  cmake -S . -B "$BUILD" -DCMAKE_C_COMPILER=gcc -DCMAKE_BUILD_TYPE=Release \
        -DCOH_WERROR=OFF > /dev/null
fi
mkdir -p "$LOGS"
say "building the unmutated tree in $BUILD"
build "$LOGS/build-base.log" || die "the unmutated tree does not build: $LOGS/build-base.log"
# The fixture models come from tools/mkfixture.py, which no mutant touches:
# generate them once, then run every mutant's tests without the fixture step.
if [ ! -d "$BUILD/fixtures" ]; then
  say "generating the fixture models"
  ctest --test-dir "$BUILD" -R '^fixtures_generate$' --output-on-failure \
    > "$LOGS/fixtures.log" 2>&1 || die "fixtures_generate failed: $LOGS/fixtures.log"
fi

# The tests a regex selects, one name a line.
tests_of() {
  ctest --test-dir "$BUILD" -N -R "$1" 2>/dev/null | sed -n 's/^ *Test *#[0-9]*: *//p'
}
# Every mutant must select at least one test (a mutant that runs nothing
# would survive for no reason).  The baseline runs the union by name: CMake's
# regular expressions allow only 9 groups, too few to join the mutants'.
NAMES=()
for m in "${MUTANTS[@]}"; do
  mapfile -t sel < <(tests_of "$(header "$m" tests)")
  [ ${#sel[@]} -gt 0 ] || die "$m: '# tests: $(header "$m" tests)' selects no test"
  NAMES+=("${sel[@]}")
done

if [ $BASELINE -eq 1 ]; then
  union="^($(printf '%s\n' "${NAMES[@]}" | sort -u | paste -sd '|'))\$"
  say "baseline: the selected tests on the unmutated tree must pass"
  rc=0
  run_tests "$union" 1800 "$LOGS/baseline.log" || rc=$?
  [ $rc -eq 0 ] || die "the unmutated tree fails its tests (status $rc): $LOGS/baseline.log"
fi

# ---- the mutants -------------------------------------------------------------------
killed=0 survived=0 broken=0
SURVIVORS=() BROKEN=()
: > "$REPORT"
report() { printf '%s\n' "$*" | tee -a "$REPORT"; }
report "mutation run $(date -u '+%Y-%m-%d %H:%M UTC') on $(uname -n), $(nproc) CPUs, $(git rev-parse --short HEAD)$(git diff --quiet -- src || echo ' + uncommitted changes')"
for m in "${MUTANTS[@]}"; do
  name=$(basename "$m" .patch)
  regex=$(header "$m" tests)
  tmo=$(header "$m" timeout)
  log="$LOGS/$name.log"
  t0=$(date +%s)
  if ! git apply --check "$m" 2> "$log"; then
    report "$(printf '%-40s BROKEN   does not apply (%s)' "$name" "$log")"
    broken=$((broken + 1)); BROKEN+=("$name"); continue
  fi
  rm -rf "$BACKUP"
  mkdir -p "$BACKUP/orig"
  touched "$m" > "$BACKUP/list.tmp"
  while read -r f; do
    mkdir -p "$BACKUP/orig/$(dirname "$f")"
    cp "$f" "$BACKUP/orig/$f"
  done < "$BACKUP/list.tmp"
  mv "$BACKUP/list.tmp" "$BACKUP/list"
  git apply "$m"
  if ! build "$log"; then
    restore
    report "$(printf '%-40s BROKEN   does not compile (%s)' "$name" "$log")"
    broken=$((broken + 1)); BROKEN+=("$name"); continue
  fi
  rc=0
  run_tests "$regex" "$tmo" "$log" || rc=$?
  restore
  dt=$(( $(date +%s) - t0 ))
  if [ $rc -eq 0 ]; then
    report "$(printf '%-40s SURVIVED %4ss  tests: %s' "$name" "$dt" "$regex")"
    survived=$((survived + 1)); SURVIVORS+=("$name")
  elif [ $rc -eq 124 ]; then
    report "$(printf '%-40s killed   %4ss  by timeout (%ss)' "$name" "$dt" "$tmo")"
    killed=$((killed + 1))
  else
    failed=$(sed -n '/tests FAILED:/,$ s/^[[:space:]]*[0-9]* - \([^ ]*\) (.*$/\1/p' "$log" | tr '\n' ' ')
    report "$(printf '%-40s killed   %4ss  by %s' "$name" "$dt" "${failed:-ctest status $rc}")"
    killed=$((killed + 1))
  fi
done

total=$((killed + survived))
report "score: $killed of $total killed, $survived survived, $broken broken (${#MUTANTS[@]} mutants)"
[ $survived -eq 0 ] || report "survivors: ${SURVIVORS[*]}"
[ $broken -eq 0 ] || report "broken: ${BROKEN[*]}"
say "report: $REPORT; per-mutant logs: $LOGS/"
[ $survived -eq 0 ] && [ $broken -eq 0 ]
