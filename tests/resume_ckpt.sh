#!/usr/bin/env bash
# resume_ckpt.sh — `cohort resume` from checkpoints (docs/orchestrator.md,
# "Journal, replay, resume"), with stock prompt agents on the default model
# (models/shakespeare), one of them constrained by a JSON schema, and LLM
# requests outstanding (waiting for admission, or in the engine part-way
# through their generation) at most checkpoint ticks:
#   0. every checkpoint tick has a resume state, and the states list the
#      requests outstanding (parsed here: each engine request's admission
#      tick and the tokens and text it had produced);
#   1. a journal cut after tick C + 1 for every checkpoint tick C with a
#      request in the engine (what kill -9 leaves: whole ticks), and kill -9
#      by progress just after three such ticks: resume must restore the
#      latest checkpoint T at or before the last durable tick L, requests in
#      flight included (re-running each engine request's steps from its
#      admission), say so ("resumed from checkpoint at tick T, re-executed N
#      ticks", N = L - T < checkpoint_every), and end with the uninterrupted
#      run's digest and exactly its events; among them checkpoints with a
#      constrained (JSON-schema) request and a plain one mid-generation;
#   2. a tampered checkpoint row at that tick, of an agent or of the
#      orchestrator's resume state (a checkpoint of the reserved id
#      '@orchestrator', on the chain), is refused by the chain check of
#      resume, replay and inspect --verify (exit 1, naming the checkpoints
#      table and the tick);
#   3. a resume state cut short and re-chained (journal_rechain.py: a
#      journal rebuilt by its owner, which a chain cannot detect) is refused
#      cleanly at any of seven lengths, naming it; `resume --full` resumes
#      the untouched journal from tick 0 to the same digest;
#   3b. an engine request whose recorded text or token count was edited (and
#      re-chained) is refused: its re-run does not reproduce it;
#   4. a state of an unknown format (re-chained) is re-executed from tick 0,
#      saying why, to the same events; a format-2 journal (which kept the
#      state in meta, off the chain) is refused naming both versions.
#   5. examples/debate.yaml (never idle at a checkpoint tick), cut to 100
#      ticks, resumes from the checkpoint before each of two cuts.
#   The test prints what the resume states cost in bytes.
# Kill points are chosen by progress, never by time.
set -u
BIN=${COH_BIN:?} BUILD=${COH_BUILD_DIR:?} SRC=${COH_SOURCE_DIR:?}
PY=${COH_PYTHON:-/usr/bin/python3}
CACHE="$BUILD/test-module-cache"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Two prompt agents answered at spaced ticks, one constrained by a JSON
# schema (so a grammar state is in flight), two counters busy every tick;
# max_batch 2 for three prompt agents, so some requests wait.
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
  - id: j
    kind: prompt
    config: {system: "A court in Athens.", model: bard, max_tokens: 14, temperature: 0.9, schema: {type: object, properties: {who: {type: string}, says: {type: string}}, required: [who, says]}}
  - {id: c, module: $BUILD/agents/counter.wasm, count: 2}
messages:
YAML
  for t in 1 2 25 26 27 50 52 70; do
    echo "  - {from: c-0, to: q, body: \"Speak $t\", tick: $t}"
    echo "  - {from: c-1, to: r, body: \"Say $t\", tick: $((t + 1))}"
  done
  for t in 3 28 55; do echo "  - {from: c-0, to: j, body: \"Who speaks $t?\", tick: $t}"; done
  for t in $(seq 1 80); do echo "  - {to: c-$((t % 2)), body: \"$t\", tick: $t}"; done
} >"$tmp/p.yaml"

"$BIN" run "$tmp/p.yaml" --journal "$tmp/ref.db" --cache-dir "$CACHE" --quiet >"$tmp/ref.out" 2>&1 || {
  echo "FAIL: reference run: $(cat "$tmp/ref.out")"
  exit 1
}

"$PY" - "$BIN" "$CACHE" "$tmp" "$SRC" <<'PY'
import os, re, shutil, signal, sqlite3, struct, subprocess, sys, time
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
    # an event's chain is its tick's events record (since format 4)
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
if not dref or len(busy) < 3:
    bad("reference run: digest %r, checkpoints with requests outstanding %s" % (dref, busy))
    sys.exit(1)
ok("reference run: %d events, digest %s; checkpoints %s, with LLM requests outstanding: %s"
   % (len(ref_rows), dref, cks, busy))

