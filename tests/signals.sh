#!/usr/bin/env bash
# signals.sh — `cohort run` and `cohort resume` interrupted by SIGINT, SIGTERM,
# a second signal and a closed stdout.  Each case waits for a condition (a
# line of output, a tick committed in the journal, the run blocked writing
# its stdout, the dashboard saying paused), never for a fixed time, then
# checks: the exit status (130 SIGINT, 143 SIGTERM, 141 closed stdout), the
# message "interrupted at tick N; continue with: cohort resume FILE" with N
# the journal's last tick + 1, that `inspect --verify` accepts the journal,
# and that `cohort resume` then ends with the digest of an uninterrupted run.
set -u
BIN=${COH_BIN:?} BUILD=${COH_BUILD_DIR:?} FIX=${COH_FIXTURES:?}
PY=${COH_PYTHON:-/usr/bin/python3}
A="$BUILD/agents"
CACHE="$BUILD/test-module-cache"
tmp=$(mktemp -d)
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
  exec 7>&- 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
fails=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL: $*"; fails=$((fails+1)); }
digest_of() { sed -n 's/^digest: //p' "$1" | tail -n 1; }

# wait_until SECONDS CMD...: runs CMD until it succeeds; 1 if the deadline
# passes first.  The deadline is generous: it only matters when the
# condition never comes (a slow, loaded or sanitized build just takes longer).
wait_until() {
  local deadline=$((SECONDS + $1)); shift
  until "$@"; do
    [ $SECONDS -ge $deadline ] && return 1
    sleep 0.05
  done
}
alive() { kill -0 "$1" 2>/dev/null; }
has_line() { grep -q "$2" "$1" 2>/dev/null; }
# committed_tick DB: the journal's last committed tick (-1 if none yet)
committed_tick() {
  "$PY" - "$1" <<'PY'
import sqlite3, sys
try:
    c = sqlite3.connect("file:%s?mode=ro" % sys.argv[1], uri=True, timeout=1)
    t = c.execute("select max(tick) from ticks").fetchone()[0]
    print(-1 if t is None else t)
except sqlite3.Error:
    print(-1)
PY
}
# blocked_on_stdout PID: one of the process's threads sleeps in write(1, ...)
blocked_on_stdout() {
  local f
  for f in /proc/"$1"/task/*/syscall; do
    case "$(cat "$f" 2>/dev/null)" in "1 0x1 "*) return 0 ;; esac
  done
  ! alive "$1"
}

cat >"$tmp/long.yaml" <<YAML
name: long
seed: 3
models:
  - {name: tiny, path: $FIX/llama-tiny-plain-fp32, device: cpu, max_batch: 4, threads: 1}
stop: {max_ticks: 400}
checkpoint_every: 50
agents:
  - {id: node, module: $A/echo.wasm, count: 20, inbox: 8}
  - {id: talker, module: $A/chatter.wasm}
messages:
$(for k in $(seq 0 9); do echo "  - {from: node-$((2*k+1)), to: node-$((2*k)), body: \"ping $k\"}"; done)
  - {to: talker, body: "llm Long ago"}
  - {to: talker, body: "llm Far away", tick: 5}
YAML
RUN=("$BIN" run "$tmp/long.yaml" --cache-dir "$CACHE")
"${RUN[@]}" --journal "$tmp/ref.db" >"$tmp/ref.out" 2>"$tmp/ref.err" || bad "reference run failed: $(tail -3 "$tmp/ref.err")"
dref=$(digest_of "$tmp/ref.out")
[ -n "$dref" ] && ok "uninterrupted run: digest $dref" || bad "no reference digest"

# start_held NAME CMD...: starts CMD with its stdout going into a FIFO that
# this script reads (fd 7) and stderr in $tmp/NAME.err; sets pid.  Once the
# script stops reading, the run soon blocks writing its stdout and cannot
# reach its end: a signal sent then lands mid-run however fast or slow the
# machine is.  release: reads the rest (until the process closes its end).
start_held() {
  local name=$1; shift
  rm -f "$tmp/fifo"
  mkfifo "$tmp/fifo"
  "$@" >"$tmp/fifo" 2>"$tmp/$name.err" &
  pid=$!; pids+=($pid)
  exec 7<"$tmp/fifo"
}
# read_until PREFIX: reads the held output up to a line starting with
# PREFIX (literal); 1 if the output ends first.
read_until() {
  local line
  while IFS= read -r line <&7; do
    case "$line" in "$1"*) return 0 ;; esac
  done
  return 1
}
release() { cat <&7 >/dev/null; exec 7<&-; }

# after_interrupt NAME DB RC WANT_RC CMD: the common checks after an
# interrupted run (stderr in $tmp/NAME.err)
after_interrupt() {
  local name=$1 db=$2 rc=$3 want=$4 cmd=$5 n last
  [ "$rc" -eq "$want" ] && ok "$name: exit $rc" || bad "$name: exit $rc, expected $want: $(tail -3 "$tmp/$name.err")"
  n=$(sed -n "s/^cohort $cmd: interrupted at tick \([0-9]*\); continue with: cohort resume .*$/\1/p" "$tmp/$name.err")
  last=$(committed_tick "$db")
  if [ -n "$n" ] && grep -q "continue with: cohort resume $db\$" "$tmp/$name.err" && [ "$n" -eq $((last + 1)) ]; then
    ok "$name: says 'interrupted at tick $n; continue with: cohort resume FILE' (last committed tick $last)"
  else
    bad "$name: message '$(tail -2 "$tmp/$name.err")', last committed tick $last"
  fi
  if [ "$n" = 400 ] || [ "$last" -ge 399 ]; then bad "$name: the run had ended before the interrupt"; fi
  "$BIN" inspect "$db" --verify >"$tmp/$name.verify" 2>&1 && ok "$name: inspect --verify accepts the journal" \
    || bad "$name: verify: $(cat "$tmp/$name.verify")"
}
resume_matches() { # NAME DB
  "$BIN" resume "$2" --cache-dir "$CACHE" --quiet >"$tmp/$1.resume" 2>&1
  local rc=$? d
  d=$(digest_of "$tmp/$1.resume")
  [ $rc -eq 0 ] && [ "$d" = "$dref" ] && ok "$1: resume gives the uninterrupted digest" \
    || bad "$1: resume rc=$rc digest '$d' != '$dref': $(tail -3 "$tmp/$1.resume")"
}

# 1 and 2. one SIGINT / SIGTERM once tick 30 has been printed (emitted lines
# appear as their tick commits)
for sig in INT TERM; do
  name=sig$sig
  want=$([ $sig = INT ] && echo 130 || echo 143)
  start_held $name "${RUN[@]}" --journal "$tmp/$name.db"
  read_until "[30] " && kill -$sig $pid
  release
  wait $pid; rc=$?
  after_interrupt $name "$tmp/$name.db" $rc $want run
  resume_matches $name "$tmp/$name.db"
done

# 3. a closed stdout: `cohort run ... | head -1` stops the run cleanly
name=epipe
"${RUN[@]}" --journal "$tmp/$name.db" 2>"$tmp/$name.err" | head -n 1 >"$tmp/$name.out"
rc=${PIPESTATUS[0]}
[ -s "$tmp/$name.out" ] && ok "epipe: head printed '$(cat "$tmp/$name.out")'" || bad "epipe: nothing printed"
after_interrupt $name "$tmp/$name.db" $rc 141 run
resume_matches $name "$tmp/$name.db"

# 4. a second signal exits at once.  The run is made to block inside a
# tick: its stdout is a FIFO that this script holds open and does not read,
# so once the run sleeps in write(1, ...) it cannot reach the end of the
# tick; the first signal is noted, the second must end the process.
name=double
start_held $name "${RUN[@]}" --journal "$tmp/$name.db"
if wait_until 300 blocked_on_stdout $pid && alive $pid; then
  kill -INT $pid
  # the first signal has been delivered when it is no longer pending
  wait_until 300 eval "! grep -q '^ShdPnd:.*[2367abef]\$' /proc/$pid/status 2>/dev/null"
  kill -TERM $pid
  wait $pid; rc=$?
  [ $rc -eq 143 ] && ok "double: the second signal exits at once (143)" || bad "double: exit $rc"
  grep -q "second signal: exiting now" "$tmp/$name.err" && ok "double: says so" \
    || bad "double: stderr: $(tail -3 "$tmp/$name.err")"
  grep -q "interrupted at tick" "$tmp/$name.err" && bad "double: the run got to the end of its tick"
  "$BIN" inspect "$tmp/$name.db" --verify >"$tmp/$name.verify" 2>&1 \
    && ok "double: inspect --verify accepts the journal ($(grep verified "$tmp/$name.verify"))" \
    || bad "double: verify: $(cat "$tmp/$name.verify")"
  resume_matches $name "$tmp/$name.db"
else
  bad "double: the run never blocked on its stdout"
fi
release
wait $pid 2>/dev/null

# 5. a signal while `cohort resume` runs: it stops the same way, and a
# second resume finishes the run.  Resume prints the transcript from tick 0
# (re-executed ticks too); the signal comes once it has printed a tick
# beyond the first interruption, i.e. appended to the journal.
name=resume
start_held ${name}0 "${RUN[@]}" --journal "$tmp/$name.db"
read_until "[20] " && kill -INT $pid
release
wait $pid
first=$(committed_tick "$tmp/$name.db")
start_held $name "$BIN" resume "$tmp/$name.db" --cache-dir "$CACHE"
read_until "[$((first + 10))] " && kill -TERM $pid
release
wait $pid; rc=$?
after_interrupt $name "$tmp/$name.db" $rc 143 resume
[ "$(committed_tick "$tmp/$name.db")" -gt "$first" ] && ok "resume: appended ticks before the signal" \
  || bad "resume: no tick appended (first stop at $first)"
resume_matches $name "$tmp/$name.db"

# 6. a run paused from the dashboard sleeps waiting for a control; a signal
# still ends it, at once and cleanly
name=paused
"${RUN[@]}" --journal "$tmp/$name.db" --quiet --ui 127.0.0.1:0 >"$tmp/$name.out" 2>"$tmp/$name.err" &
pid=$!; pids+=($pid)
url=""
if wait_until 300 eval "has_line '$tmp/$name.err' 'dashboard at' || ! alive $pid"; then
  url=$(sed -n 's/^cohort run: dashboard at //p' "$tmp/$name.err")
fi
if [ -n "$url" ]; then
  "$PY" - "$url" <<'PY' >"$tmp/$name.pause" 2>&1
import json, sys, time, urllib.request
url = sys.argv[1]
req = urllib.request.Request(url + "api/control", data=b'{"control": "pause"}',
                             headers={"Content-Type": "application/json"})
deadline = time.time() + 300
while time.time() < deadline:  # 503 until the first snapshot
    try:
        urllib.request.urlopen(req, timeout=30)
        break
    except Exception:
        time.sleep(0.05)
while time.time() < deadline:
    try:
        s = json.load(urllib.request.urlopen(url + "api/snapshot", timeout=30))["run"]
    except Exception:  # 503 until the first snapshot
        s = {"paused": False}
    if s["paused"]:
        print("paused at tick", s["tick"])
        sys.exit(0)
    time.sleep(0.05)
sys.exit(1)
PY
  if [ $? -eq 0 ]; then
    ok "paused: $(cat "$tmp/$name.pause")"
    kill -INT $pid
    wait $pid; rc=$?
    after_interrupt $name "$tmp/$name.db" $rc 130 run
    resume_matches $name "$tmp/$name.db"
  else
    bad "paused: the run did not pause: $(tail -3 "$tmp/$name.pause")"
    kill -KILL $pid; wait $pid
  fi
else
  bad "paused: no dashboard: $(tail -3 "$tmp/$name.err")"
  kill -KILL $pid 2>/dev/null; wait $pid
fi

[ $fails -eq 0 ] && echo "all signal checks passed" || echo "$fails signal check(s) failed"
exit $((fails > 0))
