#!/usr/bin/python3
"""longref.py - reference greedy ids and logits for long prompts, computed
without any of cohort's chunking, KV-cache or position code.

For every prompt in tests/data/long_prompt/prompts.json (lengths 1 .. 2047)
and every model folder given, it records the next STEPS greedy ids and, at
each step, the logits of a few ids, as computed by

  node     tools/ort_run.mjs "recompute": ONNX Runtime (onnxruntime-node) runs
           the whole sequence on empty past tensors at every step: no cache,
           no chunks, positions 0..T-1;
  numpy    (models with a model.safetensors, i.e. mkfixture fixtures) the
           float64 forward pass of tools/mkfixture.py (ref_forward), run once
           over prompt + node's greedy ids: the causal mask makes the logits
           at position t depend on tokens 0..t only, so one pass equals a
           full recompute at every step.

tests/test_long_prompt.c compares cohort's engine (chunked prefill, KV cache,
batching) against these files.  The files are committed: regenerate them when
a model's weights change (the test names the stale file):

  tools/longref.py --prompts-only                       (prompts.json)
  tools/longref.py build/fixtures/llama-long-plain-fp32 ... (one file each)
  tools/longref.py tests/data/models/ortgenai-tiny-llama-fp16

Logits recorded per step: the reference's 8 largest and 8 fixed probe ids.
"""

import argparse
import base64
import hashlib
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mkfixture  # noqa: E402

OUT_DIR = os.path.join(mkfixture.REPO_DIR, "tests", "data", "long_prompt")
LENGTHS = [1, 255, 511, 512, 513, 1000, 1500, 2047]
CONTEXT = 2048
STEPS = 8
PROBE_IDS = [3, 100, 1000, 5000, 12345, 20000, 29999, 31999]
SEED = 2026
VOCAB = 32000


def make_prompts():
    rng = np.random.default_rng(SEED)
    prompts = {}
    for n in LENGTHS:
        prompts[str(n)] = [1] + [int(x) for x in rng.integers(3, VOCAB, n - 1)]
    return {"seed": SEED, "vocab": VOCAB, "lengths": LENGTHS, "prompts": prompts}


def weights_file(d):
    for f in ("model.safetensors", "model.onnx.data", "model.onnx"):
        p = os.path.join(d, f)
        if os.path.isfile(p):
            return f, p
    raise SystemExit("longref: %s has no model files" % d)


def model_shape(d):
    """(kv_heads, head_dim, layers, context, ort type of the KV cache)."""
    import onnx
    m = onnx.load(os.path.join(d, "model.onnx"), load_external_data=False)
    types = {1: "float32", 10: "float16"}
    for i in m.graph.input:
        if i.name == "past_key_values.0.key":
            dims = [x.dim_value for x in i.type.tensor_type.shape.dim]
            kv_type = types[i.type.tensor_type.elem_type]
            break
    else:
        raise SystemExit("longref: %s has no input past_key_values.0.key" % d)
    gpath = os.path.join(d, "genai_config.json")
    if os.path.isfile(gpath):
        with open(gpath) as f:
            ctx = json.load(f)["model"]["context_length"]
    else:
        with open(os.path.join(d, "config.json")) as f:
            ctx = json.load(f)["max_position_embeddings"]
    return dims[1], dims[3], ctx, kv_type


def reference(d, prompts):
    node, ort_dir = mkfixture.find_ort_node()
    runner = mkfixture.OrtRunner(d)
    kv_heads, head_dim, ctx, kv_type = model_shape(d)
    np_ref = None
    if os.path.isfile(os.path.join(d, "model.safetensors")):
        np_ref = mkfixture.load_reference(d)
    wname, wpath = weights_file(d)
    with open(wpath, "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    out = {"model": os.path.basename(os.path.normpath(d)), "weights": wname, "weights_sha256": sha,
           "context": ctx, "steps": STEPS, "probe_ids": PROBE_IDS, "cases": []}
    worst_np = 0.0
    for n in prompts["lengths"]:
        ids = prompts["prompts"][str(n)]
        steps = min(STEPS, ctx - n)
        if steps <= 0:
            continue
        resp = runner._call({"model": runner.model, "recompute": {
            "input_ids": ids, "max_new_tokens": steps,
            "past": {"type": kv_type, "kv_heads": kv_heads, "head_dim": head_dim}}})
        out.setdefault("ort_node", resp["ort_version"])
        toks = resp["tokens"]
        rows = [np.frombuffer(base64.b64decode(t["b64"]), np.float32) for t in resp["logits"]]
        case = {"len": n, "greedy": toks, "logit_ids": [], "node": []}
        for r in rows:
            top = [int(i) for i in np.argsort(-r, kind="stable")[:8]]
            sel = top + PROBE_IDS
            case["logit_ids"].append(sel)
            case["node"].append([round(float(r[i]), 5) for i in sel])
        if np_ref is not None:
            cfg, w = np_ref
            seq = np.array([ids + toks[:-1]], np.int64)
            T = seq.shape[1]
            lg = mkfixture.ref_forward(cfg, w, seq, np.ones((1, T)), np.arange(T)[None])[0, n - 1:]
            case["numpy_greedy"] = [int(np.argmax(lg[i])) for i in range(steps)]
            case["numpy"] = [[round(float(lg[i][j]), 5) for j in case["logit_ids"][i]] for i in range(steps)]
            worst_np = max(worst_np, max(float(np.abs(lg[i].astype(np.float32) - rows[i]).max())
                                         for i in range(steps)))
        print("  %-28s len %4d: greedy %s%s" % (out["model"], n, toks,
              "" if np_ref is None else " numpy %s" % case["numpy_greedy"]))
        out["cases"].append(case)
    if np_ref is not None:
        out["node_vs_numpy_max_abs"] = worst_np
        print("  node vs numpy: max |dlogit| %.3g" % worst_np)
    return out


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="*", help="model folders")
    ap.add_argument("--prompts-only", action="store_true", help="(re)write prompts.json only")
    ap.add_argument("--out", default=OUT_DIR)
    a = ap.parse_args(argv)
    os.makedirs(a.out, exist_ok=True)
    ppath = os.path.join(a.out, "prompts.json")
    if a.prompts_only or not os.path.isfile(ppath):
        with open(ppath, "w") as f:
            json.dump(make_prompts(), f, separators=(",", ":"))
            f.write("\n")
    with open(ppath) as f:
        prompts = json.load(f)
    for d in a.models:
        r = reference(d, prompts)
        with open(os.path.join(a.out, r["model"] + ".json"), "w") as f:
            json.dump(r, f, separators=(",", ":"))
            f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
