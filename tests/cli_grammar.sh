#!/usr/bin/env bash
# cli_grammar.sh — `cohort grammar`: JSON Schema, EBNF and --json-object
# constraints over JSON lines (accepted / complete / rejected_at, with
# json.dumps output including indent=2), and its error exits.
set -euo pipefail
: "${COH_BIN:?}" "${COH_SOURCE_DIR:?}"
PY=${COH_PYTHON:-/usr/bin/python3}
TOK="$COH_SOURCE_DIR/tests/data/tokenizers/gpt2.tokenizer.json"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

cat >"$TMP/s.json" <<'J'
{"type": "object", "properties": {"name": {"type": "string"},
 "age": {"type": "integer", "minimum": 0, "maximum": 150}},
 "required": ["name"], "additionalProperties": false}
J
"$PY" - "$TMP" <<'PYEOF'
import json, sys
d = sys.argv[1]
texts = [json.dumps({"name": "Bob", "age": 42}),
         json.dumps({"name": "Bob", "age": 42}, indent=2),
         json.dumps({"name": "Bob", "age": 200}),
         json.dumps({"age": 1}),
         '{"name": "Bob"']
with open(d + "/in.jsonl", "w") as f:
    for t in texts: f.write(json.dumps({"text": t}) + "\n")
PYEOF
"$COH_BIN" grammar --json-schema "$TMP/s.json" --tokenizer "$TOK" \
  <"$TMP/in.jsonl" >"$TMP/out.jsonl"
"$PY" - "$TMP/out.jsonl" <<'PYEOF' || fail "json-schema results"
import json, sys
r = [json.loads(l) for l in open(sys.argv[1])]
assert len(r) == 5, r
assert r[0] == {"accepted": True, "complete": True, "rejected_at": None}, r[0]
assert r[1] == {"accepted": True, "complete": True, "rejected_at": None}, r[1]
assert r[2]["accepted"] is False and isinstance(r[2]["rejected_at"], int), r[2]
assert r[3]["accepted"] is False and r[3]["rejected_at"] == 1, r[3]
assert r[4] == {"accepted": True, "complete": False, "rejected_at": None}, r[4]
PYEOF

printf 'root ::= "ab" [0-9]+\n' >"$TMP/g.gbnf"
printf '{"text": "ab12"}\n{"text": "ax"}\n' |
  "$COH_BIN" grammar --grammar "$TMP/g.gbnf" --tokenizer "$TOK" >"$TMP/g.out"
grep -q '"accepted": true, "complete": true' "$TMP/g.out" || fail "ebnf accept"
[ "$(sed -n 2p "$TMP/g.out" | grep -c '"accepted": false')" = 1 ] || fail "ebnf reject"

printf '{"text": "{\\"a\\": [1]}"}\n{"text": "[1]"}\n' |
  "$COH_BIN" grammar --json-object --tokenizer "$TOK" >"$TMP/o.out"
[ "$(sed -n 1p "$TMP/o.out")" = '{"accepted": true, "complete": true, "rejected_at": null}' ] || fail "json-object"
[ "$(sed -n 2p "$TMP/o.out")" = '{"accepted": false, "complete": false, "rejected_at": 0}' ] || fail "json-object reject"

# errors: unsupported keyword named with its pointer, EBNF line:col, usage
echo '{"properties": {"a": {"not": {}}}}' >"$TMP/bad.json"
if "$COH_BIN" grammar --json-schema "$TMP/bad.json" --tokenizer "$TOK" </dev/null 2>"$TMP/err"; then
  fail "unsupported keyword accepted"
fi
grep -q "not" "$TMP/err" && grep -q "/properties/a" "$TMP/err" || fail "unsupported message: $(cat "$TMP/err")"
printf 'root ::= x\n' >"$TMP/bad.gbnf"
if "$COH_BIN" grammar --grammar "$TMP/bad.gbnf" --tokenizer "$TOK" </dev/null 2>"$TMP/err"; then
  fail "undefined rule accepted"
fi
grep -q "bad.gbnf:1:10" "$TMP/err" || fail "ebnf error: $(cat "$TMP/err")"
set +e
"$COH_BIN" grammar --tokenizer "$TOK" </dev/null 2>/dev/null; rc=$?
set -e
[ $rc -ne 0 ] || fail "no constraint accepted"
echo '{"nope": 1}' | "$COH_BIN" grammar --json-object --tokenizer "$TOK" 2>"$TMP/err" && fail "bad line accepted"
grep -q "line 1" "$TMP/err" || fail "bad line message"
echo "cli_grammar: ok"
