#!/usr/bin/env bash
# build_default.sh - rebuild the embedded default model (models/shakespeare)
# from the corpus, exactly as committed: tokenizer, training, export, plot.
# Offline; needs Debian's python3-torch, python3-numpy, python3-onnx,
# python3-matplotlib, libopenblas0-pthread, and node + bench/node_ref (for the
# reference greedy ids).  Resumable: rerun after an interruption and training
# continues from WORK/ckpt.pt.  About 30 minutes on the shared 2-core VM.
#   tools/train/build_default.sh [WORK_DIR (default .cache/train)]
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
WORK=${1:-$ROOT/.cache/train}
PY=/usr/bin/python3
mkdir -p "$WORK"
cd "$ROOT"
$PY tools/train/bpe_train.py --corpus data/tinyshakespeare.txt --vocab 4096 --out "$WORK/tokenizer.json"
$PY tools/train/train.py --corpus data/tinyshakespeare.txt --tokenizer "$WORK/tokenizer.json" \
  --workdir "$WORK/run" --steps 1200 --warmup 100 --lr 1.5e-3 --min-lr 1e-4 --dropout 0.1 \
  --layers 4 --hidden 256 --heads 8 --kv-heads 2 --intermediate 640 --seq 256 --batch 8 \
  --eval-every 100 --seed 1 --threads 1
# int4 weights (MatMulNBits, blocks of 32, head too, int8 activations): see MODEL.md, "Quantized weights"
$PY tools/train/export.py --workdir "$WORK/run" --tokenizer "$WORK/tokenizer.json" --out models/shakespeare \
  --quant int4 --block 32 --quant-head --accuracy-level 4
cp "$WORK/run/log.csv" models/shakespeare/loss.csv
$PY tools/train/plot.py models/shakespeare/loss.csv models/shakespeare/loss.png \
  --title "models/shakespeare: 3.7M-parameter Llama, 1,200 steps on 2-core CPU"
echo "build_default: models/shakespeare rebuilt; write MODEL.md's figures from models/shakespeare/loss.csv"
