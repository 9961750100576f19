#!/usr/bin/python3
"""export.py - write a trained checkpoint as a cohort model folder (ONNX Runtime GenAI layout).

  export.py --workdir W --tokenizer T.json --out models/shakespeare [--dtype fp16] [--context 512]
            [--max-bytes 16000000] [--quant int4 --block 32 --quant-head --accuracy-level 4]
  export.py --from-model models/shakespeare --tokenizer T.json --out DIR [...]
            (the weights of an exported folder's model.safetensors instead of a checkpoint:
            e.g. the shipped model re-exported with other quantization options)

The graph, config.json, genai_config.json and model.safetensors are written
by tools/mkfixture.py (the project's one ONNX graph writer), from the trained
weights instead of seeded random ones.  Embeddings are tied: the files hold
the embedding once.  Refuses a folder whose files add up to more than
--max-bytes (the repository's budget for the committed model).
"""

import argparse
import hashlib
import json
import os
import shutil
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import mkfixture  # noqa: E402

sys.path.insert(0, HERE)
import bpe_encode  # noqa: E402

# Prompts whose greedy continuations are recorded in greedy.json, computed by
# the reference stack (ONNX Runtime through node + onnxruntime-node, the
# graph run as a plain ONNX model), not by cohort; the tests check that
# cohort reproduces them.
GREEDY_PROMPTS = ["ROMEO:\n", "First Citizen:\nBefore we proceed any further, hear me speak.\n\n",
                  "JULIET:\nO Romeo, Romeo! wherefore art thou Romeo?\n"]
GREEDY_TOKENS = 32

# torch module names (train.py) -> Hugging Face Llama names (mkfixture's plan)
LAYER_NAMES = {
    "input_layernorm.weight": "input_layernorm.weight",
    "post_attention_layernorm.weight": "post_attention_layernorm.weight",
    "q_proj.weight": "self_attn.q_proj.weight",
    "k_proj.weight": "self_attn.k_proj.weight",
    "v_proj.weight": "self_attn.v_proj.weight",
    "o_proj.weight": "self_attn.o_proj.weight",
    "gate_proj.weight": "mlp.gate_proj.weight",
    "up_proj.weight": "mlp.up_proj.weight",
    "down_proj.weight": "mlp.down_proj.weight",
}


