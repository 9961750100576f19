#!/usr/bin/env bash
# journal_trust.sh — a journal is a self-contained, tamper-evident record
# (issue 9, docs/journal.md):
#  - it replays from any directory, and after its module files are gone
#    (modules are stored in it); models are checked by hash, and a changed
#    model file is named;
#  - replay (also --no-model) and inspect verify the whole chain first,
#    resume what it reads (the genesis, the blobs, and the chain from the
#    checkpoint it restores on; the whole chain of a run marked complete),
#    and they refuse a journal that fails, exit 1, naming the first bad
#    record: a killed run with a tick row after its last checkpoint
#    deleted, a complete run with flipped bytes, an edited scenario text
#    (seed 1 -> 91), an edited checkpoint;
#  - a resume does not read the ticks before the checkpoint it restores
#    (its cost is bounded by what follows the checkpoint): an event flipped
#    there does not change what it re-executes nor its digest, and
#    `inspect --verify` still rejects the journal afterwards (not
#    laundered);
#  - what a chain cannot show: a journal its owner rebuilt (re-chained)
#    verifies, but its digest differs from the original's
#    (`inspect --digest`) and replay finds the divergence.
set -u
BIN=${COH_BIN:?} BUILD=${COH_BUILD_DIR:?} FIX=${COH_FIXTURES:?} SRC=${COH_SOURCE_DIR:?}
PY=${COH_PYTHON:-/usr/bin/python3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
CACHE="$BUILD/test-module-cache"
fails=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL: $*"; fails=$((fails+1)); }
digest_of() { tail -n 1 "$1" | sed -n 's/^digest: //p'; }
# expect CODE NAME CMD...: runs CMD, checks its exit code; stdout in
# $tmp/out, stdout and stderr in $tmp/all (a sanitizer build may add lines
# to stderr, so values are read from stdout only)
expect() {
  local want=$1 name=$2; shift 2
  "$@" >"$tmp/out" 2>"$tmp/err"
  local got=$?
  cat "$tmp/out" "$tmp/err" >"$tmp/all"
  if [ $got = "$want" ]; then return 0; fi
  bad "$name: exit $got (want $want)"; sed 's/^/     /' "$tmp/all" | tail -5
  return 1
}
sql() { "$PY" -c 'import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.executescript(sys.argv[2]); c.commit()' "$@"; }

# A project laid out as a user would: scenario, modules and model in their
# own folders, every path in the scenario relative.
P="$tmp/proj"
mkdir -p "$P/scn" "$P/mods" "$P/models" "$tmp/elsewhere"
cp "$BUILD/agents/chatter.wasm" "$BUILD/agents/echo.wasm" "$P/mods/"
cp -r "$FIX/llama-tiny-plain-fp32" "$P/models/tiny"
cat >"$P/scn/trust.yaml" <<YAML
name: trust
seed: 1
models:
  - {name: tiny, path: ../models/tiny, device: cpu, max_batch: 2, threads: 1}
stop: {max_ticks: 40, quiescence: true}
checkpoint_every: 3
agents:
  - {id: talker, module: ../mods/chatter.wasm}
  - {id: node, module: ../mods/echo.wasm, count: 4, inbox: 8}
messages:
  - {to: talker, body: "llm Once upon a time"}
  - {from: node-1, to: node-0, body: "ping"}
  - {from: node-3, to: node-2, body: "pong"}
YAML
(cd "$P" && "$BIN" run scn/trust.yaml --journal run.db --cache-dir "$CACHE" --quiet) >"$tmp/run.out" 2>"$tmp/run.err" ||
  { bad "run: $(tail -3 "$tmp/run.err")"; echo "$fails failures"; exit 1; }
D=$(digest_of "$tmp/run.out")
J="$P/run.db"
[ -n "$D" ] && ok "run from the project folder ($D)" || bad "no digest"

# 1. the digest, alone, for comparison with a copy kept elsewhere
expect 0 "inspect --digest" "$BIN" inspect "$J" --digest &&
  { [ "$(cat "$tmp/out")" = "$D" ] && ok "inspect --digest prints only the run digest" ||
    bad "inspect --digest printed '$(cat "$tmp/out")'"; }
expect 2 "inspect --digest --json" "$BIN" inspect "$J" --digest --json && ok "--digest takes no other mode"

# 2. the journal needs no file but the models, and no particular directory
cp "$J" "$tmp/elsewhere/copy.db"
rm -rf "$P/mods"
(cd "$tmp/elsewhere" && "$BIN" replay copy.db --cache-dir "$CACHE") >"$tmp/rp" 2>"$tmp/rp.err" &&
  grep -q "replay matches" "$tmp/rp" && [ "$(digest_of "$tmp/rp")" = "$D" ] &&
  ok "replay from another directory, module files deleted: matches" || { bad "replay elsewhere"; cat "$tmp/rp" "$tmp/rp.err"; }
(cd / && "$BIN" replay "$tmp/elsewhere/copy.db" --no-model --cache-dir "$CACHE") >"$tmp/rp" 2>&1 &&
  grep -q "replay matches" "$tmp/rp" && ok "replay --no-model from / matches" || { bad "replay --no-model elsewhere"; cat "$tmp/rp"; }
expect 0 "resume complete" "$BIN" resume "$tmp/elsewhere/copy.db" --cache-dir "$CACHE" &&
  grep -q "complete; nothing to resume" "$tmp/all" && ok "resume of a complete, sound journal: nothing to resume"

# 3. models are checked by hash; the error names the model and the file
printf ' ' >>"$P/models/tiny/tokenizer.json"
expect 1 "replay with a changed model file" "$BIN" replay "$J" --cache-dir "$CACHE" &&
  { grep -q "model 'tiny'.*file tokenizer.json differs" "$tmp/all" &&
    ok "changed model file named: $(grep -o "model 'tiny'.*differs" "$tmp/all")" || { bad "model error"; cat "$tmp/all"; }; }
expect 0 "replay --no-model ignores models" "$BIN" replay "$J" --no-model --cache-dir "$CACHE" &&
  ok "replay --no-model does not need the model files"
mv "$P/models/tiny/tokenizer.json" "$tmp/tok.json"
expect 1 "replay with a missing model file" "$BIN" replay "$J" --cache-dir "$CACHE" &&
  { grep -q "file tokenizer.json of the recorded run is missing" "$tmp/all" && ok "missing model file named" ||
    { bad "missing model file"; cat "$tmp/all"; }; }
cp "$FIX/llama-tiny-plain-fp32/tokenizer.json" "$P/models/tiny/tokenizer.json"
expect 0 "replay with the model restored" "$BIN" replay "$J" --cache-dir "$CACHE" && ok "model restored: replay matches"

# 4. edited scenario text (seed 1 -> 91): the blob no longer hashes to its key
cp "$J" "$tmp/seed.db"
sql "$tmp/seed.db" "UPDATE blobs SET bytes = CAST(replace(CAST(bytes AS TEXT), 'seed: 1', 'seed: 91') AS BLOB)
                    WHERE CAST(bytes AS TEXT) LIKE '%seed: 1%';"
"$PY" -c 'import sqlite3,sys; c=sqlite3.connect(sys.argv[1]);
assert c.execute("select count(*) from blobs where cast(bytes as text) like ?", ("%seed: 91%",)).fetchone()[0] == 1' \
  "$tmp/seed.db" || bad "the seed edit did not take"
expect 1 "verify edited scenario" "$BIN" inspect "$tmp/seed.db" --verify &&
  { grep -q "verify failed at table blobs" "$tmp/all" && ok "edited scenario text (seed 1 -> 91) rejected by --verify" ||
    { bad "seed edit message"; cat "$tmp/all"; }; }
expect 1 "replay edited scenario" "$BIN" replay "$tmp/seed.db" --cache-dir "$CACHE" && ok "... and by replay"

# 5. edited checkpoint: checkpoints are on the chain
cp "$J" "$tmp/ck.db"
n_ck=$("$PY" -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("select count(*) from checkpoints").fetchone()[0])' "$tmp/ck.db")
[ "$n_ck" -gt 0 ] && ok "the run stored $n_ck checkpoints" || bad "no checkpoints stored"
sql "$tmp/ck.db" "UPDATE checkpoints SET state = CAST(zeroblob(length(state)) AS BLOB)
                  WHERE tick = (SELECT MIN(tick) FROM checkpoints) AND n = 2;"
expect 1 "verify edited checkpoint" "$BIN" inspect "$tmp/ck.db" --verify &&
  { grep -q "verify failed at table checkpoints, tick 3, agent " "$tmp/all" && ok "edited checkpoint rejected: $(grep -o 'table checkpoints[^:]*' "$tmp/all")" ||
    { bad "checkpoint message"; cat "$tmp/all"; }; }
expect 1 "resume edited checkpoint" "$BIN" resume "$tmp/ck.db" --cache-dir "$CACHE" && ok "... and by resume"
cp "$J" "$tmp/ck2.db"
sql "$tmp/ck2.db" "DELETE FROM checkpoints WHERE tick = 3 AND n = 1;"
expect 1 "verify deleted checkpoint" "$BIN" inspect "$tmp/ck2.db" --verify &&
  { grep -q "verify failed at table checkpoints, tick 3" "$tmp/all" && ok "deleted checkpoint rejected" ||
    { bad "deleted checkpoint message"; cat "$tmp/all"; }; }

# 6. a complete journal with flipped bytes: resume refuses it (it used to
# say "nothing to resume", exit 0); so do replay --no-model and inspect
cp "$J" "$tmp/flip.db"
"$PY" - "$tmp/flip.db" <<'PY'
import os, sqlite3, sys
sys.path.insert(0, os.path.join(os.environ["COH_SOURCE_DIR"], "tests"))
import journal_rechain as jr
c = sqlite3.connect(sys.argv[1])
e = [e for e in jr.events(c) if len(e.payload) > 4][3]
seq, p = e.seq, bytearray(e.payload)
p[2] ^= 0x20
jr.set_event_payload(c, seq, bytes(p))
c.commit()
print(seq)
PY
expect 1 "resume flipped" "$BIN" resume "$tmp/flip.db" --cache-dir "$CACHE" &&
  { grep -q "verify failed at table ticks, tick [0-9]* (events, seqs [0-9]*\.\.[0-9]*)" "$tmp/all" &&
    ok "resume of a complete journal with flipped bytes: exit 1, $(grep -o 'table ticks, tick [0-9]* (events, seqs [0-9.]*)' "$tmp/all")" ||
    { bad "flip message"; cat "$tmp/all"; }; }
expect 1 "replay --no-model tampered" "$BIN" replay "$tmp/flip.db" --no-model --cache-dir "$CACHE" &&
  { grep -q "verify failed at table ticks, tick [0-9]* (events" "$tmp/all" && ok "replay --no-model refuses a tampered chain" ||
    { bad "replay --no-model message"; cat "$tmp/all"; }; }
expect 1 "inspect tampered" "$BIN" inspect "$tmp/flip.db" && ok "inspect (transcript) refuses a tampered chain"
expect 1 "inspect --json tampered" "$BIN" inspect "$tmp/flip.db" --json && ok "inspect --json refuses it"
expect 1 "inspect --digest tampered" "$BIN" inspect "$tmp/flip.db" --digest && ok "inspect --digest refuses it"
# meta outside the chain (status) is not evidence: a sound journal marked
# "running" is re-executed and compared, and ends with the same digest
cp "$J" "$tmp/status.db"
sql "$tmp/status.db" "UPDATE meta SET value = CAST('running' AS BLOB) WHERE key = 'status';"
expect 0 "resume status=running" "$BIN" resume "$tmp/status.db" --cache-dir "$CACHE" --quiet &&
  { [ "$(digest_of "$tmp/out")" = "$D" ] && ok "resume of a sound journal marked running: same digest" ||
    bad "status resume digest $(digest_of "$tmp/out") != $D"; }
# the same, with an event flipped in a tick before the last checkpoint: the
# resume restores that checkpoint and does not read the tick (so it is not
# refused, and re-executes and appends exactly as from a sound journal),
# and the flip is still there for --verify to find
cp "$J" "$tmp/preflip.db"
sql "$tmp/preflip.db" "UPDATE meta SET value = CAST('running' AS BLOB) WHERE key = 'status';"
ck_tick=$("$PY" - "$tmp/preflip.db" <<'PY'
import os, sqlite3, sys
sys.path.insert(0, os.path.join(os.environ["COH_SOURCE_DIR"], "tests"))
import journal_rechain as jr
c = sqlite3.connect(sys.argv[1])
ck = c.execute("select max(tick) from checkpoints where agent = '@orchestrator'").fetchone()[0]
e = [e for e in jr.events(c) if len(e.payload) > 4 and e.tick < ck][0]
p = bytearray(e.payload)
p[2] ^= 0x20
jr.set_event_payload(c, e.seq, bytes(p))
c.commit()
print(ck)
PY
)
expect 1 "verify pre-checkpoint flip" "$BIN" inspect "$tmp/preflip.db" --verify &&
  ok "an event flipped before the last checkpoint (tick $ck_tick) fails --verify"
expect 0 "resume pre-checkpoint flip" "$BIN" resume "$tmp/preflip.db" --cache-dir "$CACHE" --quiet &&
  { grep -q "resumed from checkpoint at tick $ck_tick" "$tmp/out" && [ "$(digest_of "$tmp/out")" = "$D" ] &&
    ok "resume restores tick $ck_tick without reading the ticks before it: same digest" ||
    { bad "pre-checkpoint resume"; cat "$tmp/all"; }; }
expect 1 "verify after the pre-checkpoint resume" "$BIN" inspect "$tmp/preflip.db" --verify &&
  ok "not laundered: --verify still rejects it after the resume"
expect 1 "resume --full pre-checkpoint flip" "$BIN" resume "$tmp/preflip.db" --full --cache-dir "$CACHE" &&
  { grep -q "verify failed at table ticks, tick [0-9]* (events" "$tmp/all" &&
    ok "resume --full (which re-executes every tick) refuses it" || { bad "resume --full message"; cat "$tmp/all"; }; }

# 7. killed mid-run, a tick row after the last checkpoint deleted: resume
# refuses it instead of
# laundering it (it used to exit 0 with a wrong digest, after which
# --verify accepted the journal)
cat >"$tmp/long.yaml" <<YAML
name: long
seed: 5
stop: {max_ticks: 100000, quiescence: false}
checkpoint_every: 25
agents:
  - {id: node, module: $BUILD/agents/echo.wasm, count: 8, inbox: 8}
messages:
$(for k in 0 1 2 3; do echo "  - {from: node-$((2*k+1)), to: node-$((2*k)), body: \"ping $k\"}"; done)
YAML
"$BIN" run "$tmp/long.yaml" --journal "$tmp/k.db" --cache-dir "$CACHE" --quiet >/dev/null 2>&1 &
pid=$!
# wait (with a deadline) until tick 60 is committed, then kill -9
"$PY" - "$tmp/k.db" 60 $pid <<'PY'
import os, sqlite3, sys, time
db, want, pid = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
deadline = time.time() + 300
while time.time() < deadline:
    try:
        os.kill(pid, 0)
    except OSError:
        sys.exit(1)
    if os.path.exists(db):
        try:
            c = sqlite3.connect("file:%s?mode=ro" % db, uri=True, timeout=0.1)
            t = c.execute("select max(tick) from ticks").fetchone()[0]
            c.close()
            if t is not None and t >= want:
                sys.exit(0)
        except sqlite3.Error:
            pass
    time.sleep(0.01)
sys.exit(1)
PY
reached=$?
kill -9 $pid 2>/dev/null
wait $pid 2>/dev/null
[ $reached = 0 ] && ok "killed the run after tick 60" || bad "the run did not reach tick 60"
expect 0 "verify killed journal" "$BIN" inspect "$tmp/k.db" --verify && ok "a journal killed mid-run verifies"
"$PY" - "$tmp/k.db" <<'PY'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
# (since format 4: a tick's events live in its ticks row, so deleting the last
# rows is a truncation, which no chain can show; a row deleted in the
# middle leaves a gap in the seqs)
# (one that a resume reads: the row of the last resume state's tick, or,
# when the kill came right after that tick, the row before it, which the
# chain from that tick on starts from; every tick of this scenario has
# events, so either leaves a gap in the seqs)
ck = c.execute("select max(tick) from checkpoints where agent = '@orchestrator'").fetchone()[0]
last = c.execute("select max(tick) from ticks").fetchone()[0]
t = ck if last > ck else ck - 1
assert c.execute("select n_events from ticks where tick = ?", (t,)).fetchone()[0] > 0, t
c.execute("delete from ticks where tick = ?", (t,))
c.commit()
PY
expect 1 "verify after deleting a tick row" "$BIN" inspect "$tmp/k.db" --verify &&
  { grep -q "events missing or doubled" "$tmp/all" &&
    ok "--verify rejects it: $(grep -o 'table ticks, tick [0-9]*' "$tmp/all")" ||
    { bad "verify message"; cat "$tmp/all"; }; }
expect 1 "resume after deleting a tick row" "$BIN" resume "$tmp/k.db" --cache-dir "$CACHE" --quiet &&
  { grep -q "verify failed at table ticks, tick [0-9]*: its [0-9]* events end at seq [0-9]*, but the tick before ends at seq [0-9]* (events missing or doubled)" "$tmp/all" &&
    ok "resume refuses it, naming the record" || { bad "resume message"; cat "$tmp/all"; }; }
expect 1 "verify after the refused resume" "$BIN" inspect "$tmp/k.db" --verify && ok "not laundered: --verify still rejects it"

# 8. what a chain cannot show (docs/journal.md): the owner of the file edits
# an event and recomputes every chain value; the journal verifies, but its
# digest differs from the one kept elsewhere, and replay re-executes and
# finds the divergence
cp "$J" "$tmp/forged.db"
"$PY" - "$tmp/forged.db" <<'PY'
import os, sqlite3, sys
sys.path.insert(0, os.path.join(os.environ["COH_SOURCE_DIR"], "tests"))
import journal_rechain as jr
c = sqlite3.connect(sys.argv[1])
seq = [e for e in jr.events(c) if e.kind == "llm_result"][0].seq
jr.set_event_payload(c, seq, b'{"id":1,"text":"forged"}')
c.commit()
PY
cp "$J" "$tmp/same.db"
[ "$("$PY" "$SRC/tests/journal_rechain.py" "$tmp/same.db")" = "$D" ] &&
  ok "an independent (Python) chain over an untouched journal gives the same digest" || bad "python chain disagrees"
"$PY" "$SRC/tests/journal_rechain.py" "$tmp/forged.db" >/dev/null
expect 0 "verify a re-chained forgery" "$BIN" inspect "$tmp/forged.db" --verify &&
  ok "a journal rebuilt by its owner verifies (a hash chain cannot tell)"
expect 0 "digest of forgery" "$BIN" inspect "$tmp/forged.db" --digest &&
  { [ "$(cat "$tmp/out")" != "$D" ] && ok "... but its digest differs from the digest kept elsewhere" || bad "forged digest equal"; }
expect 4 "replay of a forgery" "$BIN" replay "$tmp/forged.db" --cache-dir "$CACHE" &&
  { grep -q "divergence at tick" "$tmp/all" && grep -q "forged" "$tmp/all" &&
    ok "... and replay finds the divergence (exit 4)" || { bad "forgery replay output"; cat "$tmp/all"; }; }

echo "$fails failures"
[ $fails = 0 ]
