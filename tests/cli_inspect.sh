#!/usr/bin/env bash
# cli_inspect.sh — `cohort inspect` on a sample journal written by
# `test_journal --write-sample`: the transcript, filters, --json (checked
# with Python's json module), --verify (good and tampered), and its error
# exits (2 for usage, 1 for missing or malformed files).
set -euo pipefail
: "${COH_BIN:?}" "${COH_BUILD_DIR:?}"
PY=${COH_PYTHON:-/usr/bin/python3}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

DB="$TMP/run.db"
digest=$("$COH_BUILD_DIR/tests/test_journal" --write-sample "$DB")
[[ $digest =~ ^[0-9a-f]{64}$ ]] || fail "sample digest '$digest'"

# expect CODE CMD...: runs CMD, checks its exit code, keeps stdout/stderr
expect() {
  local want=$1; shift
  set +e
  "$@" >"$TMP/out" 2>"$TMP/err"
  local got=$?
  set -e
  [ "$got" -eq "$want" ] || { cat "$TMP/err" >&2; fail "exit $got (want $want): $*"; }
}

# --- the transcript ---------------------------------------------------------
expect 0 "$COH_BIN" inspect "$DB"
[ "$(grep -vc '^#' "$TMP/out")" -eq 10 ] || fail "want 10 event lines"
grep -Eq '^ +0 +1  message +scenario -> alice  Debate: is C11 enough\?$' "$TMP/out" ||
  fail "first message line: $(head -1 "$TMP/out")"
grep -Fq 'emit        alice  alice: yes, with care\nsecond line' "$TMP/out" ||
  fail "emit with escaped newline"
grep -Fq 'bob: no — we need "atomics"' "$TMP/out" || fail "UTF-8 emit"
grep -Fq '<11 bytes: 00 01 02 ff 20 62 69 6e 61 72 79>' "$TMP/out" || fail "binary payload"
grep -Fq 'log         bob  (empty)' "$TMP/out" || fail "empty payload"
grep -Fq '... (+440 bytes)' "$TMP/out" || fail "long payload truncated"
grep -Fxq '# 10 of 10 events shown; last tick 4' "$TMP/out" || fail "footer"

# --- filters ------------------------------------------------------------------
seqs() { awk '!/^#/ {print $2}' "$TMP/out" | tr '\n' ' '; }
expect 0 "$COH_BIN" inspect "$DB" --agent bob
[ "$(seqs)" = "2 5 7 8 10 " ] || fail "--agent bob: $(seqs)"
expect 0 "$COH_BIN" inspect "$DB" --tick 1..2
[ "$(seqs)" = "3 4 5 6 7 " ] || fail "--tick 1..2: $(seqs)"
expect 0 "$COH_BIN" inspect "$DB" --tick 3..
[ "$(seqs)" = "8 9 10 " ] || fail "--tick 3..: $(seqs)"
expect 0 "$COH_BIN" inspect "$DB" --tick ..0
[ "$(seqs)" = "1 2 " ] || fail "--tick ..0: $(seqs)"
expect 0 "$COH_BIN" inspect "$DB" --tick 2 --agent alice
[ "$(seqs)" = "6 " ] || fail "--tick 2 --agent alice: $(seqs)"
expect 0 "$COH_BIN" inspect "$DB" --tick 9..12
[ "$(seqs)" = "" ] || fail "--tick 9..12: $(seqs)"

# --- JSON lines ---------------------------------------------------------------
expect 0 "$COH_BIN" inspect "$DB" --json
"$PY" - "$TMP/out" "$digest" <<'PYEOF' || fail "--json output"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8")]
assert len(rows) == 10, len(rows)
assert [r["seq"] for r in rows] == list(range(1, 11))
assert rows[0] == {**rows[0], "tick": 0, "kind": "message", "source": "scenario",
                   "target": "alice", "payload": "Debate: is C11 enough?"}, rows[0]
assert rows[2]["payload"] == "alice: yes, with care\nsecond line"
assert rows[5]["payload_hex"] == "000102ff2062696e617279", rows[5]
assert "payload" not in rows[5]
assert rows[6]["payload"] == 'bob: no \u2014 we need "atomics"'
assert len(rows[9]["payload"]) == 600 and rows[9]["payload_len"] == 600
# the digest is the chain after the last tick record, which follows the last
# tick's events record (and the tick's checkpoint), so it is none of the
# events' chains; an event's chain is its tick's events record (since format 4),
# one per tick, shared by the tick's events
assert sys.argv[2] not in {r["chain"] for r in rows}
assert all(len(r["chain"]) == 64 for r in rows)
by_tick = {}
for r in rows:
    by_tick.setdefault(r["tick"], set()).add(r["chain"])
