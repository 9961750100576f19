#!/usr/bin/env bash
# chat_memory.sh — stock prompt agents with conversation memory (chat mode)
# end to end: a scenario where two agents talk; `cohort run --trace-prompts`
# records the exact text the engine tokenized for every request, and an
# independent checker rebuilds each agent's conversation from the journal
# (the messages it received, the results it got), renders it in the
# documented plain format, and requires the traced text byte for byte,
# including the history_tokens cut (counted with `cohort tokenize`).  Then:
# replay reproduces the run (the memory is in agent state), and bad chat
# configurations fail before the run with one line naming the field.
set -u
BIN=${COH_BIN:?} BUILD=${COH_BUILD_DIR:?} FIX=${COH_FIXTURES:?}
PY=${COH_PYTHON:-/usr/bin/python3}
# error messages are checked to be one line: under ASan (scripts/test.sh)
# LeakSanitizer must not append its suppression statistics to stderr
export LSAN_OPTIONS="${LSAN_OPTIONS:+$LSAN_OPTIONS:}print_suppressions=0"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
CACHE="$BUILD/test-module-cache"
M="$FIX/llama-tiny-plain-fp32"
fails=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL: $*"; fails=$((fails+1)); }

scenario() { # $1: file, $2: alice's extra config lines
  cat >"$1" <<YAML
name: chatmem
seed: 11
models:
  - {name: tiny, path: $M, device: cpu, max_batch: 2, threads: 1}
stop: {max_ticks: 90, quiescence: true}
checkpoint_every: 7
agents:
  - id: alice
    kind: prompt
    config:
      system: "You are Alice. You argue that the sea is wet."
      model: tiny
      max_tokens: 5
      temperature: 0.9
$2
  - id: bob
    kind: prompt
    config:
      system: "You are Bob."
      messages:
        - {role: user, content: "Be short.", name: coach}
        - {role: assistant, content: "OK."}
      model: tiny
      max_tokens: 4
messages:
  - {from: bob, to: alice, body: "Is the sea wet?", tick: 0}
YAML
}

scenario "$tmp/s.yaml" "      history_tokens: 70"
if "$BIN" run "$tmp/s.yaml" --journal "$tmp/r.db" --cache-dir "$CACHE" --quiet \
     --trace-prompts "$tmp/trace.jsonl" >"$tmp/run.out" 2>"$tmp/run.err"; then
  ok "run with --trace-prompts"
else
  bad "run: $(cat "$tmp/run.err")"
fi
"$BIN" inspect "$tmp/r.db" --json >"$tmp/events.jsonl" 2>"$tmp/inspect.err" ||
  bad "inspect: $(cat "$tmp/inspect.err")"

cat >"$tmp/check.py" <<'PY'
import json, subprocess, sys
bin_, model, trace, events, budget = sys.argv[1:6]
budget = int(budget)
cfg = {
    "alice": dict(system="You are Alice. You argue that the sea is wet.", messages=[], budget=budget),
    "bob": dict(system="You are Bob.", messages=[
        {"role": "user", "content": "Be short.", "name": "coach"},
        {"role": "assistant", "content": "OK."}], budget=None),
}

def plain(msgs):
    # docs/inference.md, "Plain format": ROLE: CONTENT per message, NAME (ROLE) with a name,
    # then the generation prompt
    out = ""
    for m in msgs:
        role = m["role"].upper()
        head = "%s (%s)" % (m["name"], role) if m.get("name") else role
        out += "%s: %s\n" % (head, m["content"])
    return out + "ASSISTANT: "

def count(text):
    r = subprocess.run([bin_, "tokenize", "--tokenizer", model + "/tokenizer.json", "--add-special"],
                       input=json.dumps({"text": text}) + "\n", capture_output=True, text=True, check=True)
    return len(json.loads(r.stdout)["ids"])

# each agent's conversation, rebuilt from the journal, at each of its requests
turns = {a: [] for a in cfg}
expected = {}
for line in open(events):
    ev = json.loads(line)
    k, src, dst = ev["kind"], ev["source"], ev["target"]
    if k == "message" and dst in cfg:
        turns[dst].append({"role": "user", "name": src, "content": ev["payload"]})
    elif k == "llm_result" and dst in cfg:
        res = json.loads(ev["payload"])
        if "text" in res:
            turns[dst].append({"role": "assistant", "content": res["text"]})
    elif k == "llm_request" and src in cfg:
        n = json.loads(ev["payload"])["id"]
        expected[(src, n)] = list(turns[src])

