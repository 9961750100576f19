#!/usr/bin/env bash
# train_tools.sh - the default model's offline tools refuse bad input with a
# one-line reason, before any training: a missing corpus, a split that leaves
# no validation text, a model over the parameter budget (tools/train/).
# Needs no torch: every refusal happens before train.py loads it.
set -euo pipefail
PY=${COH_PYTHON:-/usr/bin/python3}
SRC=${COH_SOURCE_DIR:?}
T="$SRC/tools/train"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
expect() { # description, pattern, command...
  local what=$1 pat=$2; shift 2
  set +e; "$@" >"$tmp/out" 2>"$tmp/err"; local rc=$?; set -e
  if [ $rc -ne 0 ] && [ "$(wc -l <"$tmp/err")" -eq 1 ] && grep -q -- "$pat" "$tmp/err"; then
    echo "ok   $what: $(cat "$tmp/err")"
  else
    echo "FAIL: $what: exit $rc, stderr:"; sed 's/^/  | /' "$tmp/err"; fails=$((fails + 1))
  fi
}
"$PY" "$T/bpe_train.py" --corpus "$SRC/data/tinyshakespeare.txt" --vocab 300 --out "$tmp/tok.json" >/dev/null
printf 'abc' > "$tmp/tiny.txt"
printf 'caf\xc3\xa9\n' > "$tmp/utf8.txt"

expect "bpe: missing corpus" "cannot read corpus" "$PY" "$T/bpe_train.py" --corpus "$tmp/none.txt" --out "$tmp/x.json"
expect "bpe: no validation text" "leaves no validation text" \
  "$PY" "$T/bpe_train.py" --corpus "$tmp/tiny.txt" --holdout 1e-20 --out "$tmp/x.json"
expect "bpe: no training text" "leaves no training text" \
  "$PY" "$T/bpe_train.py" --corpus "$tmp/tiny.txt" --holdout 0.9 --out "$tmp/x.json"
expect "bpe: holdout out of range" "between 0 and 1" \
  "$PY" "$T/bpe_train.py" --corpus "$tmp/tiny.txt" --holdout 1.5 --out "$tmp/x.json"
expect "bpe: non-ASCII corpus" "not ASCII" "$PY" "$T/bpe_train.py" --corpus "$tmp/utf8.txt" --out "$tmp/x.json"
expect "bpe: vocabulary too small" "--vocab must be" \
  "$PY" "$T/bpe_train.py" --corpus "$tmp/tiny.txt" --vocab 10 --out "$tmp/x.json"
expect "train: missing corpus" "no such file" \
  "$PY" "$T/train.py" --corpus "$tmp/none.txt" --tokenizer "$tmp/tok.json" --workdir "$tmp/w"
expect "train: no validation text" "leaves no validation text" \
  "$PY" "$T/train.py" --corpus "$tmp/tiny.txt" --holdout 1e-20 --tokenizer "$tmp/tok.json" --workdir "$tmp/w"
expect "train: validation shorter than a window" "fewer than one window" \
  "$PY" "$T/train.py" --corpus "$tmp/tiny.txt" --tokenizer "$tmp/tok.json" --workdir "$tmp/w"
expect "train: over the parameter budget" "over the budget" \
  "$PY" "$T/train.py" --corpus "$SRC/data/tinyshakespeare.txt" --tokenizer "$tmp/tok.json" --workdir "$tmp/w" \
  --layers 64 --hidden 1024 --heads 16 --kv-heads 4 --intermediate 4096
[ ! -e "$tmp/w/ckpt.pt" ] && echo "ok   no checkpoint was written" || { echo "FAIL: a checkpoint was written"; fails=$((fails + 1)); }
expect "export: nothing trained" "no such file" \
  "$PY" "$T/export.py" --workdir "$tmp/w" --tokenizer "$tmp/tok.json" --out "$tmp/m/x"
echo "train_tools: $fails failed"
[ $fails = 0 ]
