#!/usr/bin/env bash
# route_schema.sh — message routes with a JSON Schema (scenario `routes:`,
# docs/orchestrator.md "Route schemas"):
#  1. a custom wasm agent (agents/testmods/sender.c) sends valid and invalid
#     messages over a schema route: the valid ones are delivered, each
#     invalid one is refused (send returns COH_ABI_EINVAL, -1) and journaled
#     as `refused` with reason "schema", the route and the byte; Ajv
#     (tests/ajvref, an independent validator) confirms that every delivered
#     message is valid and every refused one is not; a message to an agent
#     without a route is not checked; the digest is the same for 1, 2 and 8
#     workers, and replay matches;
#  2. a stock prompt planner on the default model (models/shakespeare) whose
#     only constraint is the route's schema: the schema reaches its request
#     (response_format), every result completes, every message delivered to
#     the wasm worker validates with Ajv against the route's schema, and the
#     worker parses each one (emits "parsed 3: ...");
#  3. bad routes fail the load with FILE:LINE:COLUMN and what was expected
#     (the schema's keyword and JSON pointer for an unsupported one);
#  4. target names with NUL bytes in them (a hostile agent's): refused as
#     unknown (COH_ABI_ENOTFOUND, -2), also right after a send to the agent
#     they start with (the sender's last-target cache), and never read past
#     an agent's id (the ASan suite runs this test).
set -u
BIN=${COH_BIN:?} BUILD=${COH_BUILD_DIR:?} SRC=${COH_SOURCE_DIR:?}
PY=${COH_PYTHON:-/usr/bin/python3}
A="$BUILD/agents"
AJV="$SRC/tests/ajvref"
CACHE="$BUILD/test-module-cache"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL: $*"; fails=$((fails+1)); }
digest_of() { sed -n 's/^digest: //p' "$1" | tail -n 1; }

if [ ! -f "$AJV/node_modules/ajv/package.json" ]; then
  echo "FAIL: Ajv is not installed in tests/ajvref (run scripts/setup.sh)"; exit 1
fi

SCHEMA='{"type": "object", "properties": {"n": {"type": "integer", "minimum": 1, "maximum": 9}, "tag": {"enum": ["a", "b"]}}, "required": ["n"], "additionalProperties": false}'

# ---- 1. a wasm sender ----------------------------------------------------------
cat >"$tmp/wasm.yaml" <<YAML
name: routes
seed: 11
policy: {kind: round_robin, quantum: 8}
stop: {max_ticks: 20, quiescence: true}
agents:
  - {id: s, module: $A/sender.wasm}
  - {id: w, module: $A/chatter.wasm}
  - {id: x, module: $A/chatter.wasm}
routes:
  - from: s
    to: w
    schema: $SCHEMA
messages:
  - {to: s, body: 'w {"n": 3, "tag": "a"}'}
  - {to: s, body: 'w {"n": "three"}'}
  - {to: s, body: 'w {"n": 3'}
  - {to: s, body: 'w { "n" : 7 ,
      "tag":"b" }'}
  - {to: s, body: 'w {"n": 10}'}
  - {to: s, body: 'w {"n": 4, "extra": true}'}
  - {to: s, body: 'x not json at all'}
  - {to: s, body: 'w '}
YAML
for w in 1 2 8; do
  "$BIN" run "$tmp/wasm.yaml" --journal "$tmp/wasm-$w.db" --workers $w --cache-dir "$CACHE" \
    >"$tmp/out-$w" 2>"$tmp/err-$w" || bad "run --workers $w: $(cat "$tmp/err-$w")"
done
d1=$(digest_of "$tmp/out-1"); d2=$(digest_of "$tmp/out-2"); d8=$(digest_of "$tmp/out-8")
if [ -n "$d1" ] && [ "$d1" = "$d2" ] && [ "$d1" = "$d8" ]; then ok "digest equal for 1/2/8 workers ($d1)"
else bad "digests differ: '$d1' / '$d2' / '$d8'"; fi
[ "$(grep -c 's: send w: 0$' "$tmp/out-1")" = 2 ] && [ "$(grep -c 's: send w: -1$' "$tmp/out-1")" = 5 ] &&
  grep -q 's: send x: 0$' "$tmp/out-1" &&
  ok "the sender sees 0 for the 2 valid messages and COH_ABI_EINVAL (-1) for the 5 invalid ones" ||
  { bad "send return codes"; cat "$tmp/out-1"; }
