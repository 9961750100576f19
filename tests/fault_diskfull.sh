#!/usr/bin/env bash
# fault_diskfull.sh — disk full under a running journal (issue 9, part 6).
# A run whose journal lies on a size-limited tmpfs must end with a clear
# error (non-zero exit, the message names the journal and says the disk is
# full) after committing some ticks; `cohort inspect --verify` must accept
# the journal; after the tmpfs is given room (remount with a larger size),
# `cohort resume` must reach the uninterrupted run's digest, and the resumed
# journal must verify.
#
# The tmpfs is mounted in a private mount namespace (unshare --mount; as a
# non-root user with --user --map-root-user), so nothing is left mounted if
# the test dies.  Where neither works (no CAP_SYS_ADMIN, user namespaces
# off), the test FAILS saying so: a skipped disk-full test is not a pass.
set -u
BIN=${COH_BIN:?} BUILD=${COH_BUILD_DIR:?}
A="$BUILD/agents"
CACHE="$BUILD/test-module-cache"
# A journal of this scenario peaks well above SIZE (checked below), and its
# creation (genesis, modules: 0.4 MB with the WAL index) fits well below it.
# The first group commit must fit too, whatever the timing: the journal
# writer (cohort/jwriter.h) puts every tick queued so far into one
# transaction, up to 64 ticks and about 1 MiB (plus the tick that crosses
# it), and a loaded machine can queue that many before the first commit.
# This scenario's largest tick is a checkpoint tick of 0.23 MB (1.2 MB with
# whole-memory checkpoints), so the first group is at most 2.3 MB: with
# SIZE at 4 MiB some ticks are always committed before the disk fills.
# (At 640 KiB, a writer that lagged by 21 ticks put the first checkpoint
# tick into the first group, and the run failed before committing any.)
SIZE_KB=4096

if [ "${1:-}" != "--inner" ]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  if [ "$(id -u)" = 0 ]; then ns=(unshare --mount); else ns=(unshare --user --map-root-user --mount); fi
  if ! "${ns[@]}" true 2>"$tmp/unshare.err"; then
    echo "FAIL: cannot create a private mount namespace for the size-limited tmpfs" \
         "(${ns[*]}: $(cat "$tmp/unshare.err")); this test needs root with CAP_SYS_ADMIN" \
         "or unprivileged user namespaces (CI runs it as root)"
    exit 1
  fi
  TMPD="$tmp" "${ns[@]}" bash "${BASH_SOURCE[0]}" --inner
  exit $?
fi

# ---- inside the private mount namespace ----------------------------------
tmp=${TMPD:?}
fails=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL: $*"; fails=$((fails+1)); }
digest_of() { tail -n 1 "$1" | sed -n 's/^digest: //p'; }

cat >"$tmp/full.yaml" <<YAML
name: full
seed: 4
stop: {max_ticks: 1000, quiescence: true}
checkpoint_every: 20
agents:
  - {id: node, module: $A/echo.wasm, count: 8, inbox: 8}
  - {id: c, module: $A/chatter.wasm}
messages:
$(for k in 0 1 2 3; do echo "  - {from: node-$((2*k+1)), to: node-$((2*k)), body: \"ping $k $(printf 'x%.0s' $(seq 1 200))\"}"; done)
  - {to: c, body: "timer 30"}
YAML

# The uninterrupted reference, on a disk with room.
"$BIN" run "$tmp/full.yaml" --journal "$tmp/ref.db" --cache-dir "$CACHE" --quiet >"$tmp/ref.out" 2>&1 ||
  bad "reference run failed: $(cat "$tmp/ref.out")"
dref=$(digest_of "$tmp/ref.out")
ref_kb=$(( ($(stat -c %s "$tmp/ref.db") + 1023) / 1024 ))
[ -n "$dref" ] && [ "$ref_kb" -gt $((2 * SIZE_KB)) ] &&
  ok "reference run: digest $dref, journal ${ref_kb} KiB (> 2 x the ${SIZE_KB} KiB tmpfs)" ||
  bad "reference run: digest '$dref', journal ${ref_kb} KiB: not larger than 2 x ${SIZE_KB} KiB"

mkdir "$tmp/full"
if ! mount -t tmpfs -o size=${SIZE_KB}k tmpfs "$tmp/full" 2>"$tmp/mount.err"; then
  bad "cannot mount a ${SIZE_KB} KiB tmpfs: $(cat "$tmp/mount.err")"
  exit 1
fi
J="$tmp/full/run.db"
"$BIN" run "$tmp/full.yaml" --journal "$J" --cache-dir "$CACHE" --quiet >"$tmp/run.out" 2>"$tmp/run.err"
rc=$?
if [ $rc != 0 ] && grep -q "journal $J" "$tmp/run.err" && grep -qi "full" "$tmp/run.err"; then
  ok "run on a full disk: exit $rc, $(head -n 1 "$tmp/run.err")"
else
  bad "run on a full disk: exit $rc, stderr: $(cat "$tmp/run.err")"
fi
ticks=$(/usr/bin/python3 -c "
import sqlite3, sys
c = sqlite3.connect('file:' + sys.argv[1] + '?mode=ro', uri=True)
print(c.execute('select count(*) from ticks').fetchone()[0])" "$J" 2>&1)
[ "$ticks" -gt 0 ] 2>/dev/null && ok "the disk filled mid-run, after $ticks committed ticks" ||
  bad "no committed tick before the disk filled ($ticks): the test does not exercise a run"
"$BIN" inspect "$J" --verify >"$tmp/v1" 2>&1 && ok "the journal on the full disk verifies" ||
  bad "verify after disk full: $(cat "$tmp/v1")"

# Room again: the same tmpfs, larger; resume in place.
mount -o remount,size=64m "$tmp/full" || bad "cannot remount the tmpfs larger"
"$BIN" resume "$J" --cache-dir "$CACHE" --quiet >"$tmp/res.out" 2>&1
rc=$?
d=$(digest_of "$tmp/res.out")
[ $rc = 0 ] && [ "$d" = "$dref" ] && ok "resume with room reaches the uninterrupted digest" ||
  bad "resume: exit $rc, digest '$d' (want $dref): $(cat "$tmp/res.out")"
"$BIN" inspect "$J" --verify >"$tmp/v2" 2>&1 && ok "the resumed journal verifies" ||
  bad "verify after resume: $(cat "$tmp/v2")"
umount "$tmp/full"

[ $fails = 0 ] && echo "fault_diskfull: all passed" || echo "fault_diskfull: $fails failures"
[ $fails = 0 ]