assert all(len(c) == 1 for c in by_tick.values()), by_tick
assert len({r["chain"] for r in rows}) == len(by_tick) == 5
PYEOF
expect 0 "$COH_BIN" inspect "$DB" --json --agent alice --tick 1..1
"$PY" -c 'import json,sys
rows=[json.loads(l) for l in open(sys.argv[1])]
assert [r["seq"] for r in rows]==[3,4,5], rows' "$TMP/out" || fail "--json filtered"

# --- verify -------------------------------------------------------------------
expect 0 "$COH_BIN" inspect "$DB" --verify
grep -Fxq "digest: $digest" "$TMP/out" || fail "--verify digest: $(cat "$TMP/out")"
grep -Fxq "verified: 10 events, last tick 4" "$TMP/out" || fail "--verify summary"
expect 0 "$COH_BIN" inspect "$DB" --verify --json
"$PY" -c 'import json,sys
o=json.load(open(sys.argv[1])); assert o["verified"] and o["digest"]==sys.argv[2] and o["events"]==10' \
  "$TMP/out" "$digest" || fail "--verify --json"
# tamper with one payload through SQLite itself (Python's sqlite3 module)
cp "$DB" "$TMP/bad.db"
"$PY" -c 'import sqlite3,sys; sys.path.insert(0, sys.argv[2]); import journal_rechain as jr
c=sqlite3.connect(sys.argv[1]); jr.set_event_payload(c, 5, b"your turn!"); c.commit()' \
  "$TMP/bad.db" "$COH_SOURCE_DIR/tests"
expect 1 "$COH_BIN" inspect "$TMP/bad.db" --verify
grep -q "verify failed at table ticks, tick 1 (events, seqs [0-9]*\.\.[0-9]*)" "$TMP/err" || fail "tampered: $(cat "$TMP/err")"
# every mode verifies first: nothing of a tampered journal is shown
expect 1 "$COH_BIN" inspect "$TMP/bad.db" --tick 1
grep -q "verify failed at table ticks, tick 1 (events, seqs [0-9]*\.\.[0-9]*)" "$TMP/err" || fail "tampered transcript: $(cat "$TMP/err")"
[ ! -s "$TMP/out" ] || fail "tampered transcript printed: $(cat "$TMP/out")"
expect 1 "$COH_BIN" inspect "$TMP/bad.db" --digest
[ ! -s "$TMP/out" ] || fail "tampered --digest printed: $(cat "$TMP/out")"
# --digest: the digest alone, one line
expect 0 "$COH_BIN" inspect "$DB" --digest
[ "$(cat "$TMP/out")" = "$digest" ] || fail "--digest: $(cat "$TMP/out")"
expect 2 "$COH_BIN" inspect "$DB" --digest --verify

# --- usage errors: exit 2 -----------------------------------------------------
expect 2 "$COH_BIN" inspect
expect 2 "$COH_BIN" inspect "$DB" --tick
expect 2 "$COH_BIN" inspect "$DB" --tick 3..1
expect 2 "$COH_BIN" inspect "$DB" --tick ..
expect 2 "$COH_BIN" inspect "$DB" --tick a..b
expect 2 "$COH_BIN" inspect "$DB" --tick -1
expect 2 "$COH_BIN" inspect "$DB" --tick 1...3
grep -q "tick" "$TMP/err" || fail "--tick usage message"
expect 2 "$COH_BIN" inspect "$DB" --agent
expect 2 "$COH_BIN" inspect "$DB" --bogus
expect 2 "$COH_BIN" inspect "$DB" "$DB"
expect 2 "$COH_BIN" inspect "$DB" --verify --agent bob
[ "$(wc -l <"$TMP/err")" -eq 1 ] || fail "usage error is one line"
expect 0 "$COH_BIN" inspect --help
grep -q "usage: cohort inspect" "$TMP/out" || fail "--help"

# --- runtime errors: exit 1 with the message ----------------------------------
expect 1 "$COH_BIN" inspect "$TMP/nope.db"
grep -q "nope.db: no such file" "$TMP/err" || fail "missing: $(cat "$TMP/err")"
head -c 5000 /dev/urandom >"$TMP/junk.db"
expect 1 "$COH_BIN" inspect "$TMP/junk.db"
grep -q "not a SQLite file" "$TMP/err" || fail "junk: $(cat "$TMP/err")"
: >"$TMP/empty.db"
expect 1 "$COH_BIN" inspect "$TMP/empty.db" --verify
grep -q "empty file" "$TMP/err" || fail "empty: $(cat "$TMP/err")"
"$PY" -c 'import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute("create table t(x)"); c.commit()' \
  "$TMP/other.db"
expect 1 "$COH_BIN" inspect "$TMP/other.db"
grep -q "not a cohort journal" "$TMP/err" || fail "other: $(cat "$TMP/err")"
echo "cli_inspect: ok"
