#!/usr/bin/env bash
# quant_accuracy.sh - weight-only quantized models against their float model,
# on the default model's real trained weights (models/shakespeare):
#  - tools/mkfixture.py --from writes the float model from the folder's
#    model.safetensors (byte for byte the graph shipped before quantization:
#    its sha256 is pinned below) and the int8 and int4 twins; --verify finds
#    their MatMulNBits blocks equal to a re-quantization of the float weights;
#    the shipped model.onnx is reproduced byte for byte from its own
#    cohort_fixture.quant options;
#  - tools/quant_eval.py (ONNX Runtime through onnxruntime-node) on the first
#    QUANT_EVAL_CHARS characters of the held-out text: top-1 agreement with
#    the float model, the rise of bits per character, the largest logit error
#    relative to the largest logit, and greedy agreement over 16 prompts (32
#    tokens each), within limits set with a margin around the whole-text
#    figures of docs/inference.md ("Quantized weights");
# Only Python tools and onnxruntime-node run here, no cohort code (label
# tool: the gcc suite runs it, the clang and sanitizer suites do not).
# That cohort (the bundled libonnxruntime, C API) reproduces
# onnxruntime-node's greedy ids on the int8 and int4 twins is
# tests/quant_greedy.sh, which every suite runs.
# Batch invariance of quantized models: tests/test_engine.c
# (test_batching_int8 / _int4 / _gqa_int4 / _int4_acc4).
set -euo pipefail
PY=${COH_PYTHON:-/usr/bin/python3}
SRC=${COH_SOURCE_DIR:?}
M="$SRC/models/shakespeare"
CHARS=${QUANT_EVAL_CHARS:-12000}
# sha256 of models/shakespeare/model.onnx as shipped before quantization
# (fp16 weights under an fp32 graph, commit ff171b4)
FLOAT_ONNX_SHA=6b1b36054de5ec02c52fca4a588a7558a428b3e8520d2dc7273a01833d0fae53
export COH_ORT_NODE_DIR=${COH_ORT_NODE_DIR:-$SRC/bench/node_ref/node_modules/onnxruntime-node}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0; fail=0
ok()  { echo "ok: $*"; pass=$((pass + 1)); }
bad() { echo "FAIL: $*"; fail=$((fail + 1)); }
TOOL="$SRC/tools/mkfixture.py"

[ -f "$COH_ORT_NODE_DIR/package.json" ] || { bad "onnxruntime-node missing at $COH_ORT_NODE_DIR (scripts/setup.sh)"; exit 1; }
"$PY" "$TOOL" --from "$M" --name float --out "$tmp" >/dev/null
[ "$(sha256sum < "$tmp/float/model.onnx" | cut -d' ' -f1)" = $FLOAT_ONNX_SHA ] &&
  ok "float model from model.safetensors = the graph shipped before quantization" || bad "float model differs"
for q in int8 int4; do
  "$PY" "$TOOL" --quant "$q" --block 32 --from "$M" --name "$q" --out "$tmp" >/dev/null &&
    "$PY" "$TOOL" --verify "$tmp/$q" >/dev/null && ok "$q twin written and verified" || bad "$q twin"
done
"$PY" "$TOOL" --verify "$M" >/dev/null && ok "shipped model verifies" || bad "shipped model --verify"
# the shipped graph, re-made from its recorded quantization options
args=$("$PY" - "$M/genai_config.json" <<'PYEOF'
import json, sys
q = json.load(open(sys.argv[1]))["cohort_fixture"].get("quant")
if q:
    a = ["--quant", q["type"], "--block", str(q["block_size"]), "--accuracy-level", str(q["accuracy_level"])]
    a += [] if q["symmetric"] else ["--asym"]
    a += ["--quant-head"] if q["head"] else []
    print(" ".join(a))
PYEOF
)
# shellcheck disable=SC2086
"$PY" "$TOOL" $args --from "$M" --name shipped --out "$tmp" >/dev/null
cmp -s "$tmp/shipped/model.onnx" "$M/model.onnx" && ok "shipped model.onnx reproduced (${args:-float})" ||
  bad "shipped model.onnx is not what mkfixture writes for '${args}'"
b8=$(stat -c %s "$tmp/int8/model.onnx"); b4=$(stat -c %s "$tmp/int4/model.onnx")
bf=$(stat -c %s "$tmp/float/model.onnx")
[ "$b4" -lt "$b8" ] && [ "$b8" -lt "$bf" ] && ok "model.onnx bytes: int4 $b4 < int8 $b8 < fp16 weights $bf" ||
  bad "sizes: int4 $b4 int8 $b8 float $bf"

twins=("$tmp/int8" "$tmp/int4")
[ -n "$args" ] && twins+=("$M")
if "$PY" "$SRC/tools/quant_eval.py" --base "$tmp/float" --quant "${twins[@]}" --max-eval-chars "$CHARS" \
     --json "$tmp/eval.json"; then
  ok "quant_eval ran"
else
  bad "quant_eval failed"
fi
# limits per twin: min held-out top-1, max bits/char rise, min greedy tokens
# equal, max relative logit error (whole-text figures: int8 99.7% / +0.01% /
# 100% / 0.004; int4 94.9% / +0.04% / 57% / 0.053; int4 + head at accuracy
# level 4 92.1% / +0.18% / 42% / 0.077; int8 + head at accuracy level 4,
# shipped: 99.2% / +0.00% / 88% / 0.0082)
"$PY" - "$tmp/eval.json" "$tmp" "$M" <<'PYEOF' && ok "every twin within its limits" || bad "accuracy limits"
import json, os, sys
res = json.load(open(sys.argv[1]))["models"]
limits = {os.path.join(sys.argv[2], "int8"): (0.99, 0.002, 0.95, 0.01),
          os.path.join(sys.argv[2], "int4"): (0.92, 0.01, 0.35, 0.08),
          sys.argv[3]: (0.98, 0.002, 0.7, 0.02)}
bad = 0
for d, (top1, rise, greedy, rel) in limits.items():
    if d not in res:
        continue
    m = res[d]
    checks = [("held-out top-1", m["heldout_top1_agree"], top1, True), ("bits/char rise", m["bpc_rise"], rise, False),
              ("greedy tokens equal", m["greedy_tokens_equal"], greedy, True),
              ("max rel logit", m["logit_max_rel"], rel, False)]
    for name, v, lim, low in checks:
        good = v >= lim if low else v <= lim
        bad += not good
        print("  %-28s %-22s %.4f (%s %.4f) %s" % (os.path.basename(d), name, v, ">=" if low else "<=", lim,
                                                  "ok" if good else "FAIL"))
sys.exit(1 if bad else 0)
PYEOF

echo "$pass passed, $fail failed"
[ $fail = 0 ]
