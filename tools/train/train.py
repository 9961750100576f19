#!/usr/bin/python3
"""train.py - train cohort's default model: a small Llama on the Shakespeare corpus, on the CPU.

Offline tool (never needed at run time).  Needs Debian's python3-torch (1.13)
and python3-numpy; libopenblas0-pthread makes it ~10x faster.

  train.py --corpus data/tinyshakespeare.txt --tokenizer T.json --workdir W
           [--layers 4 --hidden 256 --heads 8 --kv-heads 2 --intermediate 768]
           [--seq 256 --batch 8 --steps 2000 --lr 1e-3 --seed 1 --threads 1]

Architecture: token embedding (tied with the output head), per layer RMSNorm
-> grouped-query attention with rotary embeddings (rotate-half, theta 1e4) ->
residual -> RMSNorm -> SwiGLU MLP -> residual; final RMSNorm.  No biases.
This is exactly the graph tools/mkfixture.py writes, so export.py can hand
the trained weights to it.

Data: the first 90% of the corpus's characters train, the last 10% are held
out (tools/train/bpe_train.py makes the same split).  Validation loss is
reported per token and in bits per character (loss x tokens / chars / ln 2)
over the whole held-out text.

Deterministic for a given seed and thread count: torch deterministic
algorithms, batches drawn from a seeded numpy generator, dropout from a
seeded torch generator.  Resumable: W/ckpt.pt is written every --eval-every
steps, with optimizer and RNG state; W/log.csv gets a row per evaluation.
"""

import argparse
import json
import math
import os
import sys
import time


def _thread_count(argv):
    for i, a in enumerate(argv):
        if a == "--threads" and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith("--threads="):
            return a.split("=", 1)[1]
    return "1"


# Fix the BLAS pool before numpy or torch load it.  Debian's OpenBLAS
# (libopenblas0-pthread) otherwise starts its own threads beside torch's
# OpenMP ones; on a busy 2-core machine they spin against each other:
# measured 199 tokens/s with the default pools against 2,371 with one thread
# (tools/train/MEASUREMENTS in models/shakespeare/MODEL.md).
os.environ["OPENBLAS_NUM_THREADS"] = os.environ["OMP_NUM_THREADS"] = _thread_count(sys.argv[1:])

import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bpe_train  # noqa: E402
import bpe_encode  # noqa: E402

RMS_EPS = 1e-5
ROPE_THETA = 10000.0
MAX_PARAMS = 16 * 1000 * 1000  # hard ceiling; the committed-size check is in export.py


def die(msg):
    sys.exit("train: " + msg)


