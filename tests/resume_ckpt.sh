#!/usr/bin/env bash
# resume_ckpt.sh — `cohort resume` from checkpoints (docs/orchestrator.md,
# "Journal, replay, resume"), with stock prompt agents on the default model
# (models/shakespeare) and LLM requests outstanding at some checkpoint ticks:
#   1. kill -9 by progress at three points, each just after a checkpoint tick
#      with requests outstanding; resume must restore the latest checkpoint
#      at or before the last durable tick that had none (computed here from
#      the journal's events), say so ("resumed from checkpoint at tick T,
#      re-executed N ticks", N = last durable tick - T), and end with the
#      uninterrupted run's digest and exactly its events;
#   2. a tampered checkpoint row at that tick, of an agent or of the
#      orchestrator's resume state (a checkpoint of the reserved id
#      '@orchestrator', on the chain), is refused by the chain check of
#      resume, replay and inspect --verify (exit 1, naming the checkpoints
#      table and the tick);
#   3. a resume state cut short and re-chained (journal_rechain.py: a
#      journal rebuilt by its owner, which a chain cannot detect) is refused
#      cleanly at any of seven lengths, naming it; `resume --full` resumes
#      the untouched journal from tick 0 to the same digest;
#   4. a state of an unknown format (re-chained) is re-executed from tick 0,
#      saying why, to the same events; a format-2 journal (which kept the
#      state in meta, off the chain) is refused naming both versions.
#   The reference run has one resume state per checkpoint tick without
#   requests outstanding, and the test prints what they cost in bytes.
# Kill points are chosen by progress, never by time.
set -u
BIN=${COH_BIN:?} BUILD=${COH_BUILD_DIR:?} SRC=${COH_SOURCE_DIR:?}
PY=${COH_PYTHON:-/usr/bin/python3}
CACHE="$BUILD/test-module-cache"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Two prompt agents answered at spaced ticks (so some checkpoints have
# requests outstanding and some do not), two counters busy every tick.
{
  cat <<YAML
name: resume-prompt
seed: 5
models:
  - {name: bard, path: $SRC/models/shakespeare, device: cpu, max_batch: 2, threads: 1}
policy: {kind: round_robin, quantum: 1}
stop: {max_ticks: 90, quiescence: true}
checkpoint_every: 4
agents:
  - id: q
    kind: prompt
    config: {system: "A hall in Verona.", template_vars: {speaker: QUINCE}, model: bard, max_tokens: 6, temperature: 0.8, top_k: 40}
  - id: r
    kind: prompt
    config: {system: "A field near Athens.", template_vars: {speaker: ROMEO}, model: bard, max_tokens: 6, temperature: 0.8, top_k: 40}
  - {id: c, module: $BUILD/agents/counter.wasm, count: 2}
messages:
YAML
  for t in 1 2 25 26 27 50 52 70; do
    echo "  - {from: c-0, to: q, body: \"Speak $t\", tick: $t}"
    echo "  - {from: c-1, to: r, body: \"Say $t\", tick: $((t + 1))}"
  done
  for t in $(seq 1 80); do echo "  - {to: c-$((t % 2)), body: \"$t\", tick: $t}"; done
} >"$tmp/p.yaml"

"$BIN" run "$tmp/p.yaml" --journal "$tmp/ref.db" --cache-dir "$CACHE" --quiet >"$tmp/ref.out" 2>&1 || {
  echo "FAIL: reference run: $(cat "$tmp/ref.out")"
  exit 1
}

"$PY" - "$BIN" "$CACHE" "$tmp" "$SRC" <<'PY'
import os, re, shutil, signal, sqlite3, subprocess, sys, time
sys.path.insert(0, os.path.join(os.environ["COH_SOURCE_DIR"], "tests"))
import journal_rechain as jr

BIN, CACHE, TMP, SRC = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
ORCH = "@orchestrator"
fails = 0

def ok(msg):
    print("ok   " + msg, flush=True)

def bad(msg):
    global fails
    fails += 1
    print("FAIL: " + msg, flush=True)

def digest_of(text):
    d = [l[8:] for l in text.splitlines() if l.startswith("digest: ")]
    return d[-1] if d else None

def q(db, sql, args=()):
    c = sqlite3.connect("file:%s?mode=ro" % db, uri=True, timeout=0.1)
    r = c.execute(sql, args).fetchall()
    c.close()
    return r

def all_events(db):
    c = sqlite3.connect("file:%s?mode=ro" % db, uri=True, timeout=0.1)
    r = jr.events(c)
    c.close()
    return r

def rows(db):
    # an event's chain is its tick's events record (format 4)
    ech = dict(q(db, "select tick, events_chain from ticks"))
    return [(e.seq, e.tick, e.kind, e.source, e.target, e.payload, ech[e.tick]) for e in all_events(db)]

def last_tick(db):
    try:
        t = q(db, "select max(tick) from ticks")[0][0]
        return -1 if t is None else t
    except sqlite3.Error:
        return -1

def outstanding(db, c):
    """LLM requests committed at or before tick c whose result is not."""
    evs = [e for e in all_events(db) if e.tick <= c]
    return sum(e.kind == "llm_request" for e in evs) - sum(e.kind == "llm_result" for e in evs)

def resume(db, *extra):
    return subprocess.run([BIN, "resume", db, "--cache-dir", CACHE, "--quiet"] + list(extra),
                          capture_output=True, text=True)

RESUMED = re.compile(r"^resumed from checkpoint at tick (\d+), re-executed (\d+) ticks$", re.M)
FROM0 = re.compile(r"^resumed from tick 0 \((.*)\), re-executed (\d+) ticks$", re.M)

ref = os.path.join(TMP, "ref.db")
dref = digest_of(open(os.path.join(TMP, "ref.out")).read())
ref_rows = rows(ref)
cks = sorted(t for (t,) in q(ref, "select distinct tick from checkpoints"))
busy = [c for c in cks if outstanding(ref, c) > 0]
quiet = [c for c in cks if outstanding(ref, c) == 0]
if not dref or len(busy) < 3 or len(quiet) < 3:
    bad("reference run: digest %r, checkpoints with requests outstanding %s, without %s"
        % (dref, busy, quiet))
    sys.exit(1)
ok("reference run: %d events, digest %s; checkpoints with LLM requests outstanding: %s"
   % (len(ref_rows), dref, busy))
orch = sorted(t for (t,) in q(ref, "select tick from checkpoints where agent = ?", (ORCH,)))
if orch == quiet:
    o_bytes = q(ref, "select sum(length(state)) from checkpoints where agent = ?", (ORCH,))[0][0]
    a_bytes = q(ref, "select sum(length(state)) from checkpoints where agent != ?", (ORCH,))[0][0]
    ok("one resume state per quiet checkpoint tick %s: %d bytes in all (%d per tick), "
       "beside %d bytes of agent checkpoints" % (orch, o_bytes, o_bytes // len(orch), a_bytes))
else:
    bad("resume states at ticks %s, want the quiet checkpoint ticks %s" % (orch, quiet))

# 1. kill at the first busy checkpoint after each quiet stretch
points = [c for c in busy if any(x < c for x in quiet) and
          max([x for x in cks if x < c], default=-1) in quiet][:3]
skipped_busy = 0
killed_db = None
for p in points:
    db = os.path.join(TMP, "k%d.db" % p)
    proc = subprocess.Popen([BIN, "run", os.path.join(TMP, "p.yaml"), "--journal", db,
                             "--cache-dir", CACHE, "--quiet"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while proc.poll() is None and time.time() < deadline:
        if os.path.exists(db) and last_tick(db) >= p:
            break
        time.sleep(0.002)
    killed = proc.poll() is None
    if killed:
        proc.send_signal(signal.SIGKILL)
    proc.wait()
    at = last_tick(db)
    if not killed or at >= max(cks):
        ok("kill at tick %d: the run got to tick %d first; resumed below anyway" % (p, at))
    want = max([c for c in quiet if c <= at], default=-1)
    skipped = [c for c in busy if want < c <= at]
    if killed_db is None and want > 0 and at < max(cks):
        killed_db = os.path.join(TMP, "keep.db")
        for sfx in ("", "-wal", "-shm"):
            if os.path.exists(db + sfx):
                shutil.copy(db + sfx, killed_db + sfx)
        keep_at, keep_want = at, want
    r = resume(db)
    if r.returncode != 0:
        bad("kill at tick %d: resume exit %d: %s" % (p, r.returncode, r.stdout + r.stderr))
        continue
    m = RESUMED.search(r.stdout)
    if "nothing to resume" in r.stdout:
        ok("kill at tick %d: the run had completed" % p)
        continue
    if want < 0:
        if FROM0.search(r.stdout):
            ok("kill at tick %d: no quiet checkpoint yet, resumed from tick 0" % p)
        else:
            bad("kill at tick %d: %s" % (p, r.stdout))
    elif m is None or int(m.group(1)) != want or int(m.group(2)) != at - want:
        bad("kill at tick %d (journal at %d): want 'resumed from checkpoint at tick %d, "
            "re-executed %d ticks', got: %s" % (p, at, want, at - want, r.stdout[:400]))
    else:
        ok("kill at tick %d (journal at %d): resumed from checkpoint %d, re-executed %d ticks, "
           "skipping checkpoints with requests outstanding %s" % (p, at, want, at - want, skipped))
        skipped_busy += len(skipped) > 0
    if digest_of(r.stdout) != dref:
        bad("kill at tick %d: digest %s, want %s" % (p, digest_of(r.stdout), dref))
    elif rows(db) != ref_rows:
        bad("kill at tick %d: the resumed journal's events differ from the uninterrupted run's" % p)
    else:
        ok("kill at tick %d + resume: the uninterrupted digest and events" % p)
if skipped_busy >= 2:
    ok("%d resumes skipped a checkpoint with LLM requests in flight" % skipped_busy)
else:
    bad("only %d resumes skipped a checkpoint with requests in flight (want >= 2)" % skipped_busy)
if killed_db is None:
    bad("no kill landed after a quiet checkpoint: sections 2-4 have no journal")
    sys.exit(1)

def copy(name):
    d = os.path.join(TMP, name)
    for sfx in ("", "-wal", "-shm"):
        if os.path.exists(killed_db + sfx):
            shutil.copy(killed_db + sfx, d + sfx)
    return d

def edit(db, sql, args=()):
    c = sqlite3.connect(db)
    c.execute(sql, args)
    c.commit()
    c.close()

def rechain(db):
    subprocess.run([sys.executable, os.path.join(SRC, "tests", "journal_rechain.py"), db],
                   check=True, capture_output=True)

def events(db):
    return [tuple(e[:6]) for e in all_events(db)]

# 2. a tampered checkpoint row at the restored tick, of an agent or of the
# orchestrator: the chain check of every command refuses it, naming it
for who in ("q", ORCH):
    db = copy("ck-%s.db" % who.strip("@"))
    n = q(db, "select length(state) from checkpoints where tick = ? and agent = ?",
          (keep_want, who))[0][0]
    mid = n // 2
    edit(db, "update checkpoints set state = cast(substr(state, 1, ?) || "
             "(case when substr(state, ?, 1) = x'5a' then x'5b' else x'5a' end) || "
             "substr(state, ?) as blob) where tick = ? and agent = ?", (mid - 1, mid, mid + 1, keep_want, who))
    named = "table checkpoints"
    r = resume(db)
    if r.returncode == 1 and named in r.stderr and ("tick %d" % keep_want) in r.stderr \
            and "resumed" not in r.stdout:
        ok("a tampered checkpoint of '%s' at tick %d is refused by resume: %s"
           % (who, keep_want, r.stderr.strip()[:200]))
    else:
        bad("tampered checkpoint of '%s': resume exit %d, %s" % (who, r.returncode, r.stdout + r.stderr))
    for cmd in (["inspect", db, "--verify"], ["replay", db, "--no-model", "--cache-dir", CACHE]):
        rr = subprocess.run([BIN] + cmd, capture_output=True, text=True)
        if rr.returncode == 1 and named in rr.stderr:
            ok("... and by %s" % cmd[0])
        else:
            bad("tampered checkpoint of '%s': %s exit %d, %s"
                % (who, cmd[0], rr.returncode, rr.stdout[-300:] + rr.stderr[-300:]))

# 3. a resume state cut short and re-chained by the file's owner: the chain
# verifies, and the state is refused cleanly at any length, naming it
n = q(killed_db, "select length(state) from checkpoints where tick = ? and agent = ?",
      (keep_want, ORCH))[0][0]
cuts = sorted(set([16, 23, n // 5, n // 3, n // 2, n - 9, n - 1]))
crashed = []
named = "checkpoint '%s' at tick %d" % (ORCH, keep_want)
for cut in cuts:
    d = copy("cut%d.db" % cut)
    edit(d, "update checkpoints set state = substr(state, 1, ?) where tick = ? and agent = ?",
         (cut, keep_want, ORCH))
    rechain(d)
    rr = resume(d)
    if rr.returncode != 1 or named not in rr.stderr:
        crashed.append((cut, rr.returncode, rr.stderr[-200:]))
if crashed:
    bad("resume states cut short: %s" % crashed)
else:
    ok("a re-chained resume state cut at %s of its %d bytes is refused each time, naming %s"
       % (cuts, n, named))
db = copy("full.db")
r = resume(db, "--full")
m = FROM0.search(r.stdout)
if r.returncode == 0 and m and int(m.group(2)) == keep_at + 1 and digest_of(r.stdout) == dref:
    ok("resume --full re-executes all %d committed ticks, same digest" % (keep_at + 1))
else:
    bad("resume --full: exit %d, %s" % (r.returncode, r.stdout + r.stderr))

# 4. a state of another format (re-chained: as another cohort version would
# have written it) is not used; a format-3 journal is refused
db = copy("fmt.db")
edit(db, "update checkpoints set state = cast(x'434f484f52434839' || substr(state, 9) as blob) "
         "where agent = ?", (ORCH,))
rechain(db)
r = resume(db)
m = FROM0.search(r.stdout)
if r.returncode == 0 and m and "not of format COHORCH1" in m.group(1) \
        and int(m.group(2)) == keep_at + 1 and events(db) == [e[:6] for e in ref_rows]:
    ok("fmt.db: re-executed from tick 0 (%s), same events" % m.group(1)[:60])
else:
    bad("fmt.db: exit %d, %s" % (r.returncode, r.stdout + r.stderr))
db = copy("v3.db")
edit(db, "update meta set value = '3' where key = 'schema_version'")
r = resume(db)
if r.returncode == 1 and "version '3'" in r.stderr and "version 4" in r.stderr:
    ok("a format-3 journal is refused: %s" % r.stderr.strip()[:200])
else:
    bad("format-3 journal: exit %d, %s" % (r.returncode, r.stdout + r.stderr))

print("resume_ckpt: %s" % ("all passed" if fails == 0 else "%d failures" % fails))
sys.exit(1 if fails else 0)
PY
