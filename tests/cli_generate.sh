#!/usr/bin/env bash
# cli_generate.sh — `cohort generate` and `cohort models` as a user runs them:
# exit codes (0 ok, 1 runtime error, 2 usage error), one-line messages, and
# the third-party export's greedy reference ids through the CLI.
set -u
BIN=${COH_BIN:?} SRC=${COH_SOURCE_DIR:?} FIX=${COH_FIXTURES:?}
PY=${COH_PYTHON:-/usr/bin/python3}
TP="$SRC/tests/data/models/ortgenai-tiny-llama-fp16"
TINY="$FIX/llama-tiny-plain-fp32"
fails=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

expect() { # description, expected exit code, command...
  local what=$1 want=$2; shift 2
  "$@" >"$tmp/out" 2>"$tmp/err"
  local got=$?
  if [ "$got" != "$want" ]; then
    echo "FAIL: $what: exit $got, expected $want"; sed 's/^/  | /' "$tmp/err"; fails=$((fails+1))
  else
    echo "ok   $what"
  fi
}
expect_err() { # description, pattern expected in stderr
  if grep -q -- "$2" "$tmp/err"; then echo "ok   $1"; else
    echo "FAIL: $1: stderr lacks '$2'"; sed 's/^/  | /' "$tmp/err"; fails=$((fails+1)); fi
}

# usage errors: exit 2 with one line
expect "no prompt" 2 "$BIN" generate
expect_err "no prompt message" "give a PROMPT or --prompt-ids"
[ "$(wc -l <"$tmp/err")" -eq 1 ] || { echo "FAIL: usage error is not one line"; fails=$((fails+1)); }
# without --model, generate uses the embedded default (tests/default_model.sh)
expect "unknown flag" 2 "$BIN" generate --model "$TINY" --frobnicate "hi"
expect "bad max-tokens" 2 "$BIN" generate --model "$TINY" --max-tokens -3 "hi"
expect "bad temperature" 2 "$BIN" generate --model "$TINY" --temperature abc "hi"
expect "bad device" 2 "$BIN" generate --model "$TINY" --device tpu "hi"
expect "bad prompt ids" 2 "$BIN" generate --model "$TINY" --prompt-ids 1,x,3
expect "no prompt" 2 "$BIN" generate --model "$TINY"
expect "unknown command" 2 "$BIN" frobnicate
expect "models without dir" 2 "$BIN" models

# runtime errors: exit 1
expect "missing model folder" 1 "$BIN" generate --model "$tmp/nope" "hi"
expect_err "missing folder named" "$tmp/nope"
mkdir "$tmp/trunc" && cp "$TINY/genai_config.json" "$TINY/tokenizer.json" "$tmp/trunc/"
head -c 3000 "$TINY/model.onnx" >"$tmp/trunc/model.onnx"
expect "truncated model.onnx" 1 "$BIN" models "$tmp/trunc"
expect_err "truncated model named" "model.onnx"
expect "prompt ids outside vocab" 1 "$BIN" generate --model "$TINY" --device cpu --prompt-ids 1,999999
expect_err "vocab message" "outside the vocabulary"
long=$(seq -s, 1 300)
expect "prompt longer than context" 1 "$BIN" generate --model "$TINY" --device cpu --prompt-ids "$long"
expect_err "context message" "prompt has 300 tokens but the model.s context is 256"

# max-tokens 0: nothing generated, empty id list
expect "max-tokens 0" 0 "$BIN" generate --model "$TINY" --device cpu --max-tokens 0 --print-ids --prompt-ids 1,2,3
[ "$(tail -n 1 "$tmp/out")" = "[]" ] || { echo "FAIL: max-tokens 0 printed $(tail -n 1 "$tmp/out")"; fails=$((fails+1)); }
# empty text prompt still has BOS: generates
expect "empty text prompt" 0 "$BIN" generate --model "$TINY" --device cpu --max-tokens 3 ""

# models: describes a valid folder, in both layouts
expect "models genai" 0 "$BIN" models "$TINY"
grep -q "genai layout" "$tmp/out" || { echo "FAIL: models output"; fails=$((fails+1)); }
expect "models optimum" 0 "$BIN" models "$FIX/llama-tiny-optimum-fp32"
grep -q "optimum layout" "$tmp/out" || { echo "FAIL: models optimum output"; fails=$((fails+1)); }
expect "models json" 0 "$BIN" models --json "$FIX/llama-tiny-gqa-fp32"
"$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["attention"]=="gqa", d' "$tmp/out" ||
  { echo "FAIL: models --json"; fails=$((fails+1)); }