[ "$(grep -c 'w: got: ' "$tmp/out-1")" = 2 ] && grep -q 'x: got: not json at all' "$tmp/out-1" &&
  ok "w got the 2 valid messages only; x (no route) got its message unchecked" ||
  { bad "deliveries"; cat "$tmp/out-1"; }
"$BIN" inspect "$tmp/wasm-1.db" --json >"$tmp/wasm.jsonl" || bad "inspect --json"
"$PY" - "$tmp/wasm.jsonl" "$SCHEMA" "$tmp/valid.jsonl" "$tmp/invalid.jsonl" <<'PYEOF' || bad "journal checks (above)"
import json, sys
events = [json.loads(l) for l in open(sys.argv[1])]
schema = json.loads(sys.argv[2])
msgs = [e for e in events if e["kind"] == "message" and e["source"] == "s" and e["target"] == "w"]
refs = [e for e in events if e["kind"] == "refused" and e["source"] == "s"]
errors = []
if len(msgs) != 2: errors.append("%d messages s -> w, expected 2" % len(msgs))
if len(refs) != 5: errors.append("%d refused, expected 5" % len(refs))
with open(sys.argv[3], "w") as f:
    for i, m in enumerate(msgs):
        f.write(json.dumps({"name": "delivered#%d" % i, "schema": schema, "output": m["payload"]}) + "\n")
bodies = ['{"n": "three"}', '{"n": 3', '{"n": 10}', '{"n": 4, "extra": true}', '']
ats = []
with open(sys.argv[4], "w") as f:
    for i, r in enumerate(refs):
        p = json.loads(r["payload"])
        ats.append(p.get("at"))
        if p.get("reason") != "schema" or p.get("route") != 0 or p.get("to") != "w" or r["target"] != "w":
            errors.append("refused payload: %s" % r["payload"])
        if "routes[0] (s -> w, line" not in p.get("error", ""):
            errors.append("error does not name the route: %s" % p.get("error"))
        f.write(json.dumps({"name": "refused#%d" % i, "schema": schema, "output": bodies[i]}) + "\n")
# where each was refused: '"' of "three" (byte 6), the end (null), the '0' of
# 10 (byte 7: "1" may start 1..9 but no digit may follow), the 'e' of
# "extra" (byte 10: after a listed member only "tag" may come), the end
want = [6, None, 7, 10, None]
if ats != want: errors.append("refused at %s, expected %s" % (ats, want))
for m in errors: print("  " + m)
sys.exit(1 if errors else 0)
PYEOF
node "$AJV/validate.mjs" "$tmp/valid.jsonl" >"$tmp/ajv1" 2>&1 && ok "Ajv: every delivered message is valid" ||
  { bad "Ajv on delivered messages"; cat "$tmp/ajv1"; }
node "$AJV/validate.mjs" "$tmp/invalid.jsonl" >"$tmp/ajv2" 2>&1
if grep -q '"checked":5' "$tmp/ajv2" && grep -q '"valid":0' "$tmp/ajv2"; then ok "Ajv: every refused message is invalid"
else bad "Ajv on refused messages: $(tail -1 "$tmp/ajv2")"; fi
"$BIN" replay "$tmp/wasm-1.db" --cache-dir "$CACHE" >"$tmp/rp" 2>&1 && grep -q "replay matches" "$tmp/rp" &&
  ok "replay matches" || { bad "replay"; cat "$tmp/rp"; }

# ---- 2. a prompt planner constrained by its route ---------------------------------
TUPLE='{"type": "array", "prefixItems": [{"enum": ["ROMEO", "JULIET", "NURSE"]}, {"type": "string", "minLength": 1, "maxLength": 24}, {"type": "integer", "minimum": 1, "maximum": 3}], "minItems": 3, "maxItems": 3}'
cat >"$tmp/plan.yaml" <<YAML
name: routeplan
seed: 5
models:
  - {name: bard, path: $SRC/models/shakespeare, device: cpu, max_batch: 4, threads: 1}
stop: {max_ticks: 3000, quiescence: true}
agents:
  - id: planner
    kind: prompt
    config: {model: bard, prompt: "{input}\nPLAN:\n", max_tokens: 240, temperature: 0.8,
             top_k: 40, max_ws_run: 1, reply: false, routes: [{match: "", to: worker}]}
  - {id: worker, module: $A/sender.wasm}
