#!/usr/bin/env bash
# journal_kill.sh — kill -9 at 20 points spread over a run, with the journal
# written by its writer thread (group commit), then `cohort resume`
# (docs/orchestrator.md, "Durability").  For every kill point:
#   - what the run printed before the kill (its transcript: emitted lines,
#     which `cohort run` prints only once their tick is durable) is, byte for
#     byte, a prefix of the killed journal's transcript: no printed line was
#     lost (the last line may be cut short by the kill itself: see below);
#   - the killed journal verifies (`inspect --verify`);
#   - `cohort resume` ends with the uninterrupted run's digest, and the
#     resumed journal's events (seq, tick, kind, source, target, payload,
#     chain) are exactly the uninterrupted run's: none lost, none duplicated;
#   - resume restores the latest checkpoint at or before the journal's last
#     tick L (T = L - L mod K, K = checkpoint_every: wasm agents only, so
#     every checkpoint tick can be resumed from) and re-executes only the
#     ticks after it: it prints "resumed from checkpoint at tick T,
#     re-executed N ticks" with N = L - T < K (before the first checkpoint:
#     from tick 0, N = L + 1 <= K).
# Kill points are chosen by progress, never by time: the driver waits until
# the journal has committed tick P (or the run ended), then sends SIGKILL.
# At least 15 of the 20 kills must land mid-run (a loaded machine may let a
# run finish first; those still check the complete journal).
set -u
BIN=${COH_BIN:?} BUILD=${COH_BUILD_DIR:?}
PY=${COH_PYTHON:-/usr/bin/python3}
A="$BUILD/agents"
CACHE="$BUILD/test-module-cache"
TICKS=${KILL_TICKS:-600}
K=100
N=${KILL_AGENTS:-16}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# N counters, each sent one message per tick (scenario messages), an echo
# pair bouncing from tick 1 on, and checkpoints every 100 ticks.
{
  echo "name: kill"
  echo "seed: 11"
  echo "stop: {max_ticks: $((TICKS + 2)), quiescence: true}"
  echo "checkpoint_every: $K"
  echo "agents:"
  echo "  - {id: c, module: $A/counter.wasm, count: $N, inbox: 4}"
  echo "  - {id: e, module: $A/echo.wasm, count: 2, inbox: 4}"
  echo "messages:"
  echo "  - {from: e-1, to: e-0, body: \"ping\"}"
  for t in $(seq 1 "$TICKS"); do
    for k in $(seq 0 $((N - 1))); do echo "  - {to: c-$k, body: \"$t\", tick: $t}"; done
  done
} >"$tmp/kill.yaml"

"$BIN" run "$tmp/kill.yaml" --journal "$tmp/ref.db" --cache-dir "$CACHE" --quiet >"$tmp/ref.out" 2>&1 || {
  echo "FAIL: reference run: $(cat "$tmp/ref.out")"
  exit 1
}

"$PY" - "$BIN" "$CACHE" "$tmp" "$TICKS" "$K" <<'PY'
import os, re, signal, sqlite3, subprocess, sys, time
sys.path.insert(0, os.path.join(os.environ["COH_SOURCE_DIR"], "tests"))
import journal_rechain as jr

BIN, CACHE, TMP, TICKS, K = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
RESUMED = re.compile(r"^resumed from checkpoint at tick (\d+), re-executed (\d+) ticks$", re.M)
FROM0 = re.compile(r"^resumed from tick 0 \((.*)\), re-executed (\d+) ticks$", re.M)
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

def rows(db):
    c = sqlite3.connect("file:%s?mode=ro" % db, uri=True)
    # an event's chain is its tick's events record (since format 4)
    ech = dict(c.execute("select tick, events_chain from ticks"))
    r = [(e.seq, e.tick, e.kind, e.source, e.target, e.payload, ech[e.tick])
         for e in jr.events(c)]
    c.close()
    return r

def transcript(db):
    """The journal's events as `cohort run` prints them (print_event: emits
    and traps, the payload up to a NUL as printf's %.*s), as bytes."""
    c = sqlite3.connect("file:%s?mode=ro" % db, uri=True)
    r = [(e.tick, e.kind, e.source, e.payload) for e in jr.events(c)
         if e.kind in ("emit", "trap")]
    c.close()
    return [b"[%d] %s%s %s\n" % (t, s.encode(), b":" if k == "emit" else b" TRAPPED:",
                                  bytes(p).split(b"\0")[0]) for t, k, s, p in r]

def printed_bytes(path):
    """What the run wrote to stdout before its summary ("--"): its
    transcript, possibly ending in a line cut short by the kill."""
    raw = open(path, "rb").read()
    end = raw.find(b"\n--\n")
    if raw.startswith(b"--\n"):
        end = 0
    elif end >= 0:
        end += 1
    return raw if end < 0 else raw[:end]

def last_tick(db):
    try:
        c = sqlite3.connect("file:%s?mode=ro" % db, uri=True, timeout=0.1)
        t = c.execute("select max(tick) from ticks").fetchone()[0]
        c.close()
        return -1 if t is None else t
    except sqlite3.Error:
        return -1

