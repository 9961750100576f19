"""bpe_encode.py - encode ASCII text with a byte-level BPE tokenizer.json (training-time only).

The training script needs token ids for the corpus; this is the smallest
encoder that gives them for the files bpe_train.py writes (ByteLevel
pre-tokenizer, no normalizer, merges applied lowest rank first).  cohort's
own tokenizer and Hugging Face `tokenizers` are compared on the same text by
the test suite (tests/default_model.sh), so a difference would show there.
"""

import hashlib
import json

import bpe_train


class Encoder:
    def __init__(self, path):
        with open(path, "rb") as f:
            raw = f.read()
        self.digest = hashlib.sha256(raw).digest()
        tj = json.loads(raw)
        m = tj["model"]
        self.vocab = m["vocab"]
        self.vocab_size = max(self.vocab.values()) + 1
        for t in tj.get("added_tokens", []):
            self.vocab_size = max(self.vocab_size, t["id"] + 1)
        self.ranks = {}
        for r, mg in enumerate(m["merges"]):
            a, b = mg.split(" ") if isinstance(mg, str) else mg
            self.ranks[(a, b)] = r
        self.b2u = bpe_train.bytes_to_unicode()
        self.cache = {}

    def _word(self, w):
        syms = [self.b2u[b] for b in w.encode("ascii")]
        while len(syms) > 1:
            best, at = None, -1
            for i in range(len(syms) - 1):
                r = self.ranks.get((syms[i], syms[i + 1]))
                if r is not None and (best is None or r < best):
                    best, at = r, i
            if best is None:
                break
            syms[at:at + 2] = [syms[at] + syms[at + 1]]
        return [self.vocab[s] for s in syms]

    def encode(self, text):
        out = []
        for w in bpe_train.SPLIT_ASCII.findall(text):
            ids = self.cache.get(w)
            if ids is None:
                ids = self.cache[w] = self._word(w)
            out.extend(ids)
        return out
