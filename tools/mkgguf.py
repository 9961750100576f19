#!/usr/bin/python3
"""mkgguf.py - write a cohort fixture's weights as a GGUF file for llama.cpp.

Bench tool only (bench/llamacpp/): the runtime never reads GGUF.  Reads the
Hugging Face twin that every fixture folder carries (config.json +
model.safetensors, the identical weights as model.onnx) and tokenizer.json,
and writes one GGUF v3 file with llama architecture metadata, the tokenizer
in GGUF metadata, and the tensors in F32, F16, Q8_0 or Q4_0.

Usage
  mkgguf.py MODEL_DIR --type f32|f16|q8_0|q4_0 --out FILE.gguf

Format (ggml docs/gguf.md), all little-endian:
  "GGUF", version u32 = 3, tensor count u64, metadata KV count u64,
  KV pairs (string key, u32 value type, value), tensor infos (string name,
  u32 n_dims, u64 dims[n_dims] innermost first, u32 ggml type, u64 offset
  into the data section), zero padding to general.alignment, tensor data
  (each tensor at an offset that is a multiple of the alignment).
  A string is a u64 byte length and UTF-8 bytes (no terminator).

Quantization (ggml's reference rounding, written here from its definition):
  Q8_0: blocks of 32 values along a row: fp16 scale d = max|x| / 127 and 32
        int8 q = round(x / d); value = q * d.  34 bytes per block.
  Q4_0: blocks of 32: m = the value of largest magnitude (sign kept),
        d = m / -8, q = min(15, trunc(x / d + 8.5)), fp16 d then 16 bytes:
        byte j holds q[j] in its low nibble and q[j + 16] in its high nibble;
        value = (q - 8) * d.  18 bytes per block.
  Norm weights (1-D) stay F32 in every type, as llama.cpp's converter does.

Rotary layout: the fixtures (and Hugging Face Llama) rotate the two HALVES of
each head (x[i] with x[i + D/2], "NeoX" style); llama.cpp's LLM_ARCH_LLAMA
rotates adjacent PAIRS (x[2i] with x[2i + 1]).  Attention scores are
invariant under one permutation of the head dimensions applied to both q and
k, so the rows of q_proj and k_proj are reordered within each head from
[half0 | half1] to interleaved [h0[0], h1[0], h0[1], h1[1], ...].  The greedy
agreement check in bench/llamacpp/run.sh proves the result.
"""

import argparse
import json
import os
import struct
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mkfixture  # noqa: E402  (read_safetensors)

GGUF_MAGIC = b"GGUF"
GGUF_VERSION = 3
ALIGNMENT = 32

# metadata value types
T_U8, T_I8, T_U16, T_I16, T_U32, T_I32, T_F32, T_BOOL, T_STR, T_ARR, T_U64, T_I64, T_F64 = range(13)
# ggml tensor types and llama file types
GGML = {"f32": 0, "f16": 1, "q4_0": 2, "q8_0": 8}
FILE_TYPE = {"f32": 0, "f16": 1, "q4_0": 2, "q8_0": 7}
QK = 32
# llama token types
TOK_NORMAL, TOK_UNKNOWN, TOK_CONTROL, TOK_USER, TOK_UNUSED, TOK_BYTE = 1, 2, 3, 4, 5, 6


class GGUFError(Exception):
    pass


# ---------------------------------------------------------------------------
# quantization


def quant_q8_0(w):
    """w: float32 [rows, cols], cols % 32 == 0 -> bytes (rows * cols/32 blocks)."""
    blocks = w.astype(np.float32).reshape(-1, QK)
    amax = np.abs(blocks).max(axis=1)
    d = amax / 127.0
    inv = np.where(d > 0, 1.0 / np.where(d > 0, d, 1), 0).astype(np.float32)
    q = np.rint(blocks * inv[:, None]).astype(np.int8)  # round half to even; ggml uses roundf (half away)
    # ggml's reference uses roundf (ties away from zero): fix the exact ties
    x = blocks * inv[:, None]
    ties = np.abs(x - np.trunc(x)) == 0.5
    if ties.any():
        q[ties] = (np.trunc(x[ties]) + np.sign(x[ties])).astype(np.int8)
    out = np.empty(blocks.shape[0], dtype=[("d", "<f2"), ("qs", "i1", (QK,))])
    out["d"] = d.astype(np.float16)
    out["qs"] = q
    return out.tobytes()


