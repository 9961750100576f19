#!/usr/bin/env bash
# policy_schedule.sh — every scheduling policy end to end through
# `cohort run`: the exact per-tick schedule (which agents step, in which
# order, taking how many events), read back with `cohort inspect --json`
# from the journal, must equal the schedule derived by hand below from the
# rules in docs/orchestrator.md ("A tick", step 3).
#
# The agents are agents/testmods/relay.c (a message carries its own route:
# "b+c/d" is sent on to b and c, who send "d"... on) and agents/echo.c
# (replies to the sender: two echoes bounce a message forever).
#
# A schedule line is "TICK: agent(events) agent(events) ...", the `step`
# events of that tick in journal order; tick 0 (every agent's init) is left
# out.  Commit order is agent index order (scenario order), whatever the
# policy, so a mutant that reorders the commit, steps a blocked agent (a
# dependency with events queued or an LLM answer outstanding), picks the
# wrong priority or takes the wrong number of events fails here.
set -u
BIN=${COH_BIN:?} BUILD=${COH_BUILD_DIR:?} FIX=${COH_FIXTURES:?}
PY=${COH_PYTHON:-/usr/bin/python3}
A="$BUILD/agents"
CACHE="$BUILD/test-module-cache"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL: $*"; fails=$((fails+1)); }

schedule() { # journal -> schedule lines
  "$BIN" inspect "$1" --json | "$PY" -c '
import json, sys
rows = {}
for line in sys.stdin:
    e = json.loads(line)
    if e["kind"] == "step":
        n = json.loads(e["payload"])["events"]
        rows.setdefault(e["tick"], []).append("%s(%d)" % (e["source"], n))
for t in sorted(rows):
    print("%d: %s" % (t, " ".join(rows[t])))'
}

# check NAME WORKERS EXPECTED: runs $tmp/NAME.yaml and compares schedules
check() {
  local name=$1 want=$2 w
  for w in 1 4; do
    rm -f "$tmp/$name-$w.db"
    if ! "$BIN" run "$tmp/$name.yaml" --journal "$tmp/$name-$w.db" --workers $w --cache-dir "$CACHE" \
        >"$tmp/$name-$w.out" 2>&1; then
      bad "$name: run --workers $w failed"; cat "$tmp/$name-$w.out"; return
    fi
    schedule "$tmp/$name-$w.db" >"$tmp/$name-$w.sched"
    if [ "$(cat "$tmp/$name-$w.sched")" = "$want" ]; then
      ok "$name (--workers $w): schedule as derived"
    else
      bad "$name (--workers $w): schedule differs"
      echo "--- expected"; echo "$want"; echo "--- got"; cat "$tmp/$name-$w.sched"
    fi
  done
}
emits() { # journal agent -> the agent's emits, one per line, in order
  "$BIN" inspect "$1" --json | "$PY" -c '
import json, sys
for line in sys.stdin:
    e = json.loads(line)
    if e["kind"] == "emit" and e["source"] == sys.argv[1]:
        print("%d %s" % (e["tick"], e["payload"]))' "$2"
}

# ---- round robin, quantum 1 -------------------------------------------------
# Every agent with a pending event steps, taking one.
#  t1: inputs c:[a+b/c], a:[m, m]  -> a(1) takes m; c(1) sends "c" to a and b
#  t2: a:[m, c], b:[c]             -> a(1) takes m; b(1) sends "" to c
#  t3: + scenario "" for b         -> a(1) takes "c" and sends "" to c;
#      b:[""]  c:["" from b]          b(1); c(1)
#  t4: c:["" from a]               -> c(1); then nothing is pending
cat >"$tmp/rr1.yaml" <<YAML
name: rr1
policy: {kind: round_robin, quantum: 1}
stop: {max_ticks: 50, quiescence: true}
agents:
  - {id: a, module: $A/relay.wasm}
  - {id: b, module: $A/relay.wasm}
  - {id: c, module: $A/relay.wasm}
