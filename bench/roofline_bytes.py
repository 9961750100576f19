#!/usr/bin/python3
"""bench/roofline_bytes.py - weight bytes read per decoded token, from the ONNX file.

    bench/roofline_bytes.py MODEL_DIR [MODEL_DIR ...]

Decoding one token at batch 1 runs the graph once with one token, so every
weight the graph touches is read once, with one exception: a table that is
only the data input of Gather nodes (the token embedding, rotary cos/sin
caches) is read one row per token.  The sum is taken from the graph itself
(model.onnx; external data is not loaded, sizes come from the initializers'
dims and element types), so quantized twins count exactly what they hold:
com.microsoft.MatMulNBits' packed B, its scales and its zero points, and a
float lm_head when the head is not quantized.

Rules, per initializer (and Constant node value) of the main graph:
  * every consumer is Gather with the tensor as input 0: bytes / dims[0]
    (one row); a tied embedding that is also a MatMul input is counted in full;
  * otherwise: all bytes.
The KV cache is not a weight and is left out: at the short contexts of the
roofline bench (tens of positions) it is well under 1 % of the weights; the
tool prints its bytes per position so that this can be checked.

Output: a readable breakdown on stderr, and one JSON line per model on stdout:
  {"model":..,"weight_bytes":..,"read_per_token":..,"parts":{..},"kv_bytes_per_position":..}
Errors (missing file, not an ONNX model) exit 1 with the path named.
"""
import json
import os
import sys

try:
    import onnx
    from onnx import helper, TensorProto
except ImportError as e:  # pragma: no cover - environment
    sys.exit("roofline_bytes: the python 'onnx' package is needed (%s)" % e)

MAX_NODES = 1_000_000  # bound on the graph walk (a decoder has thousands)


def elem_size(dtype):
    """Bytes per element; 4-bit element types (ONNX >= 1.16) are half a byte."""
    if dtype in (getattr(TensorProto, "INT4", -1), getattr(TensorProto, "UINT4", -1)):
        return 0.5
    if hasattr(helper, "tensor_dtype_to_np_dtype"):
        return helper.tensor_dtype_to_np_dtype(dtype).itemsize
    return onnx.mapping.TENSOR_TYPE_TO_NP_TYPE[dtype].itemsize


def tensor_bytes(t):
    n = 1
    for d in t.dims:
        n *= d
    return n * elem_size(t.data_type), n


def part_of(name, consumers):
    """A coarse label for the breakdown: which part of the model a weight serves."""
    ops = {op for op, _, _ in consumers}
    low = name.lower()
    if any(out == "logits" for _, _, out in consumers) or "lm_head" in low:
        return "lm_head"
    if "embed" in low:
        return "embedding"
    if "norm" in low or "ln" in low.split("."):
        return "norms"
    if any(k in low for k in ("q_proj", "k_proj", "v_proj", "o_proj", "qkv", "attn", "attention")):
        return "attention"
    if any(k in low for k in ("gate", "up_proj", "down_proj", "mlp", "fc")):
        return "mlp"
    if "cos" in low or "sin" in low or "rotary" in low:
        return "rotary"
    return "other:" + ",".join(sorted(ops))


def analyse(model_dir):
    path = os.path.join(model_dir, "model.onnx")
    if not os.path.isfile(path):
        raise ValueError("%s: no such file" % path)
    try:
        m = onnx.load(path, load_external_data=False)
    except Exception as e:  # onnx raises DecodeError and others
        raise ValueError("%s: not an ONNX model (%s)" % (path, e))
    g = m.graph
    if len(g.node) > MAX_NODES:
        raise ValueError("%s: graph has %d nodes, more than the bound %d" % (path, len(g.node), MAX_NODES))
    consumers = {}
    for node in g.node:
        for i, name in enumerate(node.input):
            if name:
                consumers.setdefault(name, []).append((node.op_type, i, node.output[0] if node.output else ""))
    tensors = list(g.initializer)
    for node in g.node:
        if node.op_type == "Constant":
            for a in node.attribute:
                if a.name == "value" and a.HasField("t"):
                    t = onnx.TensorProto()
                    t.CopyFrom(a.t)
                    t.name = node.output[0]
                    tensors.append(t)
    total = 0.0
    read = 0.0
    parts = {}
    params = 0
    nbits = 0
    for t in tensors:
        b, n = tensor_bytes(t)
        params += n
        total += b
        cons = consumers.get(t.name, [])
        # A weight stored narrow and cast up before use (fp16 -> fp32, "fp16
        # stored, fp32 graph"): ONNX Runtime folds the Cast into a new
        # initializer at session start, so a token reads the cast tensor, at
        # the cast type's width, through the Cast's consumers.
        width = 1.0
        if len(cons) == 1 and cons[0][0] == "Cast":
            to = [x.i for n in g.node if n.output and n.output[0] == cons[0][2]
                  for x in n.attribute if x.name == "to"]
            if to:
                width = elem_size(to[0]) / elem_size(t.data_type)
            cons = consumers.get(cons[0][2], [])
        r = b * width
        if t.dims and cons and all(op == "Gather" and i == 0 for op, i, _ in cons):
            r /= t.dims[0]
        read += r
        p = part_of(t.name, cons)
        if b < 65536 and p.startswith("other:"):
            p = "other (shapes, small constants)"
        if any(op == "MatMulNBits" for op, _, _ in cons):
            nbits += 1
        agg = parts.setdefault(p, [0.0, 0.0])
        agg[0] += b
        agg[1] += r
    # KV cache bytes per position (for the check above): from the past_key_values inputs
    kv = 0
    for inp in g.input:
        if inp.name.startswith("past_key_values") or inp.name.startswith("past_"):
            tt = inp.type.tensor_type
            dims = [d.dim_value for d in tt.shape.dim]
            # [batch, kv_heads, past_len, head_dim]: kv_heads * head_dim elements per position
            if len(dims) == 4 and dims[1] > 0 and dims[3] > 0:
                kv += dims[1] * dims[3] * elem_size(tt.elem_type)
    return {"model": os.path.basename(os.path.normpath(model_dir)), "weight_bytes": int(total),
            "read_per_token": int(read), "parameters": params, "initializers": len(tensors), "matmulnbits_inputs": nbits,
            "parts": {k: {"bytes": int(v[0]), "read": int(v[1])} for k, v in sorted(parts.items())},
            "kv_bytes_per_position": int(kv)}


def main(argv):
    if len(argv) < 2:
        sys.stderr.write("usage: bench/roofline_bytes.py MODEL_DIR [MODEL_DIR ...]\n")
        return 2
    for d in argv[1:]:
        try:
            r = analyse(d)
        except ValueError as e:
            sys.stderr.write("roofline_bytes: %s\n" % e)
            return 1
        sys.stderr.write("%s: %.1f MB of weights, %.1f MB read per token\n" %
                         (r["model"], r["weight_bytes"] / 1e6, r["read_per_token"] / 1e6))
        for k, v in r["parts"].items():
            sys.stderr.write("  %-28s %10.2f MB  read %10.2f MB\n" % (k, v["bytes"] / 1e6, v["read"] / 1e6))
        sys.stderr.write("  KV cache: %d bytes per position (all layers, K and V)\n" % r["kv_bytes_per_position"])
        print(json.dumps(r))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