def hf_weights(state):
    out = {}
    for k, v in state.items():
        a = v.detach().cpu().float().numpy()
        if k == "embed_tokens.weight":
            out["model.embed_tokens.weight"] = a
        elif k == "norm.weight":
            out["model.norm.weight"] = a
        elif k.startswith("layers."):
            _, n, rest = k.split(".", 2)
            out["model.layers.%s.%s" % (n, LAYER_NAMES[rest])] = a
        else:
            raise SystemExit("export: unexpected tensor %s in the checkpoint" % k)
    return out


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workdir", help="train.py's --workdir (exports best.pt: the lowest validation loss)")
    ap.add_argument("--from-model", metavar="DIR",
                    help="export the weights of this model folder's model.safetensors (no checkpoint needed)")
    ap.add_argument("--checkpoint", help="export this checkpoint instead (e.g. W/ckpt.pt of a run in progress)")
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--out", required=True, help="model folder to write (replaced)")
    ap.add_argument("--dtype", choices=["fp32", "fp16", "fp16-weights"], default="fp16-weights",
                    help="fp16-weights (default): fp16 in the files, an fp32 graph (fp32 speed at fp16 size)")
    ap.add_argument("--context", type=int, default=512)
    ap.add_argument("--seed", type=int, default=1, help="the training seed, recorded in genai_config.json")
    ap.add_argument("--max-bytes", type=int, default=16 * 1000 * 1000)
    ap.add_argument("--quant", choices=["none", "int8", "int4"], default="none",
                    help="weight-only quantized linear projections (com.microsoft.MatMulNBits; docs/fixtures.md)")
    ap.add_argument("--block", type=int, default=32)
    ap.add_argument("--quant-head", action="store_true", help="--quant the output head too")
    ap.add_argument("--accuracy-level", type=int, default=0, help="MatMulNBits accuracy_level (4: int8 activations)")
    a = ap.parse_args(argv)
    if bool(a.workdir) == bool(a.from_model):
        sys.exit("export: give exactly one of --workdir and --from-model")
    if a.from_model:
        with open(os.path.join(a.from_model, "config.json")) as f:
            hc = json.load(f)
        cfg = dict(layers=hc["num_hidden_layers"], hidden=hc["hidden_size"], heads=hc["num_attention_heads"],
                   kv_heads=hc["num_key_value_heads"], intermediate=hc["intermediate_size"],
                   vocab=hc["vocab_size"])
        if not hc.get("tie_word_embeddings"):
            sys.exit("export: %s: not a tied-embedding model (export.py writes tied models)" % a.from_model)
        weights = {k: v.astype(np.float32) for k, v in
                   mkfixture.read_safetensors(os.path.join(a.from_model, "model.safetensors")).items()}
    else:
        import torch
        path = a.checkpoint or os.path.join(a.workdir, "best.pt")
        if not os.path.isfile(path):
            sys.exit("export: %s: no such file (has train.py finished?)" % path)
        ck = torch.load(path)
        if "cfg" not in ck:  # a resumable checkpoint: the config is beside it
            with open(os.path.join(a.workdir, "config.json")) as f:
                ck["cfg"] = json.load(f)
        cfg = ck["cfg"]
        weights = hf_weights(ck["model"])
    spec = dict(name=os.path.basename(os.path.normpath(a.out)), layers=cfg["layers"], hidden=cfg["hidden"],
                heads=cfg["heads"], kv_heads=cfg["kv_heads"], intermediate=cfg["intermediate"],
                vocab=cfg["vocab"], context=a.context, attention="plain",
                dtype="fp32" if a.dtype == "fp16-weights" else a.dtype,
                weights_dtype="fp16" if a.dtype.startswith("fp16") else "fp32", layout="genai",
                seed=a.seed, tied=True, bos=0, eos=0, pad=0, tokenizer=a.tokenizer,
                generator="tools/train/train.py + tools/train/export.py")
    if a.quant != "none":
        spec.update(quant=a.quant, block=a.block, quant_sym=True, quant_head=a.quant_head,
                    accuracy_level=a.accuracy_level)
    out_parent = os.path.dirname(os.path.abspath(a.out))
    keep = {}  # the hand-written model card, chat template and the training curve survive a re-export
    for name in ("MODEL.md", "chat_template.jinja", "loss.csv", "loss.png"):
        card = os.path.join(a.out, name)
        if os.path.isfile(card):
            with open(card, "rb") as f:
                keep[name] = f.read()
    path, _ = mkfixture.write_model(spec, out_parent, force=True, weights=weights)
    os.remove(os.path.join(path, mkfixture.STAMP))  # the stamp marks random fixtures only
    for name, data in keep.items():
        with open(os.path.join(path, name), "wb") as f:
            f.write(data)
    enc = bpe_encode.Encoder(os.path.join(path, "tokenizer.json"))
    ort = mkfixture.OrtRunner(path)
    cases = []
    for p in GREEDY_PROMPTS:
        ids = enc.encode(p)
        cases.append({"prompt": p, "prompt_ids": ids, "greedy_ids": ort.generate(ids, GREEDY_TOKENS)})
    with open(os.path.join(path, "greedy.json"), "w") as f:
        json.dump({"generator": "onnxruntime-node 1.29.0 (tools/ort_run.mjs), greedy, KV cache, batch 1",
                   "cases": cases}, f, indent=1)
        f.write("\n")
    names = sorted(f for f in os.listdir(path) if f not in ("SHA256SUMS", "MODEL.md", "loss.csv", "loss.png"))
    with open(os.path.join(path, "SHA256SUMS"), "w") as f:
        for n in names:
            with open(os.path.join(path, n), "rb") as g:
                f.write("%s  %s\n" % (hashlib.sha256(g.read()).hexdigest(), n))
    total = sum(os.path.getsize(os.path.join(path, f)) for f in os.listdir(path))
    if total > a.max_bytes:
        shutil.rmtree(path)
        sys.exit("export: the model folder would be %d bytes, over the budget of %d" % (total, a.max_bytes))
    print("export: %s (%d bytes, %s%s)" % (path, total, a.dtype, "" if a.quant == "none" else
                                          ", %s block %d%s, accuracy_level %d" % (
                                              a.quant, a.block, " + head" if a.quant_head else "",
                                              a.accuracy_level)))


if __name__ == "__main__":
    main(sys.argv[1:])
