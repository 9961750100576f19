#!/usr/bin/env bash
# roofline_bytes.sh — bench/roofline_bytes.py (the weight bytes a decoded
# token reads, the roofline's denominator in bench/run_roofline.sh) against
# an independent count from the fixtures' model.safetensors headers:
#   fp32: every tensor in full, except the token-embedding table (one row);
#   int4 / int8 twins (block 32, symmetric, head quantized, fp32 scales, no
#   zero points): each linear N x K matrix as N * ceil(K/32) blocks of
#   32 * bits / 8 bytes plus one 4-byte scale per block; norms in fp32;
#   fp16-stored fixture: the same as fp32 at half the width.
# The ONNX graphs also hold rotary cos/sin tables (read one row) and shape
# constants: a few hundred bytes, allowed as slack.  Then the error exits:
# a missing folder and a file that is not ONNX give exit 1 naming the path.
set -euo pipefail
: "${COH_FIXTURES:?}" "${COH_SOURCE_DIR:?}"
PY=${COH_PYTHON:-/usr/bin/python3}
TOOL="$COH_SOURCE_DIR/bench/roofline_bytes.py"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

for m in llama-tiny-plain-fp32 llama-tiny-plain-fp16 llama-tiny-plain-int4-acc4 llama-tiny-plain-int8-acc4; do
  rc=0
  "$PY" "$TOOL" "$COH_FIXTURES/$m" >"$TMP/$m.json" 2>"$TMP/$m.err" || rc=$?
  [ "$rc" -eq 0 ] || { cat "$TMP/$m.err" >&2; fail "$m: exit $rc"; }
done

"$PY" - "$COH_FIXTURES" "$TMP" <<'EOF' || fail "byte counts differ (above)"
import json, os, struct, sys
fx, tmp = sys.argv[1], sys.argv[2]
SLACK = 1024  # rotary rows and shape constants in the graph, not in safetensors

def header(model):
    with open(os.path.join(fx, model, "model.safetensors"), "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        h = json.loads(f.read(n))
    h.pop("__metadata__", None)
    return h

def expected(model, width, bits):
    exp = 0
    for name, t in header(model).items():
        shape = t["shape"]
        count = 1
        for d in shape:
            count *= d
        if name == "model.embed_tokens.weight":
            exp += shape[1] * width  # one row
        elif bits and len(shape) == 2:
            n, k = shape
            blocks = (k + 31) // 32
            exp += n * blocks * (32 * bits // 8 + 4)
        else:
            exp += count * width
    return exp

bad = 0
for model, width, bits in (("llama-tiny-plain-fp32", 4, 0), ("llama-tiny-plain-fp16", 2, 0),
                           ("llama-tiny-plain-int4-acc4", 4, 4), ("llama-tiny-plain-int8-acc4", 4, 8)):
    with open(os.path.join(tmp, model + ".json")) as f:
        got = json.loads(f.readline())["read_per_token"]
    exp = expected(model, width, bits)
    ok = exp <= got <= exp + SLACK
    print("%-28s read per token %9d, expected %9d (+%d slack): %s" % (model, got, exp, SLACK, "ok" if ok else "WRONG"))
    bad += not ok
# the quantized twins must read fewer bytes than the float model
g = {m: json.load(open(os.path.join(tmp, m + ".json")))["read_per_token"]
     for m in ("llama-tiny-plain-fp32", "llama-tiny-plain-int8-acc4", "llama-tiny-plain-int4-acc4")}
if not g["llama-tiny-plain-int4-acc4"] < g["llama-tiny-plain-int8-acc4"] < g["llama-tiny-plain-fp32"]:
    print("order of bytes int4 < int8 < fp32 violated: %s" % g)
    bad += 1
sys.exit(1 if bad else 0)
EOF

# error exits: a missing folder, and a model.onnx that is not ONNX
set +e
"$PY" "$TOOL" "$TMP/nowhere" >/dev/null 2>"$TMP/err1"; rc1=$?
mkdir -p "$TMP/junk" && printf 'not a protobuf \377\377\377' >"$TMP/junk/model.onnx"
"$PY" "$TOOL" "$TMP/junk" >/dev/null 2>"$TMP/err2"; rc2=$?
set -e
[ "$rc1" -eq 1 ] && grep -q "$TMP/nowhere/model.onnx: no such file" "$TMP/err1" || { cat "$TMP/err1" >&2; fail "missing folder: exit $rc1"; }
[ "$rc2" -eq 1 ] && grep -q "$TMP/junk/model.onnx: not an ONNX model" "$TMP/err2" || { cat "$TMP/err2" >&2; fail "junk model: exit $rc2"; }
echo "roofline_bytes: ok"