# the third-party export's reference greedy ids, through the CLI
n=0; bad=0
while IFS= read -r line; do
  ids=$("$PY" -c 'import json,sys; print(",".join(map(str,json.loads(sys.argv[1])["prompt_ids"])))' "$line")
  want=$("$PY" -c 'import json,sys; print(json.loads(sys.argv[1])["greedy_ids"])' "$line")
  got=$("$BIN" generate --model "$TP" --device cpu --max-tokens 16 --ignore-eos --print-ids --prompt-ids "$ids" | tail -n 1)
  n=$((n+1))
  [ "$got" = "$want" ] || { bad=$((bad+1)); echo "FAIL: greedy case $n: got $got want $want"; }
done <"$TP/greedy.cases.jsonl"
if [ $bad -eq 0 ] && [ $n -gt 20 ]; then echo "ok   $n third-party greedy cases via the CLI"; else fails=$((fails+1)); fi

# streaming text: the streamed text equals the decode of the printed ids
expect "text generation" 0 "$BIN" generate --model "$TP" --device cpu --max-tokens 12 --ignore-eos --print-ids "Hello world"
ids=$(tail -n 1 "$tmp/out")
head -n -1 "$tmp/out" | head -c -1 >"$tmp/streamed"
printf '{"ids": %s}\n' "$ids" >"$tmp/ids.jsonl"
if ! "$BIN" tokenize --tokenizer "$TP/tokenizer.json" --decode <"$tmp/ids.jsonl" >"$tmp/dec" 2>"$tmp/dec.err"; then
  echo "FAIL: cohort tokenize --decode failed: $(cat "$tmp/dec.err")"; fails=$((fails+1))
elif "$PY" - "$tmp/dec" "$tmp/streamed" "$ids" <<'PYEOF'; then
import json, sys
dec = json.loads(open(sys.argv[1]).read())["text"]
streamed = open(sys.argv[2], encoding="utf-8").read()
ids = json.loads(sys.argv[3])
assert len(ids) == 12, ids
assert dec.strip() != "", "the 12 tokens decode to nothing"
# the stream keeps the space between prompt and continuation
assert streamed.strip() == dec.strip(), (streamed, dec)
PYEOF
  echo "ok   streamed text matches decoded ids"
else
  echo "FAIL: streamed text != decoded ids"; fails=$((fails+1))
fi

# stop string: the output is the unstopped output cut just before the first
# occurrence of a word that it contains
"$BIN" generate --model "$TINY" --device cpu --max-tokens 8 --ignore-eos "The" >"$tmp/full" 2>/dev/null
word=$(awk '{print $2; exit}' "$tmp/full")
if [ -z "$word" ]; then
  echo "FAIL: stop string: the unstopped output has no second word: $(cat "$tmp/full")"; fails=$((fails+1))
else
  expect "stop string" 0 "$BIN" generate --model "$TINY" --device cpu --max-tokens 8 --ignore-eos --stop "$word" "The"
  if "$PY" - "$tmp/full" "$tmp/out" "$word" <<'PYEOF'; then
import sys
full = open(sys.argv[1], encoding="utf-8").read()
got = open(sys.argv[2], encoding="utf-8").read()
word = sys.argv[3]
cut = full.index(word)
assert got.rstrip("\n") == full[:cut].rstrip("\n"), (got, full[:cut])
assert word not in got
PYEOF
    echo "ok   stop string: output ends just before '$word'"
  else
    echo "FAIL: stop string '$word'"; fails=$((fails+1))
  fi
fi

# --device cuda without CUDA: error with the reason, exit 1
if ! ldconfig -p | grep -q libcudart.so.13; then
  expect "cuda unavailable" 1 "$BIN" generate --model "$TINY" --device cuda "hi"
  expect_err "cuda reason" "CUDA is unavailable"
  expect "auto falls back" 0 "$BIN" generate --model "$TINY" --max-tokens 2 "hi"
  expect_err "one fallback line" "CUDA unavailable"
  [ "$(grep -c . "$tmp/err")" -eq 1 ] || { echo "FAIL: fallback is not one line"; cat "$tmp/err"; fails=$((fails+1)); }
fi

echo "$fails failures"
[ $fails -eq 0 ]
