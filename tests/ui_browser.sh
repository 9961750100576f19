#!/usr/bin/env bash
# ui_browser.sh — the monitor dashboard in a real browser: Debian's Chromium,
# headless, driven by playwright-core (tests/ui, pinned in package-lock.json,
# installed by scripts/setup.sh with `npm ci --ignore-scripts`).
#
# Scenario "recorded": a swarm run's journal served by
# `cohort inspect RUN.db --ui 127.0.0.1:0`; the page must show 100 agents, a
# transcript, the counters and tick chart, say that a recorded run has no
# live timings, and /metrics and /trace must answer.  The screenshot goes to
# $COH_BUILD_DIR/artifacts/dashboard.png.  Then SIGTERM must stop the server
# cleanly (exit 0).
#
# Scenario "live": `cohort run live.yaml --ui 127.0.0.1:0`, 50 echo agents
# bouncing messages in pairs and a chatter agent asking the tiny model, with
# max_ticks far beyond the test's length.  The page must show the agents and
# the model, the tick and event counters must advance over the WebSocket,
# Pause must hold the tick (server snapshot too), Step must run exactly one
# tick, Resume must go on; the screenshot of the live dashboard goes to
# $COH_BUILD_DIR/artifacts/dashboard-live.png; Stop (clicked) must end the
# run with `stopped: stopped` in its summary, and SIGTERM must then end the
# process with exit 0.
#
# Flood: the same kind of scenario with a fixed max_ticks runs once headless
# and once with --ui while tests/ui/flood.py throws garbage, truncated and
# oversized requests, bad WebSocket handshakes and WebSockets dropped
# mid-frame at the server for the whole run; the digests must be equal and
# the server must still answer afterwards.
set -u
BIN=${COH_BIN:?} BUILD=${COH_BUILD_DIR:?} SRC=${COH_SOURCE_DIR:?} FIX=${COH_FIXTURES:-}
PY=${COH_PYTHON:-/usr/bin/python3}
UI="$SRC/tests/ui"
fails=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL: $*"; fails=$((fails+1)); }
# wait_until SECONDS CMD...: runs CMD until it succeeds; 1 if the deadline
# passes first.  Every wait here is for a condition; the deadline is
# generous because it only matters when the condition never comes.
wait_until() {
  local deadline=$((SECONDS + $1)); shift
  until "$@"; do
    [ $SECONDS -ge $deadline ] && return 1
    sleep 0.05
  done
}
alive() { kill -0 "$1" 2>/dev/null; }

if [ ! -x /usr/bin/chromium ]; then
  echo "FAIL: /usr/bin/chromium is missing (Debian package chromium; scripts/setup.sh installs it)"
  exit 1
fi
if [ ! -f "$UI/node_modules/playwright-core/package.json" ]; then
  echo "FAIL: playwright-core is not installed in tests/ui" \
       "(run: cd tests/ui && npm ci --ignore-scripts; scripts/setup.sh does it)"
  exit 1
fi
if [ ! -f "$BUILD/agents/echo.wasm" ]; then
  echo "FAIL: $BUILD/agents/echo.wasm is missing (the swarm scenario's agent)"
  exit 1
fi