def build_model(torch, cfg):
    nn = torch.nn
    F = torch.nn.functional
    H, NH, KV, I, V = cfg["hidden"], cfg["heads"], cfg["kv_heads"], cfg["intermediate"], cfg["vocab"]
    D = H // NH

    class RMSNorm(nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = nn.Parameter(torch.ones(H))

        def forward(self, x):
            return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + RMS_EPS) * self.weight

    def rotate_half(t):
        return torch.cat([-t[..., D // 2:], t[..., :D // 2]], dim=-1)

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.input_layernorm = RMSNorm()
            self.q_proj = nn.Linear(H, H, bias=False)
            self.k_proj = nn.Linear(H, KV * D, bias=False)
            self.v_proj = nn.Linear(H, KV * D, bias=False)
            self.o_proj = nn.Linear(H, H, bias=False)
            self.post_attention_layernorm = RMSNorm()
            self.gate_proj = nn.Linear(H, I, bias=False)
            self.up_proj = nn.Linear(H, I, bias=False)
            self.down_proj = nn.Linear(I, H, bias=False)
            self.drop = nn.Dropout(cfg["dropout"])

        def forward(self, x, cos, sin, mask):
            B, S, _ = x.shape
            h = self.input_layernorm(x)
            q = self.q_proj(h).view(B, S, NH, D).transpose(1, 2)
            k = self.k_proj(h).view(B, S, KV, D).transpose(1, 2)
            v = self.v_proj(h).view(B, S, KV, D).transpose(1, 2)
            q = q * cos + rotate_half(q) * sin
            k = k * cos + rotate_half(k) * sin
            if NH != KV:
                k = k.repeat_interleave(NH // KV, dim=1)
                v = v.repeat_interleave(NH // KV, dim=1)
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(D))
            att = att.masked_fill(mask, float("-inf")).softmax(-1)
            att = self.drop(att)
            y = (att @ v).transpose(1, 2).reshape(B, S, H)
            x = x + self.drop(self.o_proj(y))
            h = self.post_attention_layernorm(x)
            return x + self.drop(self.down_proj(F.silu(self.gate_proj(h)) * self.up_proj(h)))

    class Llama(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed_tokens = nn.Embedding(V, H)
            self.layers = nn.ModuleList([Block() for _ in range(cfg["layers"])])
            self.norm = RMSNorm()
            inv = 1.0 / (ROPE_THETA ** (torch.arange(0, D, 2, dtype=torch.float64) / D))
            ang = torch.arange(cfg["seq"], dtype=torch.float64)[:, None] * inv[None, :]
            ang = torch.cat([ang, ang], dim=-1)
            self.register_buffer("cos", ang.cos().float(), persistent=False)
            self.register_buffer("sin", ang.sin().float(), persistent=False)
            mask = torch.triu(torch.ones(cfg["seq"], cfg["seq"], dtype=torch.bool), diagonal=1)
            self.register_buffer("mask", mask, persistent=False)
            std = 0.02
            for name, p in self.named_parameters():
                if p.dim() == 2:
                    s = std / math.sqrt(2 * cfg["layers"]) if name.endswith(("o_proj.weight", "down_proj.weight")) else std
                    nn.init.normal_(p, mean=0.0, std=s)

        def forward(self, ids):
            S = ids.shape[1]
            x = self.embed_tokens(ids)
            cos, sin, mask = self.cos[:S], self.sin[:S], self.mask[:S, :S]
            for blk in self.layers:
                x = blk(x, cos, sin, mask)
            return self.norm(x) @ self.embed_tokens.weight.t()

    return Llama()


def param_count(layers, hidden, heads, kv_heads, intermediate, vocab):
    """Parameters of build_model's Llama (tied embedding), without building it."""
    kvd = kv_heads * (hidden // heads)
    per_layer = 2 * hidden + 2 * hidden * hidden + 2 * kvd * hidden + 3 * hidden * intermediate
    return vocab * hidden + layers * per_layer + hidden


def encode_splits(corpus, holdout, tokenizer, workdir):
    """Token ids of the training and validation text, cached in workdir."""
    train_txt, valid_txt = bpe_train.load_corpus(corpus, holdout)
    cache = os.path.join(workdir, "ids.npz")
    enc = bpe_encode.Encoder(tokenizer)
    key = np.frombuffer(enc.digest + str(holdout).encode() + str(len(train_txt) + len(valid_txt)).encode(), np.uint8)
    if os.path.exists(cache):
        z = np.load(cache)
        if np.array_equal(z["key"], key):
            return z["train"], z["valid"], len(valid_txt), enc.vocab_size
    tr = np.array(enc.encode(train_txt), np.int32)
    va = np.array(enc.encode(valid_txt), np.int32)
    np.savez(cache, train=tr, valid=va, key=key)
    return tr, va, len(valid_txt), enc.vocab_size


def evaluate(torch, model, valid, seq):
    """Mean loss per token over the whole validation text (non-overlapping windows)."""
    F = torch.nn.functional
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        n = (len(valid) - 1) // seq
        rows = torch.from_numpy(valid[:n * seq + 1].astype(np.int64))
        x = rows[:-1].view(n, seq)
        y = rows[1:].view(n, seq)
        for i in range(0, n, 16):
            logits = model(x[i:i + 16])
            total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y[i:i + 16].reshape(-1),
                                     reduction="sum").item()
            count += y[i:i + 16].numel()
        # the tail that does not fill a window, with its own context
        rest = len(valid) - 1 - n * seq
        if rest > 0:
            t = torch.from_numpy(valid[-(seq + 1):].astype(np.int64))
            logits = model(t[:-1].view(1, seq))[:, -rest:]
            total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), t[-rest:], reduction="sum").item()
            count += rest
    model.train()
    return total / count, count


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--holdout", type=float, default=0.1)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--intermediate", type=int, default=768)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--min-lr", type=float, default=1e-4)
    ap.add_argument("--weight-decay", type=float, default=0.1)
    ap.add_argument("--dropout", type=float, default=0.1)
    ap.add_argument("--eval-every", type=int, default=100)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch and BLAS threads (default 1: the fastest on a shared 2-core machine)")
    ap.add_argument("--max-params", type=int, default=MAX_PARAMS)
    a = ap.parse_args(argv)

    if not os.path.isfile(a.corpus):
        die("corpus %s: no such file" % a.corpus)
    if not os.path.isfile(a.tokenizer):
        die("tokenizer %s: no such file (make it with tools/train/bpe_train.py)" % a.tokenizer)
    if a.hidden % a.heads or a.heads % a.kv_heads or (a.hidden // a.heads) % 2:
        die("--hidden must divide into --heads of even size, and --heads into --kv-heads")
    # every refusal comes before torch is loaded (and before any training)
    vocab = bpe_encode.Encoder(a.tokenizer).vocab_size
    n_params = param_count(a.layers, a.hidden, a.heads, a.kv_heads, a.intermediate, vocab)
    if n_params > a.max_params:
        die("the model would have %d parameters, over the budget of %d (--max-params)" % (n_params, a.max_params))
    os.makedirs(a.workdir, exist_ok=True)
    train, valid, valid_chars, vocab = encode_splits(a.corpus, a.holdout, a.tokenizer, a.workdir)
    if len(valid) < a.seq + 1:
        die("the validation split holds %d tokens, fewer than one window of %d" % (len(valid), a.seq + 1))

    import torch
    torch.set_num_threads(a.threads)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(a.seed)

    cfg = dict(layers=a.layers, hidden=a.hidden, heads=a.heads, kv_heads=a.kv_heads,
               intermediate=a.intermediate, vocab=vocab, seq=a.seq, dropout=a.dropout)
    model = build_model(torch, cfg)
    assert sum(p.numel() for p in model.parameters()) == n_params

    decay = [p for p in model.parameters() if p.dim() == 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": a.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=a.lr, betas=(0.9, 0.95))
    rng = np.random.default_rng(a.seed)
    step, elapsed, best_val = 0, 0.0, float("inf")
    ckpt = os.path.join(a.workdir, "ckpt.pt")
    logp = os.path.join(a.workdir, "log.csv")
    run_args = {k: v for k, v in vars(a).items() if k not in ("workdir", "eval_every")}
    if os.path.exists(ckpt):
        st = torch.load(ckpt)
        if st["args"] != run_args:
            die("%s was written with other arguments; use another --workdir" % ckpt)
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["opt"])
        rng.bit_generator.state = st["rng"]
        torch.set_rng_state(st["torch_rng"])
        step, elapsed, best_val = st["step"], st["elapsed"], st["best_val"]
        print("train: resumed at step %d (%.0f s so far)" % (step, elapsed), flush=True)
    else:
        with open(logp, "w") as f:
            f.write("step,tokens,train_loss,val_loss,val_bpc,elapsed_s,tokens_per_s\n")
    with open(os.path.join(a.workdir, "config.json"), "w") as f:
        json.dump(dict(cfg, params=n_params, train_tokens=len(train), valid_tokens=len(valid),
                       valid_chars=valid_chars, args=run_args), f, indent=1, sort_keys=True)
    print("train: %d parameters, %d train / %d valid tokens (%.2f chars/token on valid)" %
          (n_params, len(train), len(valid), valid_chars / len(valid)), flush=True)

    F = torch.nn.functional
    tokens_per_step = a.batch * a.seq
    window_loss, window_n = 0.0, 0
    t0 = time.time() - elapsed
    while step < a.steps:
        if step < a.warmup:
            lr = a.lr * (step + 1) / a.warmup
        else:
            frac = (step - a.warmup) / max(1, a.steps - a.warmup)
            lr = a.min_lr + 0.5 * (a.lr - a.min_lr) * (1 + math.cos(math.pi * frac))
        for g in opt.param_groups:
            g["lr"] = lr
        starts = rng.integers(0, len(train) - a.seq - 1, size=a.batch)
        xb = torch.from_numpy(np.stack([train[s:s + a.seq] for s in starts]).astype(np.int64))
        yb = torch.from_numpy(np.stack([train[s + 1:s + a.seq + 1] for s in starts]).astype(np.int64))
        logits = model(xb)
        loss = F.cross_entropy(logits.reshape(-1, vocab), yb.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        window_loss += loss.item()
        window_n += 1
        if step % a.eval_every == 0 or step == a.steps:
            vl, _ = evaluate(torch, model, valid, a.seq)
            bpc = vl * len(valid) / valid_chars / math.log(2)
            elapsed = time.time() - t0
            with open(logp, "a") as f:
                f.write("%d,%d,%.5f,%.5f,%.5f,%.1f,%.1f\n" % (step, step * tokens_per_step, window_loss / window_n,
                                                              vl, bpc, elapsed, step * tokens_per_step / elapsed))
            print("train: step %d  train %.4f  val %.4f  (%.3f bits/char)  %.0f s" %
                  (step, window_loss / window_n, vl, bpc, elapsed), flush=True)
            window_loss, window_n = 0.0, 0
            if vl < best_val:
                # the weights with the lowest validation loss so far: what
                # export.py writes, so a run that goes on past its best
                # (overfitting) still exports its best step
                best_val = vl
                tmpb = os.path.join(a.workdir, "best.pt.tmp")
                torch.save({"cfg": cfg, "model": model.state_dict(), "step": step, "val_loss": vl,
                            "val_bpc": bpc}, tmpb)
                os.replace(tmpb, os.path.join(a.workdir, "best.pt"))
            tmp = ckpt + ".tmp"
            torch.save({"args": run_args, "model": model.state_dict(), "opt": opt.state_dict(),
                        "rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state(),
                        "step": step, "elapsed": elapsed, "best_val": best_val}, tmp)
            os.replace(tmp, ckpt)
    torch.save({"cfg": cfg, "model": model.state_dict()}, os.path.join(a.workdir, "final.pt"))
    print("train: done, %d steps" % step, flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
