#!/usr/bin/env bash
# quant_greedy.sh - cohort (the bundled libonnxruntime through the C API)
# reproduces onnxruntime-node's greedy ids on the int8 and int4 twins of the
# default model's real trained weights (models/shakespeare): the twins are
# written by tools/mkfixture.py --quant --from, the reference ids come from
# mkfixture's OrtRunner (onnxruntime-node), cohort's from `cohort generate`.
# The accuracy of the twins themselves (Python tools and onnxruntime-node
# only, no cohort code) is tests/quant_accuracy.sh.  This half is its own
# test so that the sanitizer suite runs the cohort part without the other
# (label tool: tests/CMakeLists.txt, docs/testing.md).
set -euo pipefail
PY=${COH_PYTHON:-/usr/bin/python3}
SRC=${COH_SOURCE_DIR:?}
BIN=${COH_BIN:?}
M="$SRC/models/shakespeare"
export COH_ORT_NODE_DIR=${COH_ORT_NODE_DIR:-$SRC/bench/node_ref/node_modules/onnxruntime-node}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0; fail=0
ok()  { echo "ok: $*"; pass=$((pass + 1)); }
bad() { echo "FAIL: $*"; fail=$((fail + 1)); }
TOOL="$SRC/tools/mkfixture.py"

[ -f "$COH_ORT_NODE_DIR/package.json" ] || { bad "onnxruntime-node missing at $COH_ORT_NODE_DIR (scripts/setup.sh)"; exit 1; }
for q in int8 int4; do
  d="$tmp/$q"
  "$PY" "$TOOL" --quant "$q" --block 32 --from "$M" --name "$q" --out "$tmp" >/dev/null ||
    { bad "$q twin not written"; continue; }
  want=$("$PY" - "$d" <<'PYEOF'
import os, sys
sys.path.insert(0, os.path.join(os.environ["COH_SOURCE_DIR"], "tools"))
import mkfixture
print(",".join(map(str, mkfixture.OrtRunner(sys.argv[1]).generate([11, 74, 458, 322, 305], 24))))
PYEOF
)
  got=$("$BIN" generate --model "$d" --threads 1 --prompt-ids 11,74,458,322,305 --max-tokens 24 --ignore-eos \
        --print-ids 2>/dev/null | tail -1 | tr -d '[] ')
  [ -n "$want" ] && [ "$got" = "$want" ] && ok "$q: cohort's greedy ids equal onnxruntime-node's" ||
    bad "$q: cohort $got, onnxruntime-node $want"
done

echo "$pass passed, $fail failed"
[ $fail = 0 ] && [ $pass = 2 ]