messages:
  - {to: c, body: "a+b/c"}
  - {to: a, body: "m"}
  - {to: a, body: "m"}
  - {to: b, body: "", tick: 3}
YAML
check rr1 "1: a(1) c(1)
2: a(1) b(1)
3: a(1) b(1) c(1)
4: c(1)"
emits "$tmp/rr1-1.db" c >"$tmp/rr1.c"
[ "$(cat "$tmp/rr1.c")" = "1 scenario:a+b/c
3 b:
4 a:" ] && ok "rr1: c consumed its inbox in commit order (b's message before a's)" ||
  { bad "rr1: c's emits"; cat "$tmp/rr1.c"; }

# ---- round robin, quantum 2 -------------------------------------------------
# a has 5 events: it takes 2, 2, 1; b (1 event) steps once, beside a.
cat >"$tmp/rr2.yaml" <<YAML
name: rr2
policy: {kind: round_robin, quantum: 2}
stop: {max_ticks: 50, quiescence: true}
agents:
  - {id: a, module: $A/relay.wasm}
  - {id: b, module: $A/relay.wasm}
messages:
$(for k in 1 2 3 4 5; do echo "  - {to: a, body: \"\"}"; done)
  - {to: b, body: ""}
YAML
check rr2 "1: a(2) b(1)
2: a(2)
3: a(1)"

# ---- priority: ties and the starvation bound ----------------------------------
# Only agents of the highest priority with pending events step; equal
# priorities step together (index order).  hi1 and hi2 (5) pass a message
# back and forth, mid (3) and lo (1) wait exactly as long as they do.
#  t1: lo:[x] mid:[y] hi1:[hi2/hi1/hi2]  best 5 -> hi1(1), sends to hi2
#  t2: hi2:[hi1/hi2 (from hi1), "" (scenario, tick 2)]  -> hi2(1) takes the
#      first, sends "hi2" to hi1
#  t3: hi1:[hi2] hi2:[""]  tie at 5     -> hi1(1) hi2(1); hi1 sends "" to hi2
#  t4: hi2:[""]                         -> hi2(1)
#  t5: best is mid's 3                  -> mid(1)
#  t6: lo's turn at last                -> lo(1)
cat >"$tmp/prio.yaml" <<YAML
name: prio
policy: {kind: priority, quantum: 1}
stop: {max_ticks: 50, quiescence: true}
agents:
  - {id: hi1, module: $A/relay.wasm, priority: 5}
  - {id: lo, module: $A/relay.wasm, priority: 1}
  - {id: hi2, module: $A/relay.wasm, priority: 5}
  - {id: mid, module: $A/relay.wasm, priority: 3}
messages:
  - {to: lo, body: "x"}
  - {to: mid, body: "y"}
  - {to: hi1, body: "hi2/hi1/hi2"}
  - {to: hi2, body: "", tick: 2}
YAML
check prio "1: hi1(1)
2: hi2(1)
3: hi1(1) hi2(1)
4: hi2(1)
5: mid(1)
6: lo(1)"

# ---- priority with a quantum ---------------------------------------------------
# The quantum applies under every policy: hi takes 2, then 1; lo follows.
cat >"$tmp/prioq.yaml" <<YAML
name: prioq
policy: {kind: priority, quantum: 2}
stop: {max_ticks: 50, quiescence: true}
agents:
  - {id: lo, module: $A/relay.wasm, priority: -1}
  - {id: hi, module: $A/relay.wasm, priority: 0}
messages:
  - {to: lo, body: ""}
  - {to: lo, body: ""}
  - {to: hi, body: ""}
  - {to: hi, body: ""}
  - {to: hi, body: ""}
YAML
check prioq "1: hi(2)
2: hi(1)
3: lo(2)"

# ---- priority: no aging --------------------------------------------------------
# Two echo agents of priority 1 bounce a message forever: lo (priority 0)
# never steps, for as long as the run lasts (the bound on its wait is the
# time higher priorities have work, and nothing else: there is no aging).
cat >"$tmp/starve.yaml" <<YAML
name: starve
policy: {kind: priority}
stop: {max_ticks: 9}
agents:
  - {id: lo, module: $A/relay.wasm, priority: 0}
  - {id: ping, module: $A/echo.wasm, priority: 1}
  - {id: pong, module: $A/echo.wasm, priority: 1}
messages:
  - {to: lo, body: ""}
  - {from: pong, to: ping, body: "ball"}
YAML
check starve "1: ping(1)
2: pong(1)
3: ping(1)
4: pong(1)
5: ping(1)
6: pong(1)
7: ping(1)
8: pong(1)"

# ---- dag: fan-out, fan-in, a failing node ---------------------------------------
# sink waits for every w-*, each w-* waits for root (dependents come first
# in index order, so nothing here follows from the commit order).
# An agent steps only while none of its dependencies has events queued at
# the start of the tick (or an LLM answer outstanding); a failed
# dependency has none.
#  t1: sink:[early] w-1:[trap] root:[route]; sink waits (w-1 has an
#      event), w-1 waits (root has one) -> root(1): fan-out "sink" to w-0..2
#  t2: root is idle -> w-0(1) w-1(1) w-2(1); w-1 takes "trap" and fails
#      (its queued "sink" is dropped), w-0 and w-2 send "" to sink
#  t3..5: the w-* are idle or failed -> sink(1) three times (fan-in):
#      early, then w-0's, then w-2's
cat >"$tmp/dag.yaml" <<YAML
name: dag
policy: {kind: dag}
stop: {max_ticks: 50, quiescence: true}
agents:
  - {id: sink, module: $A/relay.wasm, after: [w]}
  - {id: w, module: $A/relay.wasm, count: 3, after: root}
  - {id: root, module: $A/relay.wasm}
messages:
  - {to: sink, body: "early"}
  - {to: w-1, body: "trap"}
  - {to: root, body: "w-0+w-1+w-2/sink"}
YAML
check dag "1: root(1)
2: w-0(1) w-1(1) w-2(1)
3: sink(1)
4: sink(1)
5: sink(1)"
emits "$tmp/dag-1.db" sink >"$tmp/dag.sink"
[ "$(cat "$tmp/dag.sink")" = "3 scenario:early
4 w-0:
5 w-2:" ] && ok "dag: fan-in delivered in commit order" || { bad "dag: sink's emits"; cat "$tmp/dag.sink"; }
"$BIN" inspect "$tmp/dag-1.db" --json | "$PY" -c '
import json, sys
t = [(e["tick"], e["source"]) for e in map(json.loads, sys.stdin) if e["kind"] == "trap"]
sys.exit(0 if t == [(2, "w-1")] else 1)' && ok "dag: the failing node is journaled at tick 2" ||
  bad "dag: trap not journaled as expected"

# ---- dag: a dependency with an LLM answer outstanding ---------------------------
# asker's request (chatter: max_tokens 12 on the fixture model) is committed
# at t1, admitted at t2 (prefill: first token), decoded at t3..t13 (tokens
# 2..12) and its result committed at t13, so asker steps again at t14.  dep
# has had an event since t1, but waits while asker has an answer
# outstanding (t2..t13) or an event queued (t1, t14): it steps at t15.
cat >"$tmp/dagllm.yaml" <<YAML
name: dagllm
models:
  - {name: tiny, path: $FIX/llama-tiny-plain-fp32, device: cpu, max_batch: 2, threads: 1}
policy: {kind: dag}
stop: {max_ticks: 60, quiescence: true}
agents:
  - {id: dep, module: $A/relay.wasm, after: asker}
  - {id: asker, module: $A/chatter.wasm}
messages:
  - {to: asker, body: "llm Once upon a time"}
  - {to: dep, body: ""}
YAML
check dagllm "1: asker(1)
14: asker(1)
15: dep(1)"

echo "$fails failures"
[ $fails = 0 ]