tmp=$(mktemp -d)
server=""
cleanup() {
  [ -n "$server" ] && kill -TERM "$server" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

# The swarm scenario, pointed at this build's agents.
sed "s|module: ../build/agents/|module: $BUILD/agents/|" "$SRC/examples/swarm.yaml" >"$tmp/swarm.yaml"
if "$BIN" run "$tmp/swarm.yaml" --journal "$tmp/swarm.db" >"$tmp/run.log" 2>&1; then
  ok "swarm run journaled"
else
  bad "swarm run failed: $(tail -3 "$tmp/run.log")"
  exit 1
fi

# bad --ui arguments are usage errors (exit 2), before anything is served
"$BIN" inspect "$tmp/swarm.db" --ui nowhere:1 >/dev/null 2>"$tmp/err.txt"
[ $? -eq 2 ] && grep -q "nowhere" "$tmp/err.txt" && ok "inspect --ui bad address: exit 2" \
  || bad "inspect --ui bad address: $(cat "$tmp/err.txt")"
"$BIN" inspect "$tmp/swarm.db" --ui 127.0.0.1:0 --json >/dev/null 2>&1
[ $? -eq 2 ] && ok "inspect --ui with --json: exit 2" || bad "inspect --ui with --json was accepted"

# serve it on an ephemeral port; the URL is printed on start
"$BIN" inspect "$tmp/swarm.db" --ui 127.0.0.1:0 >"$tmp/ui.log" 2>&1 &
server=$!
wait_until 120 eval "grep -q '^dashboard: ' '$tmp/ui.log' || ! alive $server"
url=$(sed -n 's/^dashboard: //p' "$tmp/ui.log")
if [ -z "$url" ]; then
  bad "inspect --ui did not start: $(cat "$tmp/ui.log")"
  exit 1
fi
ok "inspect --ui serving at $url"

mkdir -p "$BUILD/artifacts"
rm -f "$BUILD/artifacts/dashboard.png"
if (cd "$UI" && node browser_test.mjs --url "$url" --scenario recorded --agents 100 \
      --screenshot "$BUILD/artifacts/dashboard.png"); then
  ok "browser checks (recorded run)"
else
  bad "browser checks (recorded run)"
fi
[ -s "$BUILD/artifacts/dashboard.png" ] && ok "screenshot saved: $BUILD/artifacts/dashboard.png" \
  || bad "no screenshot"

kill -TERM "$server"
if wait "$server"; then ok "inspect --ui exits 0 on SIGTERM"; else bad "inspect --ui exit status $? on SIGTERM"; fi
server=""

# ---- live: cohort run --ui -----------------------------------------------------

# write_scenario FILE MAX_TICKS WITH_LLM: 50 echo agents in 25 ping-pong pairs
# (+ one chatter agent asking the tiny model every 40 ticks when WITH_LLM)
write_scenario() {
  local f=$1 max=$2 llm=$3 k
  {
    echo "name: live"
    echo "seed: 11"
    if [ "$llm" = 1 ]; then
      echo "models:"
      echo "  - {name: tiny, path: $FIX/llama-tiny-plain-fp32, device: cpu, max_batch: 2, threads: 1}"
    fi
    echo "policy: {kind: round_robin, quantum: 1}"
    echo "stop: {max_ticks: $max}"
    echo "agents:"
    echo "  - {id: node, module: $BUILD/agents/echo.wasm, count: 50, fuel: 1000000, memory_mb: 4, inbox: 8}"
    [ "$llm" = 1 ] && echo "  - {id: talker, module: $BUILD/agents/chatter.wasm}"
    echo "messages:"
    for k in $(seq 0 24); do
      echo "  - {from: node-$((2*k+1)), to: node-$((2*k)), body: \"ping $k\"}"
    done
    if [ "$llm" = 1 ]; then
      for k in $(seq 0 40 4000); do echo "  - {to: talker, body: \"llm Once upon a time $k\", tick: $k}"; done
    fi
  } >"$f"
}

# start_run NAME ARGS...: starts `cohort run ARGS` in the background with its
# stdout in $tmp/NAME.out and stderr in $tmp/NAME.err; sets pid and url.
start_run() {
  local name=$1; shift
  "$BIN" run "$@" >"$tmp/$name.out" 2>"$tmp/$name.err" &
  pid=$!
  server=$pid
  wait_until 120 eval "grep -q '^cohort run: dashboard at ' '$tmp/$name.err' || ! alive $pid"
  url=$(sed -n 's/^cohort run: dashboard at //p' "$tmp/$name.err")
}

if [ -z "$FIX" ] || [ ! -d "$FIX/llama-tiny-plain-fp32" ] || [ ! -f "$BUILD/agents/chatter.wasm" ]; then
  bad "live scenario needs \$COH_FIXTURES/llama-tiny-plain-fp32 and $BUILD/agents/chatter.wasm" \
      "(tools/mkfixture.py --suite tests --out build/fixtures)"
else
  write_scenario "$tmp/live.yaml" 1000000 1
  start_run live "$tmp/live.yaml" --journal "$tmp/live.db" --quiet --ui 127.0.0.1:0 \
    --cache-dir "$BUILD/test-module-cache"
  if [ -z "$url" ]; then
    bad "run --ui did not start: $(cat "$tmp/live.err")"
  else
    ok "run --ui serving at $url"
    # open the page once the run has published its first snapshot (tick 0;
    # before that /api/snapshot answers 503, which Chromium logs as a console
    # error even though the page then gets the snapshot over the WebSocket)
    "$PY" - "$url" <<'PY'
import sys, time, urllib.request
deadline = time.time() + 120
while time.time() < deadline:
    try:
        urllib.request.urlopen(sys.argv[1] + "api/snapshot", timeout=30)
        break
    except Exception:
        time.sleep(0.05)
PY
    rm -f "$BUILD/artifacts/dashboard-live.png"
    if (cd "$UI" && node browser_test.mjs --url "$url" --scenario live --agents 51 \
          --screenshot "$BUILD/artifacts/dashboard-live.png"); then
      ok "browser checks (live run)"
    else
      bad "browser checks (live run)"
    fi
    [ -s "$BUILD/artifacts/dashboard-live.png" ] && ok "screenshot saved: $BUILD/artifacts/dashboard-live.png" \
      || bad "no live screenshot"
    # Stop was clicked: the summary is printed, the dashboard lingers
    wait_until 120 eval "grep -q '^digest: ' '$tmp/live.out' || ! alive $pid"
    if grep -q '^ticks: [0-9]* (stopped: stopped)$' "$tmp/live.out" && grep -q '^digest: [0-9a-f]\{64\}$' "$tmp/live.out"; then
      ok "run stopped from the dashboard: $(grep '^ticks:' "$tmp/live.out")"
    else
      bad "no 'stopped: stopped' summary: $(cat "$tmp/live.out" "$tmp/live.err" | tail -8)"
    fi
    kill -0 "$pid" 2>/dev/null && ok "the dashboard stays up after the run" || bad "run --ui exited after stop"
    kill -TERM "$pid"
    if wait "$pid"; then ok "run --ui exits 0 on SIGTERM"; else
      bad "run --ui exit status $? on SIGTERM (stderr kept in artifacts/live-run.err)"
      mkdir -p "$BUILD/artifacts" && cp "$tmp/live.err" "$BUILD/artifacts/live-run.err"
      grep -A12 "leak of\|ERROR" "$tmp/live.err" | head -60
    fi
    server=""
  fi
fi

# ---- flood: a run's digest does not depend on what the server is sent ----------

write_scenario "$tmp/flood.yaml" 250 0
if "$BIN" run "$tmp/flood.yaml" --journal "$tmp/headless.db" --quiet >"$tmp/headless.out" 2>"$tmp/headless.err"; then
  d_headless=$(sed -n 's/^digest: //p' "$tmp/headless.out")
  start_run flood "$tmp/flood.yaml" --journal "$tmp/flood.db" --quiet --ui 127.0.0.1:0
  if [ -z "$url" ]; then
    bad "flood run --ui did not start: $(cat "$tmp/flood.err")"
  else
    port=$(echo "$url" | sed -n 's|^http://127.0.0.1:\([0-9]*\)/.*|\1|p')
    # the flood lasts until the summary is out (the process itself lingers)
    ( wait_until 600 eval "grep -q '^digest: ' '$tmp/flood.out' || ! alive $pid"
      touch "$tmp/flood.done" ) &
    watcher=$!
    "$PY" "$SRC/tests/ui/flood.py" 127.0.0.1 "$port" "$watcher" --seconds 120 >"$tmp/flood.log" 2>&1
    frc=$?
    wait "$watcher"
    d_ui=$(sed -n 's/^digest: //p' "$tmp/flood.out")
    if [ $frc -eq 0 ] && grep -q '^flood: [1-9]' "$tmp/flood.log"; then ok "$(cat "$tmp/flood.log")"
    else bad "flood did not run: $(tail -5 "$tmp/flood.log")"; fi
    grep -q '^ticks: 250 (stopped: max_ticks)$' "$tmp/flood.out" && ok "flooded run finished its 250 ticks" \
      || bad "flooded run: $(cat "$tmp/flood.out" | tail -6)"
    if [ -n "$d_ui" ] && [ "$d_ui" = "$d_headless" ]; then ok "digest under the flood = headless ($d_ui)"
    else bad "digest under the flood '$d_ui' != headless '$d_headless'"; fi
    # the server still answers, with the finished run's snapshot
    snap=$("$PY" - "$port" <<'PY'
import json, sys, urllib.request
s = json.load(urllib.request.urlopen("http://127.0.0.1:%s/api/snapshot" % sys.argv[1], timeout=60))
print(s["run"]["tick"], s["run"]["finished"], s["run"]["digest"])
PY
)
    [ "$snap" = "250 True $d_headless" ] && ok "server still answers after the flood: $snap" \
      || bad "snapshot after the flood: '$snap'"
    kill -TERM "$pid"
    if wait "$pid"; then ok "flooded run --ui exits 0 on SIGTERM"; else bad "flooded run --ui exit status $? on SIGTERM"; fi
    server=""
  fi
else
  bad "headless flood scenario failed: $(tail -3 "$tmp/headless.err")"
fi

[ $fails -eq 0 ] && echo "all ui_browser checks passed" || echo "$fails ui_browser check(s) failed"
exit $((fails > 0))
