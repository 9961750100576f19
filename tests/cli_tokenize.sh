#!/usr/bin/env bash
# cli_tokenize.sh — `cohort tokenize` against the HF reference cases (encode
# with and without special tokens, decode), its error exits, the warning for
# a file's ignored truncation/padding, and an unsupported type named.
set -euo pipefail
: "${COH_BIN:?}" "${COH_SOURCE_DIR:?}"
PY=${COH_PYTHON:-/usr/bin/python3}
DATA="$COH_SOURCE_DIR/tests/data/tokenizers"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

for name in gpt2 llama; do
  tok="$DATA/$name.tokenizer.json"
  cases="$DATA/$name.cases.jsonl"
  # inputs and expected outputs, one JSON line per case, made by Python's
  # json module (independent of cohort's own JSON writing)
  "$PY" - "$cases" "$TMP" <<'PYEOF'
import json, sys
cases = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8")]
out = sys.argv[2]
with open(out + "/text.jsonl", "w") as f:
    for c in cases: f.write(json.dumps({"text": c["text"]}) + "\n")
with open(out + "/ids.want", "w") as f:
    for c in cases: f.write(json.dumps(c["ids"]) + "\n")
with open(out + "/ids_sp.want", "w") as f:
    for c in cases: f.write(json.dumps(c["ids_with_special"]) + "\n")
with open(out + "/ids_sp.jsonl", "w") as f:
    for c in cases: f.write(json.dumps({"ids": c["ids_with_special"]}) + "\n")
with open(out + "/decoded.want", "w") as f:
    for c in cases: f.write(json.dumps(c["decoded"]) + "\n")
PYEOF
  normalize_ids='import json,sys
for l in sys.stdin: print(json.dumps(json.loads(l)["ids"]))'
  normalize_text='import json,sys
for l in sys.stdin: print(json.dumps(json.loads(l)["text"]))'
  "$COH_BIN" tokenize --tokenizer "$tok" <"$TMP/text.jsonl" |
    "$PY" -c "$normalize_ids" >"$TMP/ids.got"
  cmp -s "$TMP/ids.got" "$TMP/ids.want" || fail "$name: ids differ"
  "$COH_BIN" tokenize --tokenizer "$tok" --add-special <"$TMP/text.jsonl" |
    "$PY" -c "$normalize_ids" >"$TMP/ids_sp.got"
  cmp -s "$TMP/ids_sp.got" "$TMP/ids_sp.want" || fail "$name: ids_with_special differ"
  "$COH_BIN" tokenize --tokenizer "$tok" --decode <"$TMP/ids_sp.jsonl" |
    "$PY" -c "$normalize_text" >"$TMP/dec.got"
  cmp -s "$TMP/dec.got" "$TMP/decoded.want" || fail "$name: decoded differ"
  echo "ok $name: $(wc -l <"$TMP/ids.want") cases"
done

tok="$DATA/llama.tokenizer.json"
# exact output format of one line
out=$(printf '{"text": "Hello world"}\n' | "$COH_BIN" tokenize --tokenizer "$tok" --add-special)
[ "$out" = '{"ids": [1, 15043, 3186]}' ] || fail "format: $out"
out=$(printf '{"ids": [1, 15043, 3186]}\n' | "$COH_BIN" tokenize --tokenizer "$tok" --decode --keep-special)
[ "$out" = '{"text": "<s> Hello world"}' ] || fail "keep-special: $out"