routes:
  - {from: planner, to: worker, schema: $TUPLE}
messages:
  - {from: user, to: planner, body: "Romeo must hear the news tonight."}
  - {from: user, to: planner, body: "The Nurse waits at the gate."}
  - {from: user, to: planner, body: "Tell Juliet of the feast."}
YAML
if "$BIN" run "$tmp/plan.yaml" --journal "$tmp/plan.db" --cache-dir "$CACHE" >"$tmp/plan.out" 2>&1; then
  ok "prompt planner over a schema route runs"
else
  bad "prompt planner: $(tail -3 "$tmp/plan.out")"
fi
"$BIN" inspect "$tmp/plan.db" --json >"$tmp/plan.jsonl" || bad "inspect plan"
"$PY" - "$tmp/plan.jsonl" "$TUPLE" "$tmp/planv.jsonl" <<'PYEOF' || bad "planner journal checks (above)"
import json, sys
events = [json.loads(l) for l in open(sys.argv[1])]
schema = json.loads(sys.argv[2])
errors = []
reqs = [json.loads(json.loads(e["payload"])["request"]) for e in events
        if e["kind"] == "llm_request" and e["source"] == "planner"]
res = [json.loads(e["payload"]) for e in events if e["kind"] == "llm_result" and e["target"] == "planner"]
msgs = [e["payload"] for e in events if e["kind"] == "message" and e["source"] == "planner"]
parsed = [e["payload"] for e in events if e["kind"] == "emit" and e["source"] == "worker"]
if len(reqs) != 3: errors.append("%d planner requests, expected 3" % len(reqs))
for r in reqs:
    if r.get("response_format", {}).get("json_schema", {}).get("schema") != schema:
        errors.append("the route's schema is not the request's: %s" % r.get("response_format"))
if [r.get("finish") for r in res] != ["eos"] * 3: errors.append("finishes %s" % [r.get("finish") for r in res])
if len(msgs) != 3: errors.append("%d messages delivered, expected 3" % len(msgs))
if len(parsed) != 3 or not all(p.startswith("parsed 3: ") for p in parsed):
    errors.append("the worker did not parse each task: %s" % parsed)
if any(e["kind"] == "refused" for e in events): errors.append("a refusal")
with open(sys.argv[3], "w") as f:
    for i, m in enumerate(msgs):
        f.write(json.dumps({"name": "task#%d" % i, "schema": schema, "output": m}) + "\n")
for m in errors: print("  " + m)
print("  worker: " + " / ".join(parsed))
sys.exit(1 if errors else 0)
PYEOF
node "$AJV/validate.mjs" "$tmp/planv.jsonl" >"$tmp/ajv3" 2>&1 && grep -q '"checked":3' "$tmp/ajv3" &&
  ok "Ajv: the 3 tasks delivered to the worker are valid for the route's schema" ||
  { bad "Ajv on the planner's tasks"; cat "$tmp/ajv3"; }