def parse_state(st):
    """The LLM requests of a resume state (src/sched/resume.c, COHORCH2):
    {"waiting": [(agent, number)], "engine": [(agent, number, admit, tokens, text)]}."""
    p = [0]
    def take(n):
        v = st[p[0]:p[0] + n]
        if len(v) != n:
            raise ValueError("truncated at %d" % p[0])
        p[0] += n
        return v
    u32 = lambda: struct.unpack("=I", take(4))[0]
    i64 = lambda: struct.unpack("=q", take(8))[0]
    sstr = lambda: take(i64())
    if take(8) != b"COHORCH2":
        raise ValueError("magic")
    tick, n_agents = i64(), u32()
    for _ in range(5):
        i64()
    ids = []
    for _ in range(n_agents):
        ids.append(sstr().decode())
        u32()
        c = i64()
        if c >= 0:
            take(c)
        u32(); u32(); i64(); i64()
        for _ in range(i64()):
            u32(); sstr()
        for _ in range(i64()):
            sstr(); sstr()
    for _ in range(i64()):
        i64(); u32(); i64()
    n_models = u32()
    for _ in range(n_models):
        i64()
    out = {"tick": tick, "waiting": [], "engine": []}
    for _ in range(n_models):
        for _ in range(i64()):
            a, n = u32(), i64()
            sstr()
            out["waiting"].append((ids[a], n))
        for _ in range(i64()):
            a, n, adm, tok = u32(), i64(), i64(), i64()
            sstr()
            out["engine"].append((ids[a], n, adm, tok, sstr().decode("utf-8", "replace")))
    if p[0] != len(st):
        raise ValueError("%d trailing bytes" % (len(st) - p[0]))
    return out