ref = os.path.join(TMP, "ref.db")
ref_out = open(os.path.join(TMP, "ref.out")).read()
dref = digest_of(ref_out)
ref_rows = rows(ref)
if not dref or len(ref_rows) < TICKS:
    bad("reference run: digest %r, %d events" % (dref, len(ref_rows)))
    sys.exit(1)
ok("reference run: %d events, digest %s" % (len(ref_rows), dref))

points = [TICKS * k // 21 for k in range(1, 21)]
mid = 0
for p in points:
    db = os.path.join(TMP, "k%d.db" % p)
    out = os.path.join(TMP, "k%d.out" % p)
    with open(out, "w") as f:
        proc = subprocess.Popen([BIN, "run", os.path.join(TMP, "kill.yaml"), "--journal", db,
                                 "--cache-dir", CACHE], stdout=f, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while proc.poll() is None and time.time() < deadline:
        if os.path.exists(db) and last_tick(db) >= p:
            break
        time.sleep(0.002)
    killed = proc.poll() is None
    if killed:
        proc.send_signal(signal.SIGKILL)
    proc.wait()
    if not os.path.exists(db):
        bad("kill at tick %d: no journal" % p)
        continue
    at = last_tick(db)
    # What was printed is a prefix of what is durable: the run prints a line
    # only once its tick is durable.  Compared as bytes: kill -9 can cut the
    # last line short, because write(2) to a file copies page by page and
    # stops at a page boundary once the signal is pending (seen under load:
    # a transcript of 13,451,264 bytes, 3,284 pages, ending mid-line), so
    # that line is only a prefix of its durable line; every line before it
    # is whole and must match.
    printed = printed_bytes(out)
    lines = transcript(db)
    durable = b"".join(lines)
    whole = printed.count(b"\n")
    cut = len(printed) - (printed.rfind(b"\n") + 1)
    if durable.startswith(printed):
        ok("kill at tick %d (journal at %d): %d printed lines%s, all in the journal (%d lines)"
           % (p, at, whole, " and %d bytes of the next (cut by the kill)" % cut if cut else "",
              len(lines)))
    else:
        plines = printed.split(b"\n")
        k = 0
        while k < len(plines) and k < len(lines) and plines[k] + b"\n" == lines[k]:
            k += 1
        bad("kill at tick %d: what was printed is not a prefix of the journal's transcript "
            "(%d printed lines, %d durable); first difference in line %d: printed %r, "
            "journal %r" % (p, whole, len(lines), k + 1,
                            plines[k][:200] if k < len(plines) else b"",
                            lines[k][:200] if k < len(lines) else b"(none)"))
    v = subprocess.run([BIN, "inspect", db, "--verify"], capture_output=True, text=True)
    if v.returncode != 0:
        bad("kill at tick %d: the journal does not verify: %s" % (p, v.stdout + v.stderr))
        continue
    r = subprocess.run([BIN, "resume", db, "--cache-dir", CACHE, "--quiet"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        bad("kill at tick %d: resume exit %d: %s" % (p, r.returncode, r.stdout + r.stderr))
        continue
    if "nothing to resume" in r.stdout:
        got = None
        for l in subprocess.run([BIN, "inspect", db, "--digest"], capture_output=True,
                                text=True).stdout.split():
            if len(l) == 64:
                got = l
    else:
        got = digest_of(r.stdout)
        if killed and at < TICKS:
            mid += 1
        m, m0 = RESUMED.search(r.stdout), FROM0.search(r.stdout)
        want = at - at % K
        if at >= K and m and int(m.group(1)) == want and int(m.group(2)) == at - want < K:
            ok("kill at tick %d: resumed from checkpoint at tick %d, re-executed %d ticks (< %d)"
               % (p, want, at - want, K))
        elif at < K and m0 and int(m0.group(2)) == at + 1 <= K:
            ok("kill at tick %d: before the first checkpoint, re-executed %d ticks" % (p, at + 1))
        else:
            bad("kill at tick %d (journal at %d): want a resume from tick %d re-executing %d "
                "ticks, got: %s" % (p, at, want, at - want, r.stdout[:300]))
    if got != dref:
        bad("kill at tick %d: digest %s, want %s" % (p, got, dref))
    elif rows(db) != ref_rows:
        bad("kill at tick %d: the resumed journal's events differ from the uninterrupted run's"
            % p)
    else:
        ok("kill at tick %d + resume: same digest, the same %d events (none lost or duplicated)"
           % (p, len(ref_rows)))
    for sfx in ("", "-wal", "-shm"):
        try:
            os.unlink(db + sfx)
        except OSError:
            pass
if mid >= 15:
    ok("%d of 20 kills landed mid-run and were resumed" % mid)
else:
    bad("only %d of 20 kills landed mid-run (want >= 15)" % mid)
print("journal_kill: %s" % ("all passed" if fails == 0 else "%d failures" % fails))
sys.exit(1 if fails else 0)
PY
