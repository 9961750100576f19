#!/usr/bin/env bash
# bench/run_ui.sh — what the monitor costs a run (issue 5, item 5): the same
# scenario run headless and with `--ui` plus a connected browser (Debian's
# Chromium, headless, through playwright-core, the page open on the
# dashboard for the whole run), in alternating rounds (ABBA: odd rounds
# headless first, even rounds --ui first, against drift on a shared box).
#
#   bench/run_ui.sh
#
# `cpu` is the cohort process's user+sys CPU time; for --ui runs the
# browser's own CPU time is printed too: on a 2-core machine it competes
# with the run's worker threads for the same cores.
#
# Environment (defaults in brackets):
#   AGENTS [200]      echo agents, in ping-pong pairs (no LLM)
#   TICKS [1200]      max_ticks (fixed: every run does the same work)
#   ROUNDS [4]        rounds; each runs both modes once
#   BUILD [build]     where the cohort binary and agents/echo.wasm are
#   JDIR [/dev/shm]   where the journals go (tmpfs: disk flushes are the
#                     noisiest part of a run here and are not what is measured)
#   OUT [BUILD/results-ui]  raw outputs and summary.txt
#   PAGE [1]          0: no browser (--ui with no client), to separate the
#                     server's and snapshots' cost from the browser's
#
# Prints per run: events, wall (from the run's summary), events/s, the
# process's user+sys CPU seconds; then per round the throughput ratio
# ui/headless, and overall the median ratio and the ratio of the best runs
# (interference only ever slows a run).  The target: with --ui within 5 %
# of headless (ratio >= 0.95).  The digests of all runs must be equal.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
AGENTS=${AGENTS:-200} TICKS=${TICKS:-1200} ROUNDS=${ROUNDS:-4}
BUILD=${BUILD:-build} JDIR=${JDIR:-/dev/shm} PAGE=${PAGE:-1}
OUT=${OUT:-$BUILD/results-ui}
BIN="$ROOT/$BUILD/cohort"
[ -x "$BIN" ] && [ -f "$BUILD/agents/echo.wasm" ] || {
  echo "run_ui.sh: build first: cmake -S . -B $BUILD -DCMAKE_BUILD_TYPE=RelWithDebInfo && cmake --build $BUILD -j2" >&2
  exit 1
}
[ -f tests/ui/node_modules/playwright-core/package.json ] || {
  echo "run_ui.sh: playwright-core missing: (cd tests/ui && npm ci --ignore-scripts)" >&2
  exit 1
}
[ -x /usr/bin/chromium ] || { echo "run_ui.sh: /usr/bin/chromium missing" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "run_ui.sh: /usr/bin/time missing (Debian package time)" >&2; exit 1; }

mkdir -p "$OUT"
tmp=$(mktemp -d "$JDIR/cohort-bench-ui.XXXXXX")
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

scen="$tmp/bench-ui.yaml"
{
  echo "name: bench-ui"
  echo "seed: 5"
  echo "policy: {kind: round_robin, quantum: 1}"
  echo "stop: {max_ticks: $TICKS}"
  echo "agents:"
  echo "  - {id: node, module: $ROOT/$BUILD/agents/echo.wasm, count: $AGENTS, fuel: 1000000, memory_mb: 4, inbox: 8}"
  echo "messages:"
  for k in $(seq 0 $((AGENTS / 2 - 1))); do
    echo "  - {from: node-$((2*k+1)), to: node-$((2*k)), body: \"ping $k\"}"
  done
} >"$scen"

summary="$OUT/summary.txt"
{
  echo "bench/run_ui.sh: $(date -u '+%Y-%m-%d %H:%M:%S UTC'), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
  echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), load average $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "scenario: $AGENTS echo agents in pairs, $TICKS ticks, journals in $JDIR, $ROUNDS rounds (ABBA)"
  [ "$PAGE" = 1 ] || echo "PAGE=0: --ui runs have no browser connected"
} | tee "$summary"

# field FILE: events wall digest from a run's summary
parse() {
  local ev wall dg
  ev=$(sed -n 's/^events: \([0-9]*\),.*/\1/p' "$1")
  wall=$(sed -n 's/^wall: \([0-9.]*\) s$/\1/p' "$1")
  dg=$(sed -n 's/^digest: //p' "$1")
  echo "$ev $wall $dg"
}

# run_headless NAME
run_headless() {
  local n=$1
  /usr/bin/time -f '%U %S' -o "$OUT/$n.time" \
    "$BIN" run "$scen" --journal "$tmp/$n.db" --quiet >"$OUT/$n.out" 2>"$OUT/$n.err"
  rm -f "$tmp/$n.db"*
}