# expect_exit CODE PATTERN CMD...: stdin from $input
expect_exit() {
  local want=$1 pattern=$2 rc=0
  shift 2
  printf '%s' "$input" | "$@" >"$TMP/out" 2>"$TMP/err" || rc=$?
  [ "$rc" = "$want" ] || fail "exit $rc (want $want) for $*: $(cat "$TMP/err")"
  grep -q -- "$pattern" "$TMP/err" || fail "stderr lacks '$pattern': $(cat "$TMP/err")"
  [ "$want" != 2 ] || [ "$(wc -l <"$TMP/err")" = 1 ] || fail "usage error not one line"
}
input=$'{"text": "a"}\n{"text": 5}\n'
expect_exit 1 "line 2" "$COH_BIN" tokenize --tokenizer "$tok"
input=$'{"text": "a"}\n\nnot json\n'
expect_exit 1 "line 3" "$COH_BIN" tokenize --tokenizer "$tok"
input=$'{"ids": [1]}\n{"ids": [99999]}\n'
expect_exit 1 "line 2.*99999" "$COH_BIN" tokenize --tokenizer "$tok" --decode
input=$'{"ids": ["x"]}\n'
expect_exit 1 "line 1" "$COH_BIN" tokenize --tokenizer "$tok" --decode
input=''
expect_exit 1 "nonexistent" "$COH_BIN" tokenize --tokenizer /nonexistent.json
expect_exit 2 "required" "$COH_BIN" tokenize
expect_exit 2 "unknown argument" "$COH_BIN" tokenize --tokenizer "$tok" --frob
expect_exit 2 "needs a FILE" "$COH_BIN" tokenize --tokenizer
"$COH_BIN" tokenize --help | grep -q "usage: cohort tokenize" || fail "--help"
echo "ok errors"

# A file saved with truncation and padding (SmolLM) loads; the CLI says once,
# on stderr, that both are ignored, and encodes past max_length (192).
smol="$DATA/real/gh-smollm.tokenizer.json"
"$PY" -c 'import json; print(json.dumps({"text": "word " * 400})); print(json.dumps({"text": "x"}))' > "$TMP/long.jsonl"
"$COH_BIN" tokenize --tokenizer "$smol" < "$TMP/long.jsonl" > "$TMP/long.out" 2> "$TMP/long.err" ||
  fail "SmolLM (truncation/padding set) does not load: $(cat "$TMP/long.err")"
[ "$(wc -l < "$TMP/long.err")" = 1 ] && grep -q "warning: .*gh-smollm.tokenizer.json: truncation and padding are ignored" "$TMP/long.err" ||
  fail "expected one warning line, got: $(cat "$TMP/long.err")"
n=$("$PY" -c 'import json,sys; print(len(json.loads(open(sys.argv[1]).readline())["ids"]))' "$TMP/long.out")
[ "$n" -gt 192 ] || fail "SmolLM: $n ids, truncated?"
# a file without them prints nothing on stderr
"$COH_BIN" tokenize --tokenizer "$DATA/gpt2.tokenizer.json" < "$TMP/long.jsonl" > /dev/null 2> "$TMP/gpt2.err"
[ ! -s "$TMP/gpt2.err" ] || fail "unexpected stderr: $(cat "$TMP/gpt2.err")"
# an unsupported component is named with its JSON path
"$PY" -c '
import json, sys
j = json.load(open(sys.argv[1]))
j["normalizer"] = {"type": "Sequence", "normalizers": [{"type": "NFC"}, {"type": "Nmt"}]}
json.dump(j, open(sys.argv[2], "w"))
j["normalizer"] = {"type": "Sequence", "normalizers": [{"type": "NFC"}, {"type": "Precompiled", "precompiled_charsmap": ""}]}
json.dump(j, open(sys.argv[3], "w"))' "$DATA/gpt2.tokenizer.json" "$TMP/pre.json" "$TMP/empty_charsmap.json"
expect_exit 1 'normalizer.normalizers\[1\].type: unsupported normalizer type "Nmt"' \
  "$COH_BIN" tokenize --tokenizer "$TMP/pre.json"
# a charsmap that cannot be read is named by its field (HF refuses it too)
expect_exit 1 'normalizer.normalizers\[1\].precompiled_charsmap: 0 bytes' \
  "$COH_BIN" tokenize --tokenizer "$TMP/empty_charsmap.json"
echo "ok truncation/padding ignored with one warning; unsupported types and bad charsmaps named"
