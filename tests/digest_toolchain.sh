#!/usr/bin/env bash
# digest_toolchain.sh — a run's digest does not depend on the local C
# compiler (DESIGN.md's determinism contract: same inputs, same digest, on
# any machine).  The same LLM-free scenario, with agent checkpoints in the
# journal, is run twice with fresh module caches: once with the system `cc`,
# once with a `cc` first on PATH that is a wrapper reporting another
# version (what a second machine with another gcc looks like to cohort).
# The wrapper must change the compile-cache keys (else the test proves
# nothing), and the digests must be equal.  Before the fix, every checkpoint
# held the cache key, which hashes `cc --version`, so the digests differed.
# Then: a journal with checkpoints of the old format (COHSNAP2) is refused by
# `cohort resume` naming both formats, and still verifies and replays.
set -u
BIN=${COH_BIN:?} BUILD=${COH_BUILD_DIR:?}
A="$BUILD/agents"
tmp=$(mktemp -d)
[ -n "${KEEP:-}" ] && echo "kept $tmp" || trap 'rm -rf "$tmp"' EXIT
fails=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL: $*"; fails=$((fails+1)); }
digest_of() { tail -n 1 "$1" | sed -n 's/^digest: //p'; }

cat >"$tmp/ck.yaml" <<YAML
name: ck
seed: 11
policy: {kind: round_robin, quantum: 2}
stop: {max_ticks: 30, quiescence: true}
checkpoint_every: 2
agents:
  - {id: n, module: $A/counter.wasm, count: 2}
  - {id: c, module: $A/chatter.wasm}
messages:
  - {to: n-0, body: "x"}
  - {to: n-1, body: "y", tick: 2}
  - {to: n-0, body: "total", tick: 3}
  - {to: c, body: "rand"}
  - {to: c, body: "timer 2", tick: 2}
YAML

mkdir -p "$tmp/bin"
cat >"$tmp/bin/cc" <<'SH'
#!/bin/sh
# another compiler, as far as cohort can tell: a different version line
if [ "$1" = --version ]; then echo "cc (Other 99.9.1) 99.9.1"; exit 0; fi
exec /usr/bin/cc "$@"
SH
chmod +x "$tmp/bin/cc"

"$BIN" run "$tmp/ck.yaml" --journal "$tmp/a.db" --cache-dir "$tmp/cache-a" \
  >"$tmp/out-a" 2>"$tmp/err-a" || bad "run with the system cc failed: $(cat "$tmp/err-a")"
PATH="$tmp/bin:$PATH" "$BIN" run "$tmp/ck.yaml" --journal "$tmp/b.db" --cache-dir "$tmp/cache-b" \
  >"$tmp/out-b" 2>"$tmp/err-b" || bad "run with the wrapper cc failed: $(cat "$tmp/err-b")"

ka=$(cd "$tmp/cache-a" 2>/dev/null && ls *.so 2>/dev/null | sort | tr '\n' ' ')
kb=$(cd "$tmp/cache-b" 2>/dev/null && ls *.so 2>/dev/null | sort | tr '\n' ' ')
if [ -n "$ka" ] && [ -n "$kb" ] && [ "$ka" != "$kb" ]; then
  ok "the wrapper cc changes the compile-cache keys ($ka / $kb)"
else bad "cache keys did not change with the compiler identity: '$ka' / '$kb'"; fi

n_ck=$(/usr/bin/python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute(\"select count(*) from checkpoints where agent != '@orchestrator'\").fetchone()[0])" "$tmp/a.db" 2>/dev/null || echo 0)
[ "${n_ck:-0}" -gt 0 ] && ok "the journal holds $n_ck agent checkpoints" \
  || bad "the journal holds no checkpoints: the test would prove nothing"

da=$(digest_of "$tmp/out-a"); db=$(digest_of "$tmp/out-b")
if [ -n "$da" ] && [ "$da" = "$db" ]; then ok "same digest under both compilers ($da)"
else bad "digest depends on the compiler: $da / $db"; fi

# A journal whose checkpoints are of the old format (COHSNAP2: the memory
# stored whole) cannot be resumed: the chain would hold both
# formats.  Made from a's journal: status back to "interrupted", the
# checkpoints' magic set to COHSNAP2, the chain recomputed by its owner
# (tests/journal_rechain.py).  The same journal re-chained without the edit
# resumes (so the refusal is the format's doing).
PY=${COH_PYTHON:-/usr/bin/python3}
SRC=${COH_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
for v in old same; do
  cp "$tmp/a.db" "$tmp/$v.db"
  "$PY" - "$tmp/$v.db" "$v" <<'PYEOF'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
c.execute("update meta set value=? where key='status'", (b"interrupted",))
if sys.argv[2] == "old":
    # the agents' snapshots; the orchestrator's state ('@orchestrator',
    # COHORCH2) is of its own format
    for rowid, state in c.execute("select rowid, state from checkpoints "
                                  "where agent != '@orchestrator'").fetchall():
        assert state[:8] == b"COHSNAP3"
        c.execute("update checkpoints set state=? where rowid=?", (b"COHSNAP2" + state[8:], rowid))
c.commit()
PYEOF
  "$PY" "$SRC/tests/journal_rechain.py" "$tmp/$v.db" >/dev/null || bad "journal_rechain.py failed on $v.db"
done
"$BIN" resume "$tmp/same.db" --cache-dir "$tmp/cache-a" >"$tmp/out-same" 2>"$tmp/err-same" \
  && ok "a re-chained journal of this format resumes" \
  || bad "resume of the re-chained journal failed: $(cat "$tmp/err-same")"
"$BIN" resume "$tmp/old.db" --cache-dir "$tmp/cache-a" >"$tmp/out-old" 2>"$tmp/err-old"; st=$?
if [ $st -ne 0 ] && grep -q "COHSNAP2" "$tmp/err-old" && grep -q "COHSNAP3" "$tmp/err-old"; then
  ok "a journal with old-format checkpoints is refused by resume (exit $st): $(head -c 300 "$tmp/err-old")"
else bad "resume of an old-format journal: exit $st, $(cat "$tmp/err-old")"; fi
"$BIN" inspect "$tmp/old.db" --verify >"$tmp/out-ins" 2>&1 \
  && ok "the old-format journal is still readable (inspect --verify)" \
  || bad "inspect --verify of the old-format journal failed: $(cat "$tmp/out-ins")"
"$BIN" replay "$tmp/old.db" --cache-dir "$tmp/cache-a" >"$tmp/out-rep" 2>&1 \
  && grep -q "replay matches" "$tmp/out-rep" \
  && ok "the old-format journal still replays" \
  || bad "replay of the old-format journal failed: $(cat "$tmp/out-rep")"

exit $((fails > 0))