# run_ui NAME: the browser starts first (not inside the measured run), then
# the run; the page opens the URL as soon as it is printed and stays until
# the run finishes; then a stop control ends the lingering server.
run_ui() {
  local n=$1 url="" page="" port
  rm -f "$tmp/url"
  if [ "$PAGE" = 1 ]; then
  # the browser's CPU time (node + Chromium, start-up included) goes to .ptime
  /usr/bin/time -f '%U %S' -o "$OUT/$n.ptime" \
    node bench/ui_page.mjs --url-file "$tmp/url" >"$OUT/$n.page" 2>&1 &
  page=$!
  pids+=("$page")
  for _ in $(seq 1 300); do grep -q '^ready' "$OUT/$n.page" && break; sleep 0.1; done
  grep -q '^ready' "$OUT/$n.page" || { echo "browser did not start: $(cat "$OUT/$n.page")" >&2; return 1; }
  fi
  /usr/bin/time -f '%U %S' -o "$OUT/$n.time" \
    "$BIN" run "$scen" --journal "$tmp/$n.db" --quiet --ui 127.0.0.1:0 >"$OUT/$n.out" 2>"$OUT/$n.err" &
  pids+=("$!")
  for _ in $(seq 1 500); do
    url=$(sed -n 's/^cohort run: dashboard at //p' "$OUT/$n.err")
    [ -n "$url" ] && break
    sleep 0.01
  done
  [ -n "$url" ] || { echo "run --ui did not start: $(cat "$OUT/$n.err")" >&2; return 1; }
  echo "$url" >"$tmp/url.tmp" && mv "$tmp/url.tmp" "$tmp/url"
  if [ -n "$page" ]; then
    wait "$page" || { echo "page failed: $(cat "$OUT/$n.page")" >&2; return 1; }
  fi
  for _ in $(seq 1 600); do grep -q '^digest: ' "$OUT/$n.out" && break; sleep 0.1; done
  port=$(echo "$url" | sed -n 's|^http://127.0.0.1:\([0-9]*\)/.*|\1|p')
  /usr/bin/python3 -c 'import sys, urllib.request as u; u.urlopen(u.Request(
      "http://127.0.0.1:%s/api/control" % sys.argv[1], data=b"{\"control\":\"stop\"}",
      headers={"Content-Type": "application/json"}), timeout=5)' "$port"
  wait "${pids[-1]}"
  rm -f "$tmp/$n.db"*
}

report() { # NAME MODE
  local n=$1 ev wall dg cpu
  read -r ev wall dg <<<"$(parse "$OUT/$n.out")"
  cpu=$(awk '{printf "%.2f", $1 + $2}' "$OUT/$n.time")
  awk -v n="$n" -v ev="$ev" -v w="$wall" -v c="$cpu" -v d="${dg:0:12}" \
    'BEGIN { printf "%-14s events %d  wall %6.2f s  %8.0f events/s  cpu %6.2f s  digest %s\n", n, ev, w, ev / w, c, d }' |
    tee -a "$summary"
  if [ -n "$2" ] && [ "$PAGE" = 1 ]; then
    { grep -h '^page:' "$OUT/$n.page"
      awk '{printf "browser (node + Chromium) cpu %.2f s\n", $1 + $2}' "$OUT/$n.ptime"
    } | sed 's/^/               /' | tee -a "$summary"
  fi
  echo "$ev $wall $dg" >"$OUT/$n.res"
}

for r in $(seq 1 "$ROUNDS"); do
  if [ $((r % 2)) -eq 1 ]; then order="headless ui"; else order="ui headless"; fi
  for mode in $order; do
    if [ "$mode" = headless ]; then run_headless "r$r-headless"; report "r$r-headless" ""
    else run_ui "r$r-ui"; report "r$r-ui" page; fi
  done
done

/usr/bin/python3 - "$OUT" "$ROUNDS" <<'PY' | tee -a "$summary"
import statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
def res(n):
    ev, wall, dg = open("%s/%s.res" % (out, n)).read().split()
    return int(ev) / float(wall), dg
ratios, h, u, digests = [], [], [], set()
for r in range(1, rounds + 1):
    (th, dh), (tu, du) = res("r%d-headless" % r), res("r%d-ui" % r)
    h.append(th); u.append(tu); digests |= {dh, du}
    ratios.append(tu / th)
    print("round %d: headless %.0f events/s, --ui %.0f events/s, ratio %.3f" % (r, th, tu, tu / th))
print("median ratio (ui / headless): %.3f   best-of ratio: %.3f   (target >= 0.95)" %
      (statistics.median(ratios), max(u) / max(h)))
print("headless events/s: median %.0f, min %.0f, max %.0f" % (statistics.median(h), min(h), max(h)))
print("--ui     events/s: median %.0f, min %.0f, max %.0f" % (statistics.median(u), min(u), max(u)))
print("digests: %s" % ("all equal" if len(digests) == 1 else "DIFFER: %s" % sorted(digests)))
PY
echo "raw outputs: $OUT"