# 0. a resume state at every checkpoint tick, listing what is in flight
orch = sorted(t for (t,) in q(ref, "select tick from checkpoints where agent = ?", (ORCH,)))
if orch == cks:
    o_bytes = q(ref, "select sum(length(state)) from checkpoints where agent = ?", (ORCH,))[0][0]
    a_bytes = q(ref, "select sum(length(state)) from checkpoints where agent != ?", (ORCH,))[0][0]
    ok("one resume state per checkpoint tick: %d bytes in all (%d per tick), "
       "beside %d bytes of agent checkpoints" % (o_bytes, o_bytes // len(orch), a_bytes))
else:
    bad("resume states at ticks %s, want every checkpoint tick %s" % (orch, cks))
states = {}
for (t, st) in q(ref, "select tick, state from checkpoints where agent = ?", (ORCH,)):
    try:
        states[t] = parse_state(bytes(st))
    except (ValueError, struct.error) as e:
        bad("the resume state of tick %d does not parse: %s" % (t, e))
mismatch = [t for t in states
            if len(states[t]["waiting"]) + len(states[t]["engine"]) != outstanding(ref, t)]
if mismatch:
    bad("resume states whose requests are not the journal's outstanding ones: %s" % mismatch)
else:
    ok("each resume state lists exactly the requests outstanding at its tick")
in_engine = [t for t in cks if t in states and states[t]["engine"]]
mid = lambda t, who: [e for e in states[t]["engine"] if e[0] in who and e[3] > 0]
schema_ticks = [t for t in in_engine if mid(t, ("j",))]
plain_ticks = [t for t in in_engine if mid(t, ("q", "r"))]
waiting_ticks = [t for t in cks if t in states and states[t]["waiting"]]
if schema_ticks and plain_ticks:
    ok("checkpoints with a request mid-generation in the engine: constrained %s, plain %s; "
       "with requests waiting for admission: %s" % (schema_ticks, plain_ticks, waiting_ticks))
    t = schema_ticks[0]
    ok("e.g. tick %d: %s" % (t, [e[:4] + (e[4][:40],) for e in states[t]["engine"]]))
else:
    bad("want checkpoints with a constrained and a plain request mid-generation, got %s / %s"
        % (schema_ticks, plain_ticks))

def check_resume(db, at, label):
    """resume db (durable up to tick at): from the latest checkpoint <= at,
    re-executing at - T < checkpoint_every ticks, to the reference."""
    r = resume(db)
    if r.returncode != 0:
        bad("%s: resume exit %d: %s" % (label, r.returncode, r.stdout + r.stderr))
        return None
    if "nothing to resume" in r.stdout:
        ok("%s: the run had completed" % label)
        return None
    want = max([c for c in cks if c <= at], default=-1)
    m = RESUMED.search(r.stdout)
    got = None
    if want < 0:
        if FROM0.search(r.stdout):
            ok("%s: no checkpoint yet, resumed from tick 0" % label)
        else:
            bad("%s: %s" % (label, r.stdout))
    elif m is None or int(m.group(1)) != want or int(m.group(2)) != at - want \
            or at - want >= 4:
        bad("%s (journal at %d): want 'resumed from checkpoint at tick %d, re-executed %d "
            "ticks', got: %s" % (label, at, want, at - want, (r.stdout + r.stderr)[:400]))
    else:
        got = want
    if digest_of(r.stdout) != dref:
        bad("%s: digest %s, want %s" % (label, digest_of(r.stdout), dref))
        return None
    if rows(db) != ref_rows:
        bad("%s: the resumed journal's events differ from the uninterrupted run's" % label)
        return None
    if got is not None:
        st = states.get(got, {"engine": [], "waiting": []})
        ok("%s (journal at %d): resumed from checkpoint %d with %d requests in the engine %s "
           "and %d waiting, re-executed %d ticks: the uninterrupted digest and events"
           % (label, at, got, len(st["engine"]), [e[:4] for e in st["engine"]],
              len(st["waiting"]), at - got))
    return got

# 1a. journals cut after tick C + 1 (whole ticks, as kill -9 leaves them)
def cut_after(src, dst, x):
    for sfx in ("", "-wal", "-shm"):
        if os.path.exists(dst + sfx):
            os.remove(dst + sfx)
    c = sqlite3.connect(src)
    c.execute("vacuum into ?", (dst,))
    c.close()
    c = sqlite3.connect(dst)
    for t in ("ticks", "checkpoints"):  # since format 4: a tick's events are in its row
        c.execute("delete from %s where tick > ?" % t, (x,))
    c.execute("update meta set value = cast('interrupted' as blob) where key = 'status'")
    c.commit()
    c.close()

from_flight = []
for cpt in in_engine:
    db = os.path.join(TMP, "cut%d.db" % cpt)
    cut_after(ref, db, cpt + 1)
    got = check_resume(db, cpt + 1, "journal cut after tick %d" % (cpt + 1))
    if got == cpt:
        from_flight.append(cpt)
if set(schema_ticks) | set(plain_ticks) <= set(from_flight) and len(from_flight) >= 3:
    ok("resumed exactly from every checkpoint with requests in the engine: %s" % from_flight)
else:
    bad("resumed from checkpoints with requests in the engine %s, want all of %s"
        % (from_flight, in_engine))

# 1b. kill -9 by progress, just after checkpoints with requests in the engine
points = in_engine[::max(1, len(in_engine) // 3)][:3]
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
    want = max([c for c in cks if c <= at], default=-1)
    if killed_db is None and want > 0 and at < max(cks):
        killed_db = os.path.join(TMP, "keep.db")
        for sfx in ("", "-wal", "-shm"):
            if os.path.exists(db + sfx):
                shutil.copy(db + sfx, killed_db + sfx)
        keep_at, keep_want = at, want
    check_resume(db, at, "kill -9 at tick %d" % p)
if killed_db is None:  # every kill came too late: sections 2-4 use a cut journal
    killed_db = os.path.join(TMP, "keep.db")
    keep_want = in_engine[0]
    keep_at = keep_want + 1
    cut_after(ref, killed_db, keep_at)

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
# 3b. an engine request whose recorded text or token count the re-run does
# not reproduce (re-chained): refused, naming the request, never resumed
# with another engine state.  The state's last bytes are the no-model
# slot's two empty lists, after the last engine request's text.
tt = next((t for t in in_engine if states[t]["engine"][-1][3] > 0
           and states[t]["engine"][-1][4]), None)
if tt is None:
    bad("no checkpoint whose last engine request has text")
else:
    who, num = states[tt]["engine"][-1][:2]
    st = bytes(q(ref, "select state from checkpoints where tick = ? and agent = ?", (tt, ORCH))[0][0])
    assert st.endswith(bytes(16))
    k = len(st) - 17  # the text's last byte
    edits = {"text": st[:k] + bytes([st[k] ^ 0x01]) + st[k + 1:]}
    tlen = len(states[tt]["engine"][-1][4].encode())
    # the token count: the i64 before the json's length (the json ends
    # where the text's length begins)
    for cand in range(len(st) - 16 - tlen - 8 - 8, 0, -1):
        jl = struct.unpack("=q", st[cand:cand + 8])[0]
        if cand + 8 + jl == len(st) - 16 - tlen - 8:
            tok = cand - 8
            n_tok = struct.unpack("=q", st[tok:tok + 8])[0]
            edits["tokens"] = st[:tok] + struct.pack("=q", n_tok + 1) + st[tok + 8:]
            break
    for what, nst in sorted(edits.items()):
        d = os.path.join(TMP, "rerun-%s.db" % what)
        cut_after(ref, d, tt + 1)
        edit(d, "update checkpoints set state = ? where tick = ? and agent = ?", (nst, tt, ORCH))
        rechain(d)
        rr = resume(d)
        want = "request %d of agent '%s' re-run from its admission" % (num, who)
        if rr.returncode == 1 and want in rr.stderr and "resumed" not in rr.stdout:
            ok("an engine request's recorded %s changed (re-chained) is refused: %s"
               % (what, rr.stderr.strip()[-220:]))
        else:
            bad("engine request's %s changed: exit %d, %s" % (what, rr.returncode,
                                                           rr.stdout[-300:] + rr.stderr[-300:]))
    if "tokens" not in edits:
        bad("could not find the token count of the last engine request at tick %d" % tt)

db = copy("full.db")
r = resume(db, "--full")
m = FROM0.search(r.stdout)
if r.returncode == 0 and m and int(m.group(2)) == keep_at + 1 and digest_of(r.stdout) == dref:
    ok("resume --full re-executes all %d committed ticks, same digest" % (keep_at + 1))
else:
    bad("resume --full: exit %d, %s" % (r.returncode, r.stdout + r.stderr))

# 4. a state of another format (re-chained: as another cohort version would
# have written it) is not used; a format-4 journal is refused
db = copy("fmt.db")
edit(db, "update checkpoints set state = cast(x'434f484f52434839' || substr(state, 9) as blob) "
         "where agent = ?", (ORCH,))
rechain(db)
r = resume(db)
m = FROM0.search(r.stdout)
if r.returncode == 0 and m and "not of format COHORCH2" in m.group(1) \
        and int(m.group(2)) == keep_at + 1 and events(db) == [e[:6] for e in ref_rows]:
    ok("fmt.db: re-executed from tick 0 (%s), same events" % m.group(1)[:60])
else:
    bad("fmt.db: exit %d, %s" % (r.returncode, r.stdout + r.stderr))
db = copy("v4.db")
edit(db, "update meta set value = '4' where key = 'schema_version'")
r = resume(db)
if r.returncode == 1 and "version '4'" in r.stderr and "version 5" in r.stderr:
    ok("a format-4 journal is refused: %s" % r.stderr.strip()[:200])
else:
    bad("format-4 journal: exit %d, %s" % (r.returncode, r.stdout + r.stderr))

# 5. examples/debate.yaml (its engine is never idle at a checkpoint tick:
# before requests in flight were restored, it re-ran from tick 0), cut to
# 100 ticks: resumed from the checkpoint just before each cut
dbt = os.path.join(TMP, "debate.yaml")
with open(os.path.join(SRC, "examples", "debate.yaml")) as f:
    text = f.read()
text = text.replace("path: ../models/shakespeare", "path: " + os.path.join(SRC, "models", "shakespeare"))
text = re.sub(r"max_ticks: \d+", "max_ticks: 100", text)
with open(dbt, "w") as f:
    f.write(text)
dref_db = os.path.join(TMP, "debate.db")
r = subprocess.run([BIN, "run", dbt, "--journal", dref_db, "--cache-dir", CACHE, "--quiet"],
                   capture_output=True, text=True)
ddig = digest_of(r.stdout)
if r.returncode != 0 or not ddig:
    bad("debate reference run: exit %d, %s" % (r.returncode, r.stdout + r.stderr))
else:
    drows = rows(dref_db)
    for c in (60, 80):
        st = bytes(q(dref_db, "select state from checkpoints where tick = ? and agent = ?",
                     (c, ORCH))[0][0])
        eng = parse_state(st)["engine"]
        db = os.path.join(TMP, "debate-cut%d.db" % c)
        cut_after(dref_db, db, c + 1)
        rr = resume(db)
        m = RESUMED.search(rr.stdout)
        if rr.returncode == 0 and m and int(m.group(1)) == c and int(m.group(2)) == 1 \
                and eng and digest_of(rr.stdout) == ddig and rows(db) == drows:
            ok("debate cut after tick %d: resumed from checkpoint %d with %s in the engine, "
               "re-executed 1 tick: the uninterrupted digest and events" % (c + 1, c, [e[:4] for e in eng]))
        else:
            bad("debate cut after tick %d: exit %d, engine %s, %s" % (c + 1, rr.returncode, eng,
                                                                   (rr.stdout + rr.stderr)[-400:]))

print("resume_ckpt: %s" % ("all passed" if fails == 0 else "%d failures" % fails))
sys.exit(1 if fails else 0)
PY
