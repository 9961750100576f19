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
set -u
BIN=${COH_BIN:?} BUILD=${COH_BUILD_DIR:?} SRC=${COH_SOURCE_DIR:?}
UI="$SRC/tests/ui"
fails=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL: $*"; fails=$((fails+1)); }

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
url=""
for _ in $(seq 1 100); do
  url=$(sed -n 's/^dashboard: //p' "$tmp/ui.log")
  [ -n "$url" ] && break
  kill -0 "$server" 2>/dev/null || break
  sleep 0.1
done
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

[ $fails -eq 0 ] && echo "all ui_browser checks passed" || echo "$fails ui_browser check(s) failed"
exit $((fails > 0))