def quant_q4_0(w):
    blocks = w.astype(np.float32).reshape(-1, QK)
    idx = np.abs(blocks).argmax(axis=1)
    m = blocks[np.arange(blocks.shape[0]), idx]
    d = m / -8.0
    inv = np.where(d != 0, 1.0 / np.where(d != 0, d, 1), 0).astype(np.float32)
    q = np.minimum(15, np.trunc(blocks * inv[:, None] + 8.5)).astype(np.uint8)
    packed = (q[:, :QK // 2] & 0x0F) | ((q[:, QK // 2:] & 0x0F) << 4)
    out = np.empty(blocks.shape[0], dtype=[("d", "<f2"), ("qs", "u1", (QK // 2,))])
    out["d"] = d.astype(np.float16)
    out["qs"] = packed
    return out.tobytes()


def dequant(kind, raw, shape):
    """Inverse of the above (for the self-check)."""
    if kind == "q8_0":
        b = np.frombuffer(raw, dtype=[("d", "<f2"), ("qs", "i1", (QK,))])
        v = b["qs"].astype(np.float32) * b["d"].astype(np.float32)[:, None]
    elif kind == "q4_0":
        b = np.frombuffer(raw, dtype=[("d", "<f2"), ("qs", "u1", (QK // 2,))])
        lo = (b["qs"] & 0x0F).astype(np.float32) - 8
        hi = (b["qs"] >> 4).astype(np.float32) - 8
        v = np.concatenate([lo, hi], axis=1) * b["d"].astype(np.float32)[:, None]
    else:
        raise GGUFError("dequant: %s" % kind)
    return v.reshape(shape)


def tensor_bytes(kind, w):
    if w.ndim == 1 or kind == "f32":
        return GGML["f32"], np.ascontiguousarray(w, dtype="<f4").tobytes()
    if kind == "f16":
        return GGML["f16"], np.ascontiguousarray(w, dtype="<f2").tobytes()
    if w.shape[-1] % QK:
        raise GGUFError("row length %d is not a multiple of %d: cannot write %s" % (w.shape[-1], QK, kind))
    if kind == "q8_0":
        return GGML["q8_0"], quant_q8_0(w)
    return GGML["q4_0"], quant_q4_0(w)


# ---------------------------------------------------------------------------
# GGUF encoding


def enc_str(s):
    b = s.encode("utf-8")
    return struct.pack("<Q", len(b)) + b


SCALAR = {T_U8: "<B", T_I8: "<b", T_U16: "<H", T_I16: "<h", T_U32: "<I", T_I32: "<i", T_F32: "<f",
          T_BOOL: "<?", T_U64: "<Q", T_I64: "<q", T_F64: "<d"}
NP_ARR = {T_I32: "<i4", T_F32: "<f4", T_U32: "<u4"}


def enc_value(t, v, elem=None):
    if t == T_STR:
        return enc_str(v)
    if t == T_ARR:
        head = struct.pack("<IQ", elem, len(v))
        if elem == T_STR:
            return head + b"".join(enc_str(x) for x in v)
        return head + np.asarray(v, dtype=NP_ARR[elem]).tobytes()
    return struct.pack(SCALAR[t], v)


def write_gguf(path, kvs, tensors):
    """kvs: list of (key, type, value[, elem type]); tensors: list of
    (name, dims innermost first, ggml type, bytes)."""
    head = GGUF_MAGIC + struct.pack("<IQQ", GGUF_VERSION, len(tensors), len(kvs))
    meta = b"".join(enc_str(kv[0]) + struct.pack("<I", kv[1]) + enc_value(*kv[1:]) for kv in kvs)
    infos, off = [], 0
    for name, dims, gtype, data in tensors:
        infos.append(enc_str(name) + struct.pack("<I", len(dims)) + struct.pack("<%dQ" % len(dims), *dims)
                     + struct.pack("<IQ", gtype, off))
        off += len(data)
        off += -off % ALIGNMENT
    pre = head + meta + b"".join(infos)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(pre)
        f.write(b"\0" * (-len(pre) % ALIGNMENT))
        for _, _, _, data in tensors:
            f.write(data)
            f.write(b"\0" * (-len(data) % ALIGNMENT))
    os.replace(tmp, path)


# ---------------------------------------------------------------------------
# tokenizer


def byte_unicode_map():
    """GPT-2's byte -> printable character map (bytes_to_unicode)."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    cs, n = keep[:], 0
    for b in range(256):
        if b not in keep:
            keep.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(keep, (chr(c) for c in cs)))


def tokenizer_kvs(tok_path, cfg):
    with open(tok_path) as f:
        tj = json.load(f)
    model = tj.get("model") or {}
    if model.get("type") != "BPE":
        raise GGUFError("%s: model.type %r: only BPE tokenizers are supported" % (tok_path, model.get("type")))
    vocab = model["vocab"]
    n = cfg["vocab_size"]
    tokens = [None] * n
    for t, i in vocab.items():
        if not 0 <= i < n:
            raise GGUFError("%s: model.vocab[%r] = %d is outside the vocabulary of %d" % (tok_path, t, i, n))
        tokens[i] = t
    special = set()
    for a in tj.get("added_tokens") or []:
        if not 0 <= a["id"] < n:
            raise GGUFError("%s: added_tokens id %d is outside the vocabulary" % (tok_path, a["id"]))
        tokens[a["id"]] = a["content"]
        if a.get("special"):
            special.add(a["id"])
    missing = [i for i, t in enumerate(tokens) if t is None]
    for i in missing:  # ids the tokenizer never produces (embedding rows beyond it)
        tokens[i] = "[PAD%d]" % i
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges") or []]
    pre = tj.get("pre_tokenizer") or {}
    byte_level = pre.get("type") == "ByteLevel" or (tj.get("decoder") or {}).get("type") == "ByteLevel"
    kv = []
    if byte_level:
        if pre.get("type") != "ByteLevel" or not pre.get("use_regex", True) or pre.get("add_prefix_space"):
            raise GGUFError("%s: pre_tokenizer %s: only plain ByteLevel with GPT-2's regex maps to "
                            "llama.cpp's \"gpt-2\" pre-tokenizer" % (tok_path, json.dumps(pre)))
        types = [TOK_CONTROL if i in special else (TOK_UNUSED if i in missing else TOK_NORMAL) for i in range(n)]
        kv += [("tokenizer.ggml.model", T_STR, "gpt2"),
               # ByteLevel(use_regex) is GPT-2's split regex: llama.cpp's "gpt-2" pre-tokenizer
               ("tokenizer.ggml.pre", T_STR, "gpt-2"),
               ("tokenizer.ggml.tokens", T_ARR, tokens, T_STR),
               ("tokenizer.ggml.token_type", T_ARR, types, T_I32),
               ("tokenizer.ggml.merges", T_ARR, merges, T_STR)]
    else:
        # SentencePiece-style BPE (Metaspace, byte fallback): llama.cpp's "llama"
        # vocabulary; scores order the merges (earlier vocabulary entry first)
        types, scores = [], []
        for i, t in enumerate(tokens):
            if i in special:
                types.append(TOK_UNKNOWN if t == "<unk>" else TOK_CONTROL)
                scores.append(0.0)
            elif len(t) == 6 and t.startswith("<0x") and t.endswith(">"):
                types.append(TOK_BYTE)
                scores.append(0.0)
            else:
                types.append(TOK_UNUSED if i in missing else TOK_NORMAL)
                scores.append(-float(i))
        kv += [("tokenizer.ggml.model", T_STR, "llama"),
               ("tokenizer.ggml.tokens", T_ARR, tokens, T_STR),
               ("tokenizer.ggml.scores", T_ARR, scores, T_F32),
               ("tokenizer.ggml.token_type", T_ARR, types, T_I32)]
    bos, eos = cfg.get("bos_token_id"), cfg.get("eos_token_id")
    if isinstance(eos, list):
        eos = eos[0]
    if bos is not None:
        kv.append(("tokenizer.ggml.bos_token_id", T_U32, int(bos)))
    if eos is not None:
        kv.append(("tokenizer.ggml.eos_token_id", T_U32, int(eos)))
    if cfg.get("pad_token_id") is not None:
        kv.append(("tokenizer.ggml.padding_token_id", T_U32, int(cfg["pad_token_id"])))
    kv.append(("tokenizer.ggml.add_bos_token", T_BOOL, False))
    return kv


# ---------------------------------------------------------------------------
# model


def permute_rope(w, n_head):
    """[n_head * D, in] rows per head [half0 | half1] -> interleaved pairs."""
    out, inp = w.shape
    D = out // n_head
    return w.reshape(n_head, 2, D // 2, inp).swapaxes(1, 2).reshape(out, inp)


def build(model_dir, kind, name=None):
    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = json.load(f)
    if cfg.get("model_type") != "llama":
        raise GGUFError("%s/config.json: model_type %r: only llama" % (model_dir, cfg.get("model_type")))
    for k in ("hidden_size", "intermediate_size", "num_attention_heads", "num_hidden_layers",
              "vocab_size", "max_position_embeddings"):
        if not isinstance(cfg.get(k), int) or cfg[k] <= 0:
            raise GGUFError("%s/config.json: field %s must be a positive integer" % (model_dir, k))
    if cfg.get("rope_scaling"):
        raise GGUFError("%s/config.json: rope_scaling is not supported" % model_dir)
    H, NH = cfg["hidden_size"], cfg["num_attention_heads"]
    KV = cfg.get("num_key_value_heads", NH)
    D = cfg.get("head_dim", H // NH)
    L = cfg["num_hidden_layers"]
    w = mkfixture.read_safetensors(os.path.join(model_dir, "model.safetensors"))

    def get(n, shape):
        if n not in w:
            raise GGUFError("%s/model.safetensors: tensor %s is missing" % (model_dir, n))
        a = np.asarray(w[n], dtype=np.float32)
        if tuple(a.shape) != tuple(shape):
            raise GGUFError("%s/model.safetensors: %s has shape %s, expected %s"
                            % (model_dir, n, list(a.shape), list(shape)))
        return a

    I, V = cfg["intermediate_size"], cfg["vocab_size"]
    plan = [("token_embd.weight", get("model.embed_tokens.weight", (V, H)))]
    for l in range(L):
        p, b = "model.layers.%d." % l, "blk.%d." % l
        plan += [
            (b + "attn_norm.weight", get(p + "input_layernorm.weight", (H,))),
            (b + "attn_q.weight", permute_rope(get(p + "self_attn.q_proj.weight", (NH * D, H)), NH)),
            (b + "attn_k.weight", permute_rope(get(p + "self_attn.k_proj.weight", (KV * D, H)), KV)),
            (b + "attn_v.weight", get(p + "self_attn.v_proj.weight", (KV * D, H))),
            (b + "attn_output.weight", get(p + "self_attn.o_proj.weight", (H, NH * D))),
            (b + "ffn_norm.weight", get(p + "post_attention_layernorm.weight", (H,))),
            (b + "ffn_gate.weight", get(p + "mlp.gate_proj.weight", (I, H))),
            (b + "ffn_up.weight", get(p + "mlp.up_proj.weight", (I, H))),
            (b + "ffn_down.weight", get(p + "mlp.down_proj.weight", (H, I))),
        ]
    plan.append(("output_norm.weight", get("model.norm.weight", (H,))))
    if not cfg.get("tie_word_embeddings"):
        plan.append(("output.weight", get("lm_head.weight", (V, H))))
    # (tied: no output.weight; llama.cpp then uses token_embd for the output)

    tensors = []
    for n, a in plan:
        gtype, data = tensor_bytes(kind, a)
        tensors.append((n, list(reversed(a.shape)), gtype, data))

    kvs = [("general.architecture", T_STR, "llama"),
           ("general.name", T_STR, name or os.path.basename(os.path.normpath(model_dir))),
           ("general.file_type", T_U32, FILE_TYPE[kind]),
           ("general.alignment", T_U32, ALIGNMENT),
           ("llama.context_length", T_U32, cfg["max_position_embeddings"]),
           ("llama.embedding_length", T_U32, H),
           ("llama.block_count", T_U32, L),
           ("llama.feed_forward_length", T_U32, I),
           ("llama.attention.head_count", T_U32, NH),
           ("llama.attention.head_count_kv", T_U32, KV),
           ("llama.attention.key_length", T_U32, D),
           ("llama.attention.value_length", T_U32, D),
           ("llama.rope.dimension_count", T_U32, D),
           ("llama.rope.freq_base", T_F32, float(cfg.get("rope_theta", 10000.0))),
           ("llama.attention.layer_norm_rms_epsilon", T_F32, float(cfg.get("rms_norm_eps", 1e-5))),
           ("llama.vocab_size", T_U32, V)]
    kvs += tokenizer_kvs(os.path.join(model_dir, "tokenizer.json"), cfg)
    return kvs, tensors, plan


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("model_dir")
    ap.add_argument("--type", choices=sorted(GGML), required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--name")
    a = ap.parse_args(argv)
    try:
        kvs, tensors, plan = build(a.model_dir, a.type, a.name)
        # self-check: a quantized tensor decodes back within its block's step
        # (q8_0: half a step plus the fp16 rounding of the scale; q4_0: one
        # step, because the value opposite the extreme may clamp at 15)
        for (n, arr), (_, _, gtype, data) in zip(plan, tensors):
            if gtype in (GGML["q8_0"], GGML["q4_0"]):
                kind = "q8_0" if gtype == GGML["q8_0"] else "q4_0"
                blocks = arr.reshape(-1, QK)
                back = dequant(kind, data, arr.shape).reshape(-1, QK)
                step = np.abs(blocks).max(axis=1) / (127.0 if kind == "q8_0" else 8.0)
                limit = step * (0.5 + 0.07 if kind == "q8_0" else 1.01) + 1e-7
                if np.any(np.abs(back - blocks).max(axis=1) > limit):
                    raise GGUFError("%s: %s round trip error above the block's quantization step" % (n, kind))
        write_gguf(a.out, kvs, tensors)
    except (GGUFError, mkfixture.FixtureError, OSError, KeyError, ValueError) as e:
        print("mkgguf: %s" % e, file=sys.stderr)
        return 1
    size = os.path.getsize(a.out)
    print("mkgguf: wrote %s (%s, %d tensors, %d bytes)" % (a.out, a.type, len(tensors), size))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
