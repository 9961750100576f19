#!/usr/bin/env python3
"""sampleref.py — an independent reference for sampling through the engine.

Reads a JSON request on stdin:
  {"model": DIR, "cases": [{"prompt": [ids], "tokens": [ids the engine
   generated], "temperature": T, "top_k": K, "top_p": P, "min_p": M,
   "repetition_penalty": R, "seed": S}, ...]}
and writes a JSON answer on stdout:
  {"cases": [{"steps": [{"token": id, "borderline": bool, "margin": x,
   "ids": [..16 ids..], "logits": [..their logits..]}, ...]}, ...]}

For step i of a case the logits come from the float64 numpy forward pass of
tools/mkfixture.py (ref_forward, the whole sequence prompt + tokens[:i] at
once, no cache: it shares no code with cohort's engine), and the token from
a sampler written here from the documented rules of cohort/sampling.h
(repetition penalty over the distinct ids of prompt + tokens[:i]; then
temperature, top-k, softmax, top-p, min-p, renormalise, one uniform draw,
inverse CDF), with its own xoshiro256** seeded by splitmix64 (the stream
documented in src/infer/sampler.h), one draw per sampled token.  The CDF
walks the kept tokens best first when a filter (top-k < vocabulary, top-p,
min-p) is active, else in id order (as src/infer/sampler.c documents).  Following
the engine's tokens (teacher forcing) makes every step its own check.

"borderline": the decision was within `margin` (relative) of going the
other way — the draw at a CDF boundary, the top-p mass or a min-p weight at
its threshold, or a near tie for the top — so a last-bit difference between
float32 and float64 could flip it; the caller does not count such a step as
a mismatch (it reports how many there were).
"""
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mkfixture  # noqa: E402

M64 = (1 << 64) - 1
BORDER = 1e-6  # relative margin below which a decision counts as borderline


def splitmix64(state):
    state = (state + 0x9E3779B97F4A7C15) & M64
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return state, z ^ (z >> 31)


class Xoshiro:
    def __init__(self, seed):
        x = seed & M64
        self.s = []
        for _ in range(4):
            x, z = splitmix64(x)
            self.s.append(z)

    def next(self):
        s = self.s
        rotl = lambda v, k: ((v << k) | (v >> (64 - k))) & M64  # noqa: E731
        result = (rotl((s[1] * 5) & M64, 7) * 9) & M64
        t = (s[1] << 17) & M64
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = rotl(s[3], 45)
        return result

    def uniform(self):
        return (self.next() >> 11) * 2.0 ** -53


def sample(logits, history, c, rng):
    """(token, relative margin of the closest decision)."""
    x = np.array(logits, dtype=np.float64)
    x[np.isnan(x)] = -np.inf
    pen = c.get("repetition_penalty", 1.0)
    if pen != 1.0 and history:
        for t in set(history):
            x[t] = x[t] / pen if x[t] > 0 else x[t] * pen
    T = c.get("temperature", 0.0)
    order = np.lexsort((np.arange(len(x)), -x))  # descending, ties: lower id
    if T <= 0:
        a, b = x[order[0]], x[order[1]]
        return int(order[0]), float((a - b) / max(1.0, abs(a)))
    m = x[order[0]]
    w = np.exp((x - m) / T)
    w[~np.isfinite(x)] = 0.0
    k = c.get("top_k", 0)
    n = int(np.isfinite(x).sum())
    top_p, min_p = c.get("top_p", 1.0), c.get("min_p", 0.0)
    if 0 < k < n:
        keep = order[:k]
    elif top_p < 1.0 or min_p > 0.0:
        keep = order[:n]
    else:  # no filter: the CDF walks the tokens in id order
        keep = np.nonzero(np.isfinite(x))[0]
    ws = w[keep]
    z = ws.sum()
    margins = []
    if top_p < 1.0:  # the smallest prefix whose mass reaches top_p
        cum = np.concatenate([[0.0], np.cumsum(ws)])
        nk = int(np.argmax(cum >= top_p * z)) if (cum >= top_p * z).any() else len(ws)
        nk = max(nk, 1)
        margins.append(abs(cum[nk] - top_p * z) / z)
        if nk > 1:
            margins.append(abs(cum[nk - 1] - top_p * z) / z)
        keep, ws = keep[:nk], ws[:nk]
    if min_p > 0.0:  # weights are relative to the top one (1.0)
        ok = ws >= min_p * ws[0]
        nk = int(np.argmin(ok)) if not ok.all() else len(ws)
        margins.extend(abs(ws[i] - min_p * ws[0]) for i in (nk - 1, nk) if 0 <= i < len(ws))
        keep, ws = keep[:nk], ws[:nk]
    z = ws.sum()
    u = rng.uniform()
    cum = np.cumsum(ws)
    i = int(np.searchsorted(cum, u * z, side="right"))
    i = min(i, len(ws) - 1)
    lo = cum[i - 1] if i > 0 else 0.0
    margins.append(min(u * z - lo, cum[i] - u * z) / z)
    return int(keep[i]), float(min(margins))


def main():
    req = json.load(sys.stdin)
    cfg, w = mkfixture.load_reference(req["model"])
    out = []
    for c in req["cases"]:
        prompt, toks = c["prompt"], c["tokens"]
        seq = np.array([prompt + toks], dtype=np.int64)
        S = seq.shape[1]
        logits = mkfixture.ref_forward(cfg, w, seq, np.ones((1, S), np.int64),
                                       np.arange(S, dtype=np.int64)[None])[0]
        rng = Xoshiro(c.get("seed", 0))
        steps = []
        for i in range(len(toks)):
            row = logits[len(prompt) - 1 + i]
            tok, margin = sample(row, prompt + toks[:i], c, rng)
            ids = [int(t) for t in np.argsort(-row, kind="stable")[:15]]
            if toks[i] not in ids:
                ids.append(int(toks[i]))
            steps.append({"token": tok, "margin": margin, "borderline": margin < BORDER,
                          "ids": ids, "logits": [float(row[t]) for t in ids]})
        out.append({"steps": steps})
    json.dump({"cases": out}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
