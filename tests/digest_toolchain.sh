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

n_ck=$(/usr/bin/python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('select count(*) from checkpoints').fetchone()[0])" "$tmp/a.db" 2>/dev/null || echo 0)
[ "${n_ck:-0}" -gt 0 ] && ok "the journal holds $n_ck agent checkpoints" \
  || bad "the journal holds no checkpoints: the test would prove nothing"

da=$(digest_of "$tmp/out-a"); db=$(digest_of "$tmp/out-b")
if [ -n "$da" ] && [ "$da" = "$db" ]; then ok "same digest under both compilers ($da)"
else bad "digest depends on the compiler: $da / $db"; fi

exit $((fails > 0))