# ---- 3. bad routes ------------------------------------------------------------------
# expect NAME PATTERN YAML-of-routes [agents override]: the load fails naming the place
expect() {
  local name=$1 pat=$2 routes=$3
  local agents=${4:-"  - {id: s, module: $A/sender.wasm}
  - {id: w, module: $A/chatter.wasm, count: 2}"}
  printf 'name: bad\nmodels:\n  - {name: bard, path: %s/models/shakespeare}\nagents:\n%s\n%s\n' \
    "$SRC" "$agents" "$routes" >"$tmp/$name.yaml"
  if "$BIN" run "$tmp/$name.yaml" --journal "$tmp/$name.db" --cache-dir "$CACHE" >"$tmp/$name.out" 2>&1; then
    bad "$name: loaded"
  elif grep -q "$name.yaml:[0-9]*:[0-9]*: .*$pat" "$tmp/$name.out"; then
    ok "$name: $(grep -o "$name.yaml:.*" "$tmp/$name.out" | head -1)"
  else
    bad "$name: $(cat "$tmp/$name.out")"
  fi
}
expect notseq "routes is an integer; expected a sequence" 'routes: 5'
expect noschema "routes\[0\] has no 'schema'" 'routes: [{from: s, to: w}]'
expect unknown "routes\[0\].to names unknown agent 'v'" 'routes: [{from: s, to: v, schema: {}}]'
expect badkey "unknown key 'schema_file' in routes\[0\]" 'routes: [{from: s, to: w, schema_file: x.json}]'
expect notmap "routes\[0\].schema is a sequence; expected a mapping" 'routes: [{from: s, to: w, schema: [1]}]'
expect unsupported "routes\[0\].schema.*patternProperties.*/properties/n" \
  'routes: [{from: s, to: w-1, schema: {type: object, properties: {n: {patternProperties: {}}}}}]'
expect badschema "routes\[1\].schema: not a non-negative integer: minItems at /" \
  'routes: [{from: s, to: w, schema: {}}, {from: w, to: s, schema: {minItems: -1}}]'
expect dup "routes\[1\] repeats the route s -> w" \
  'routes: [{from: s, to: w, schema: {}}, {from: s, to: w, schema: {type: object}}]'
P='  - {id: p, kind: prompt, config: {model: bard, prompt: "{input}", routes: [{match: "", to: s}]}}
  - {id: s, module: '"$A"'/sender.wasm}'
expect twoschemas "routes\[1\] gives the messages of prompt agent 'p' another schema" \
  'routes: [{from: p, to: s, schema: {type: array}}, {from: p, to: p, schema: {type: object}}]' "$P"
P2='  - {id: p, kind: prompt, config: {model: bard, prompt: "{input}", schema: {type: array}}}
  - {id: s, module: '"$A"'/sender.wasm}'
expect ownschema "routes\[0\] gives the messages of prompt agent 'p' a schema, but its config.*has 'schema'" \
  'routes: [{from: p, to: s, schema: {type: array}}]' "$P2"

# ---- 4. target names with NUL bytes ----------------------------------------------
# sender.wasm sends '~' as a NUL byte: "w~" is the 2 bytes "w\0", and the
# 70-NUL name is longer than any id, so a comparison that read the id at the
# name's length would read past the end of "w" (ASan: heap-buffer-overflow).
nuls=$(printf '~%.0s' $(seq 1 70))
cat >"$tmp/nul.yaml" <<YAML
name: nul-targets
seed: 3
policy: {kind: round_robin, quantum: 8}
stop: {max_ticks: 5, quiescence: true}
agents:
  - {id: s, module: $A/sender.wasm}
  - {id: w, module: $A/chatter.wasm}
  - {id: wx, module: $A/chatter.wasm}
messages:
  - {to: s, body: 'w~ a'}
  - {to: s, body: 'w$nuls b'}
  - {to: s, body: 'w c'}
  - {to: s, body: 'w~ d'}
  - {to: s, body: 'wx~ e'}
  - {to: s, body: 'wx f'}
YAML
for w in 1 2; do
  "$BIN" run "$tmp/nul.yaml" --journal "$tmp/nul-$w.db" --workers $w --cache-dir "$CACHE" \
    >"$tmp/nout-$w" 2>"$tmp/nerr-$w" || bad "NUL targets: run --workers $w: $(cat "$tmp/nerr-$w")"
done
[ "$(grep -c 's: send w: -2$' "$tmp/nout-1")" = 3 ] && [ "$(grep -c 's: send wx: -2$' "$tmp/nout-1")" = 1 ] &&
  [ "$(grep -c 's: send w: 0$' "$tmp/nout-1")" = 1 ] && [ "$(grep -c 's: send wx: 0$' "$tmp/nout-1")" = 1 ] &&
  ok "names with NUL bytes are refused as unknown (-2); 'w' and 'wx' themselves get their messages" ||
  { bad "NUL targets: send return codes"; cat "$tmp/nout-1" "$tmp/nerr-1"; }
[ "$(grep -c 'w: got: c (n=' "$tmp/nout-1")" = 1 ] && [ "$(grep -c 'wx: got: f (n=' "$tmp/nout-1")" = 1 ] &&
  [ "$(grep -c ': got: ' "$tmp/nout-1")" = 2 ] &&
  ok "only the two messages to real names were delivered" ||
  { bad "NUL targets: deliveries"; cat "$tmp/nout-1"; }
d1=$(digest_of "$tmp/nout-1"); d2=$(digest_of "$tmp/nout-2")
[ -n "$d1" ] && [ "$d1" = "$d2" ] && ok "NUL targets: digest equal for 1 and 2 workers" ||
  bad "NUL targets: digests differ: '$d1' / '$d2'"

if [ "$fails" -eq 0 ]; then echo "route_schema: all passed"; else echo "route_schema: $fails failed"; exit 1; fi
