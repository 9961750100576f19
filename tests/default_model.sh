#!/usr/bin/env bash
# default_model.sh - the embedded default model (models/shakespeare):
#  - its files match SHA256SUMS, and its tokenizer is what tools/train/bpe_train.py
#    makes from the training split (the tokenizer is reproducible);
#  - cohort's tokenizer equals Hugging Face `tokenizers` (npm, pinned in
#    tests/tokref) on the whole held-out text and on edge cases, and decodes
#    it back to the same bytes;
#  - ONNX Runtime matches the float64 numpy forward pass of the same weights;
#  - greedy generation reproduces the ids the reference stack recorded
#    (greedy.json: onnxruntime-node, not cohort), and `generate` without
#    --model uses this model;
#  - a relocated copy with a missing or corrupted file is refused, naming the
#    file;
#  - sampled text is made of the corpus's words.
set -euo pipefail
PY=${COH_PYTHON:-/usr/bin/python3}
SRC=${COH_SOURCE_DIR:?}
BIN=${COH_BIN:?}
M="$SRC/models/shakespeare"
CORPUS="$SRC/data/tinyshakespeare.txt"
NODE_TOK="$SRC/tests/tokref/encode.mjs"
export COH_ORT_NODE_DIR=${COH_ORT_NODE_DIR:-$SRC/bench/node_ref/node_modules/onnxruntime-node}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0; fail=0
ok()  { echo "ok: $*"; pass=$((pass + 1)); }
bad() { echo "FAIL: $*"; fail=$((fail + 1)); }

# ---- files -------------------------------------------------------------------
if (cd "$M" && sha256sum --quiet -c SHA256SUMS); then ok "model files match SHA256SUMS"; else bad "SHA256SUMS"; fi
for f in config.json genai_config.json model.onnx model.safetensors tokenizer.json greedy.json MODEL.md; do
  [ -s "$M/$f" ] || bad "$f missing"