fails, checked, cut = 0, 0, 0
for line in open(trace):
    t = json.loads(line)
    a, n = t["agent"], t["request"]
    c = cfg[a]
    head = [{"role": "system", "content": c["system"]}] + c["messages"]
    conv = expected[(a, n)]
    kept = conv[t["dropped"]:]
    want = plain(head + kept)
    if t["text"] != want:
        print("FAIL %s request %d: traced %r, expected %r" % (a, n, t["text"], want)); fails += 1
    if t["tokens"] != count(want):
        print("FAIL %s request %d: %d tokens traced, %d counted" % (a, n, t["tokens"], count(want))); fails += 1
    if c["budget"] is None:
        if t["dropped"] != 0:
            print("FAIL %s request %d: dropped %d without a budget" % (a, n, t["dropped"])); fails += 1
    else:
        if t["tokens"] > c["budget"]:
            print("FAIL %s request %d: %d tokens over the budget" % (a, n, t["tokens"])); fails += 1
        if kept and kept[0]["role"] != "user":
            print("FAIL %s request %d: kept history starts with %s" % (a, n, kept[0]["role"])); fails += 1
        if t["dropped"] > 0:
            cut += 1
            # the previous cut point (one user turn earlier) must not have fit
            prev = max(i for i in range(t["dropped"]) if conv[i]["role"] == "user")
            if count(plain(head + conv[prev:])) <= c["budget"]:
                print("FAIL %s request %d: dropped more than needed" % (a, n)); fails += 1
    checked += 1
if checked < 6 or cut == 0:
    print("FAIL: only %d traced requests, %d with a history cut" % (checked, cut)); fails += 1
print("checked %d prompts (%d cut to the budget)" % (checked, cut))
sys.exit(1 if fails else 0)
PY
if "$PY" "$tmp/check.py" "$BIN" "$M" "$tmp/trace.jsonl" "$tmp/events.jsonl" 70 >"$tmp/check.out" 2>&1; then
  ok "traced prompts equal the independently rendered conversations ($(tail -n 1 "$tmp/check.out"))"
else
  bad "prompt check: $(head -c 2000 "$tmp/check.out")"
fi

if "$BIN" replay "$tmp/r.db" --cache-dir "$CACHE" >"$tmp/replay.out" 2>&1; then
  ok "replay reproduces the conversation"
else
  bad "replay: $(tail -n 3 "$tmp/replay.out")"
fi

# bad chat configurations: one line naming the field, no run
expect_fail() { # $1: what, $2: alice's extra config lines, $3: needle
  scenario "$tmp/bad.yaml" "$2"
  rm -f "$tmp/bad.db"
  if "$BIN" run "$tmp/bad.yaml" --journal "$tmp/bad.db" --cache-dir "$CACHE" --quiet \
       >"$tmp/bad.out" 2>"$tmp/bad.err"; then
    bad "$1: the run started"
  elif ! grep -qF -- "$3" "$tmp/bad.err" || [ "$(wc -l <"$tmp/bad.err")" -ne 1 ]; then
    bad "$1: message $(cat "$tmp/bad.err") lacks '$3' or is not one line"
  elif [ -s "$tmp/bad.out" ]; then
    bad "$1: output before the error: $(head -c 200 "$tmp/bad.out")"
  else
    ok "$1: $(cat "$tmp/bad.err")"
  fi
}
expect_fail "history budget below the first prompt" "      history_tokens: 8" \
  "agent 'alice' cannot render its first prompt"
expect_fail "history budget error names the field" "      history_tokens: 8" "'history_tokens'"
expect_fail "a message without a role" "      messages: [{content: hi}]" "config.messages[0] has no 'role'"
expect_fail "a tool list of the wrong shape" "      tools: {name: f}" "tools is a mapping; expected a sequence"
expect_fail "a tool that is not a mapping" "      tools: [f]" "tools[0] is a string; expected a mapping"
expect_fail "prompt with chat keys" "      prompt: \"{input}\"" "prompt cannot be used with system"
expect_fail "history_tokens out of range" "      history_tokens: 0" "history_tokens"

# the agent repeats the shape checks at init for hosts without the scenario
# loader (cohort exec): one log line naming the field, init fails
exec_fails() { # $1: config, $2: needle
  "$BIN" exec "$BUILD/agents/prompt.wasm" --config "$1" --cache-dir "$CACHE" >"$tmp/exec.out" 2>&1
  local rc=$?
  if [ $rc -ne 0 ] && grep -qF -- "$2" "$tmp/exec.out"; then ok "exec $1: init refused ($2)"
  else bad "exec $1: rc $rc, $(cat "$tmp/exec.out")"; fi
}
exec_fails '{"messages":[{"content":"x"}]}' "config field 'messages[0].role' must be a non-empty string"
exec_fails '{"system":"s","tools":{"a":1}}' "config field 'tools' must be a list of objects"
exec_fails '{"system":"s","tools":[1]}' "config field 'tools[0]' must be an object"
exec_fails '{"system":"s","history_tokens":0}' "config field 'history_tokens' must be an integer"
exec_fails '{"system":"s","prompt":"{input}"}' "config field 'prompt' cannot be used with system"

[ "$fails" -eq 0 ] || { echo "$fails failure(s)"; exit 1; }
echo "all ok"
