#!/usr/bin/env bash
# run_resume.sh — the cost of `cohort resume` after a late kill, restoring
# the latest checkpoint (the default) against re-executing every committed
# tick (`resume --full`, what resume did before checkpoints were restored).
#   bash bench/run_resume.sh [BUILD_DIR] [TICKS] [REPS] [wasm|llm]
# wasm (the default): a TICKS-tick run (16 counters fed every 10th tick, an
# echo pair bouncing every tick, checkpoint_every 100).  llm: 16 closed-loop
# LLM clients (bench/agents/llmloop.c) on the default model
# (models/shakespeare), each request 8-24 tokens, checkpoint_every 100, so
# requests are in flight at every checkpoint and a tick costs an engine
# step.  The run is killed -9 once its journal holds tick KILL_AT (env;
# default TICKS - 50; by progress, never by time); each repetition resumes a
# fresh copy of that journal both ways, alternating, and checks both reach
# the uninterrupted run's digest, and times `inspect --verify` of the same
# journal (the chain check every resume starts with).  Prints the wall
# seconds of each, the seconds until each resumed run is back past the kill
# point (its journal holds a later tick: the rest of the run is the same work
# both ways), and the ratios.
set -eu
BUILD=${1:-build-test-gcc}
TICKS=${2:-5000}
REPS=${3:-3}
KIND=${4:-wasm}
PY=${COH_PYTHON:-/usr/bin/python3}
BIN="$BUILD/cohort"
A="$(cd "$BUILD" && pwd)/agents"
SRC=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
case "$KIND" in
wasm) ;;
llm)
  clang --target=wasm32-wasi --sysroot=/usr -mexec-model=reactor -O2 -Wall -Werror \
    -I "$SRC/include" -I "$SRC/sdk" "$SRC/bench/agents/llmloop.c" -o "$tmp/llmloop.wasm"
  ;;
*) echo "run_resume.sh: the workload is wasm or llm, not '$KIND'" >&2; exit 2 ;;
esac
if [ "$KIND" = llm ]; then
{
  echo "name: resume-bench-llm"
  echo "seed: 3"
  echo "models:"
  echo "  - {name: m, path: $SRC/models/shakespeare, device: cpu, max_batch: 16, threads: 2}"
  echo "stop: {max_ticks: $TICKS}"
  echo "checkpoint_every: 100"
  echo "agents:"
  echo "  - {id: c, module: $tmp/llmloop.wasm, count: 16,"
  echo "     config: {rounds: 100000, min_tokens: 8, max_tokens: 24}}"
  echo "messages:"
  for k in $(seq 0 15); do echo "  - {to: c-$k, body: \"$k Once upon a time, in a quiet village by the sea,\"}"; done
} >"$tmp/r.yaml"
else
{
  echo "name: resume-bench"
  echo "seed: 3"
  echo "stop: {max_ticks: $TICKS}"
  echo "checkpoint_every: 100"
  echo "agents:"
  echo "  - {id: c, module: $A/counter.wasm, count: 16, inbox: 4}"
  echo "  - {id: e, module: $A/echo.wasm, count: 2, inbox: 4}"
  echo "messages:"
  echo "  - {from: e-1, to: e-0, body: \"ping\"}"
  for t in $(seq 10 10 "$TICKS"); do
    for k in $(seq 0 15); do echo "  - {to: c-$k, body: \"$t\", tick: $t}"; done
  done
} >"$tmp/r.yaml"
fi
"$BIN" run "$tmp/r.yaml" --journal "$tmp/ref.db" --cache-dir "$tmp/cache" --quiet >"$tmp/ref.out"
"$PY" - "$BIN" "$tmp" "$TICKS" "$REPS" "${KILL_AT:-$((TICKS - 50))}" <<'PY'
import os, shutil, signal, sqlite3, subprocess, sys, time
BIN, T, TICKS, REPS, KILL_AT = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
dig = lambda s: [l[8:] for l in s.splitlines() if l.startswith("digest: ")][-1]
dref = dig(open(T + "/ref.out").read())
db = T + "/k.db"
def last(path=None):
    try:
        c = sqlite3.connect("file:%s?mode=ro" % (path or db), uri=True, timeout=0.1)
        t = c.execute("select max(tick) from ticks").fetchone()[0]
        c.close()
        return -1 if t is None else t
    except sqlite3.Error:
        return -1
p = subprocess.Popen([BIN, "run", T + "/r.yaml", "--journal", db, "--cache-dir", T + "/cache",
                      "--quiet"], stdout=subprocess.DEVNULL)
while p.poll() is None and not (os.path.exists(db) and last() >= KILL_AT):
    time.sleep(0.002)
p.send_signal(signal.SIGKILL)
p.wait()
at = last()
print("killed with the journal at tick %d of %d" % (at, TICKS))
res = {"checkpoint": [], "full": [], "verify": []}
# catch-up: from the command's start until the journal holds a tick past the
# kill point (the resumed run is back where the killed one stopped; what
# follows is the rest of the run, the same work both ways)
catch = {"checkpoint": [], "full": []}
for rep in range(REPS):
    for mode in ("checkpoint", "full", "verify") if rep % 2 == 0 else ("verify", "full", "checkpoint"):
        d = T + "/c.db"
        for sfx in ("", "-wal", "-shm"):
            if os.path.exists(d + sfx): os.unlink(d + sfx)
            if os.path.exists(db + sfx): shutil.copy(db + sfx, d + sfx)
        cmd = [BIN, "resume", d, "--cache-dir", T + "/cache", "--quiet"] + (["--full"] if mode == "full" else [])
        if mode == "verify":  # the chain check every resume starts with (linear in the journal)
            cmd = [BIN, "inspect", d, "--verify"]
        t0 = time.time()
        if mode == "verify":
            r = subprocess.run(cmd, capture_output=True, text=True)
        else:
            with open(T + "/resume.out", "w") as out:
                q = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, text=True)
                tc = None
                while q.poll() is None:
                    if tc is None and last(d) > at:
                        tc = time.time() - t0
                    time.sleep(0.002)
            if tc is None:
                tc = time.time() - t0
            catch[mode].append(tc)
            r = subprocess.CompletedProcess(cmd, q.returncode, open(T + "/resume.out").read(), "")
        dt = time.time() - t0
        if mode == "verify":
            if r.returncode != 0:
                sys.exit("verify: %s" % (r.stdout + r.stderr))
            res[mode].append(dt)
            print("rep %d %-10s %6.2f s" % (rep, mode, dt))
            continue
        if r.returncode != 0 or dig(r.stdout) != dref:
            sys.exit("resume %s: exit %d, %s" % (mode, r.returncode, r.stdout + r.stderr))
        line = [l for l in r.stdout.splitlines() if l.startswith("resumed")][0]
        res[mode].append(dt)
        print("rep %d %-10s %6.2f s (back past tick %d after %.2f s)  %s"
              % (rep, mode, dt, at, catch[mode][-1], line))
mc, mf, mv = min(res["checkpoint"]), min(res["full"]), min(res["verify"])
cc, cf = min(catch["checkpoint"]), min(catch["full"])
print("best of %d: back past the kill point: resume %.2f s, resume --full %.2f s (%.1f%%, %.1fx); "
      "whole command: %.2f s vs %.2f s (ratio %.1fx); verify alone %.2f s"
      % (REPS, cc, cf, 100 * cc / cf, cf / cc, mc, mf, mf / mc, mv))
PY