done
total=$(cat "$M"/* | wc -c)
[ "$total" -le 16000000 ] && ok "model folder is $total bytes (<= 16 MB)" || bad "model folder is $total bytes"
"$PY" "$SRC/tools/train/bpe_train.py" --corpus "$CORPUS" --vocab 4096 --out "$tmp/tok.json" >/dev/null
cmp -s "$tmp/tok.json" "$M/tokenizer.json" && ok "tokenizer.json is reproduced by bpe_train.py" ||
  bad "bpe_train.py gives another tokenizer.json"
"$PY" "$SRC/tools/mkfixture.py" --verify "$M" >/dev/null && ok "mkfixture --verify (graph I/O, ONNX == safetensors)" ||
  bad "mkfixture --verify"

# ---- tokenizer against Hugging Face tokenizers --------------------------------
"$PY" - "$CORPUS" > "$tmp/cases.jsonl" <<'PYEOF'
import json, sys
text = open(sys.argv[1], encoding="ascii").read()
valid = text[int(len(text) * 0.9):]
cases = [valid,                                   # the whole held-out 10%
         "ROMEO:\nBut soft, what light through yonder window breaks?\n",
         "", " ", "\n\n\n", "\t\tindented\ttabs", "   leading and trailing   ",
         "I'll, you're, we've, she'd, 'tis, O'er, I'LL", "1234567890 3.14159 1,000,000",
         "caf\u00e9 na\u00efve \u00fcber \u4e2d\u6587 \U0001f600 emoji",  # bytes the corpus never has
         "<|endoftext|>ROMEO:<|endoftext|>", "a<|endoftext|>b <|endoftext|> c",
         "x" * 5000, "!?.;:-" * 300, "Wherefore" + "fore" * 200,
         "\r\nwindows\r\nline\r\nends", "\u00a0non-breaking\u2003spaces"]
for c in cases:
    print(json.dumps({"text": c}))
PYEOF
node "$NODE_TOK" "$M/tokenizer.json" < "$tmp/cases.jsonl" > "$tmp/hf.jsonl"
"$BIN" tokenize --tokenizer "$M/tokenizer.json" < "$tmp/cases.jsonl" > "$tmp/coh.jsonl"
if "$PY" - "$tmp/hf.jsonl" "$tmp/coh.jsonl" "$tmp/cases.jsonl" <<'PYEOF'
import json, sys
hf = [json.loads(l)["ids"] for l in open(sys.argv[1])]
co = [json.loads(l)["ids"] for l in open(sys.argv[2])]
tx = [json.loads(l)["text"] for l in open(sys.argv[3])]
assert len(hf) == len(co) == len(tx), (len(hf), len(co), len(tx))
assert len(hf[0]) > 30000, "the held-out text should be ~38k tokens, got %d" % len(hf[0])
bad = [i for i in range(len(tx)) if hf[i] != co[i]]
for i in bad:
    j = next(k for k in range(min(len(hf[i]), len(co[i])) + 1) if k >= min(len(hf[i]), len(co[i])) or hf[i][k] != co[i][k])
    print("case %d (%r...): first difference at token %d: hf %s cohort %s" % (i, tx[i][:40], j, hf[i][j:j+5], co[i][j:j+5]))
sys.exit(1 if bad else 0)
PYEOF
then ok "tokenizer equals HF tokenizers on the whole held-out text and 16 edge cases"
else bad "tokenizer differs from HF tokenizers"; fi
head -1 "$tmp/coh.jsonl" | "$BIN" tokenize --tokenizer "$M/tokenizer.json" --decode > "$tmp/dec.jsonl"
"$PY" -c "
import json,sys
a=json.loads(open('$tmp/dec.jsonl').readline())['text']; b=json.loads(open('$tmp/cases.jsonl').readline())['text']
sys.exit(0 if a==b else 1)" && ok "decode(encode(held-out text)) is the text" || bad "held-out text does not round-trip"

# ---- ONNX Runtime against the numpy forward pass --------------------------------
if "$PY" "$SRC/tools/mkfixture.py" --check "$M" > "$tmp/check.txt" 2>&1; then
  ok "ONNX Runtime matches the float64 numpy reference ($(tail -1 "$tmp/check.txt"))"
else bad "mkfixture --check: $(tail -5 "$tmp/check.txt")"; fi

# ---- greedy ids recorded by the reference stack ------------------------------
ncase=$("$PY" -c "import json;print(len(json.load(open('$M/greedy.json'))['cases']))")
for i in $(seq 0 $((ncase - 1))); do
  read -r prompt_ids want n < <("$PY" -c "
import json;c=json.load(open('$M/greedy.json'))['cases'][$i]
print(','.join(map(str,c['prompt_ids'])), json.dumps(c['greedy_ids'],separators=(',',':')), len(c['greedy_ids']))")
  got=$("$BIN" generate --model "$M" --device cpu --prompt-ids "$prompt_ids" --max-tokens "$n" --ignore-eos \
        --print-ids 2>/dev/null | tail -1 | tr -d ' ')
  [ "$got" = "$want" ] && ok "greedy case $i: $n ids equal the reference's" || bad "greedy case $i: got $got want $want"
  prompt=$("$PY" -c "import json;print(json.dumps({'text':json.load(open('$M/greedy.json'))['cases'][$i]['prompt']}))")
  ids=$(printf '%s\n' "$prompt" | "$BIN" tokenize --tokenizer "$M/tokenizer.json" | tr -d ' ')
  [ "$ids" = "{\"ids\":[$prompt_ids]}" ] && ok "greedy case $i: prompt tokenizes to the recorded ids" ||
    bad "greedy case $i: prompt ids $ids"
done

# ---- generate without --model ------------------------------------------------
a=$("$BIN" generate --device cpu --max-tokens 12 --print-ids "ROMEO:" 2>/dev/null | tail -1)
b=$("$BIN" generate --model "$M" --device cpu --max-tokens 12 --print-ids "ROMEO:" 2>/dev/null | tail -1)
[ -n "$a" ] && [ "$a" = "$b" ] && ok "generate without --model uses models/shakespeare" || bad "default model: '$a' vs '$b'"

# a relocated bin/ + models/ pair: the copy's files are checked, not the tree's
mkdir -p "$tmp/reloc/bin"
cp "$BIN" "$tmp/reloc/bin/cohort"
cp -r "$M" "$tmp/reloc/models"
mv "$tmp/reloc/models" "$tmp/reloc/models.tmp" && mkdir "$tmp/reloc/models" && mv "$tmp/reloc/models.tmp" "$tmp/reloc/models/shakespeare"
"$tmp/reloc/bin/cohort" generate --device cpu --max-tokens 4 "ROMEO:" >/dev/null 2>&1 && ok "relocated copy runs" ||
  bad "relocated copy fails"
printf '\x01' | dd of="$tmp/reloc/models/shakespeare/model.onnx" bs=1 seek=1000 conv=notrunc status=none
set +e
err=$("$tmp/reloc/bin/cohort" generate --device cpu --max-tokens 4 "ROMEO:" 2>&1 >/dev/null); rc=$?
set -e
[ $rc = 1 ] && grep -q "models/shakespeare/model.onnx is corrupted" <<<"$err" && ok "corrupted model.onnx named: $err" ||
  bad "corrupted model.onnx: rc $rc, '$err'"
cp "$M/model.onnx" "$tmp/reloc/models/shakespeare/model.onnx"
rm "$tmp/reloc/models/shakespeare/tokenizer.json"
set +e
err=$("$tmp/reloc/bin/cohort" generate --device cpu --max-tokens 4 "ROMEO:" 2>&1 >/dev/null); rc=$?
set -e
[ $rc = 1 ] && grep -q "tokenizer.json" <<<"$err" && ok "missing tokenizer.json named: $err" ||
  bad "missing tokenizer.json: rc $rc, '$err'"

# ---- sampled text is made of the corpus's words -------------------------------
for seed in 1 2 3; do
  "$BIN" generate --device cpu --temperature 0.8 --seed $seed --max-tokens 150 "ROMEO:" 2>/dev/null > "$tmp/s$seed.txt"
done
if "$PY" - "$CORPUS" "$tmp"/s1.txt "$tmp"/s2.txt "$tmp"/s3.txt <<'PYEOF'
import re, sys
corpus = set(re.findall(r"[a-z]+", open(sys.argv[1]).read().lower()))
rc = 0
for p in sys.argv[2:]:
    words = re.findall(r"[a-z]+", open(p).read().lower())
    known = sum(w in corpus for w in words)
    share = known / max(1, len(words))
    print("  %s: %d words, %.1f%% in the corpus" % (p.rsplit("/", 1)[1], len(words), 100 * share))
    if len(words) < 60 or share < 0.85:
        rc = 1
sys.exit(rc)
PYEOF
then ok "sampled text (3 seeds, temperature 0.8): >= 85% of words are corpus words"
else bad "sampled text is not made of corpus words"; fi

# ---- the README's scene --------------------------------------------------------
# three prompt agents on this model; the transcript is English made of corpus
# words, every agent speaks, and the digest does not depend on the worker count
for w in 1 2; do
  "$BIN" run "$SRC/examples/scene.yaml" --workers $w --journal "$tmp/scene$w.db" \
    --cache-dir "$tmp/cache" > "$tmp/scene$w.txt" 2>"$tmp/scene$w.err" || bad "scene --workers $w failed: $(tail -3 "$tmp/scene$w.err")"
done
d1=$(grep '^digest: ' "$tmp/scene1.txt" || true); d2=$(grep '^digest: ' "$tmp/scene2.txt" || true)
[ -n "$d1" ] && [ "$d1" = "$d2" ] && ok "scene digest equal for --workers 1 and 2" || bad "scene digests '$d1' vs '$d2'"
if "$PY" - "$CORPUS" "$tmp/scene1.txt" <<'PYEOF'
import re, sys
corpus = set(re.findall(r"[a-z]+", open(sys.argv[1]).read().lower()))
lines = open(sys.argv[2]).read().split("\n--\n")[0]
speakers = re.findall(r"^\[\d+\] (ROMEO|JULIET|NURSE): ", lines, re.M)
words = re.findall(r"[a-z]+", re.sub(r"^\[\d+\] \w+: ", "", lines, flags=re.M).lower())
share = sum(w in corpus for w in words) / max(1, len(words))
print("  scene: %d speeches (%s), %d words, %.1f%% in the corpus" %
      (len(speakers), ", ".join(sorted(set(speakers))), len(words), 100 * share))
sys.exit(0 if len(set(speakers)) == 3 and len(speakers) >= 9 and len(words) >= 100 and share >= 0.85 else 1)
PYEOF
then ok "scene: all three agents speak, in corpus words"
else bad "scene transcript"; fi

echo "default_model: $pass passed, $fail failed"
[ $fail = 0 ]
