#!/usr/bin/env bash
# grammar_gen_ajv.sh — constrained generation under 200 MaskBench JSON Schemas
# (tests/data/genschemas.jsonl) with a random-weight fixture: every output
# that cohort reports complete must parse as JSON and validate with Ajv
# (tests/ajvref, an independent validator).  A schema the grammar engine
# reports unsupported is counted and printed as skipped, never as passed;
# an output cut off by --max-tokens is counted and printed as incomplete.
# The test fails on any invalid output, on any other error, and when fewer
# than GEN_MIN_COMPLETE outputs are complete (so it cannot pass vacuously).
set -u
BIN=${COH_BIN:?} SRC=${COH_SOURCE_DIR:?} FIX=${COH_FIXTURES:?}
PY=${COH_PYTHON:-/usr/bin/python3}
MODEL="$FIX/llama-long-plain-fp32"   # context 2048
MAX_TOKENS=${GEN_MAX_TOKENS:-384}
MIN_COMPLETE=${GEN_MIN_COMPLETE:-100}
AJV="$SRC/tests/ajvref"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if [ ! -f "$AJV/node_modules/ajv/package.json" ] || [ ! -f "$AJV/node_modules/ajv-formats/package.json" ]; then
  echo "FAIL: Ajv is not installed in tests/ajvref (run scripts/setup.sh)"; exit 1
fi

"$PY" - "$BIN" "$MODEL" "$SRC/tests/data/genschemas.jsonl" "$tmp" "$MAX_TOKENS" <<'PYEOF' || exit 1
import json, os, re, subprocess, sys
binp, model, data, tmp, max_tokens = sys.argv[1:6]
counts = {"complete": 0, "incomplete": 0, "unsupported": 0, "errors": 0}
with open(data) as f, open(os.path.join(tmp, "complete.jsonl"), "w") as out:
    for n, line in enumerate(f):
        if n >= 1000: break  # bound: the file holds 200
        rec = json.loads(line)
        path = os.path.join(tmp, "schema.json")
        with open(path, "w") as sf: json.dump(rec["schema"], sf)
        p = subprocess.run([binp, "generate", "--model", model, "--device", "cpu", "--threads", "1",
                            "--json-schema", path, "--max-tokens", max_tokens, "--verbose",
                            "--prompt-ids", "1"], capture_output=True, timeout=300)
        err = p.stderr.decode("utf-8", "replace")
        if p.returncode == 1 and "unsupported" in err:
            counts["unsupported"] += 1
            print("SKIPPED (unsupported) %s: %s" % (rec["name"], err.strip().splitlines()[-1][:200]))
            continue
        m = re.search(r"generated (\d+) \((\w+)\)", err)
        if p.returncode != 0 or m is None:
            counts["errors"] += 1
            print("ERROR %s: exit %d: %s" % (rec["name"], p.returncode, err.strip()[:400]))
            continue
        text = p.stdout.decode("utf-8", "replace")
        if m.group(2) == "eos":
            counts["complete"] += 1
            out.write(json.dumps({"name": rec["name"], "schema": rec["schema"], "output": text}) + "\n")
        else:
            counts["incomplete"] += 1
            print("INCOMPLETE (%s after %s tokens) %s" % (m.group(2), m.group(1), rec["name"]))
print("generation: " + json.dumps(counts))
with open(os.path.join(tmp, "counts.json"), "w") as cf: json.dump(counts, cf)
sys.exit(1 if counts["errors"] else 0)
PYEOF

node "$AJV/validate.mjs" "$tmp/complete.jsonl" || { echo "FAIL: outputs that do not validate (above)"; exit 1; }
complete=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["complete"])' "$tmp/counts.json")
if [ "$complete" -lt "$MIN_COMPLETE" ]; then
  echo "FAIL: only $complete complete outputs (at least $MIN_COMPLETE expected)"; exit 1
fi
echo "ok   $complete complete outputs validate with Ajv"
