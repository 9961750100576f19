#!/usr/bin/python3
"""bpe_train.py - train a byte-level BPE vocabulary and write a Hugging Face tokenizer.json.

The vocabulary is GPT-2 style: a ByteLevel pre-tokenizer (GPT-2's split
regex, no prefix space), the 256 byte symbols, then merges learnt on the
training split, most frequent pair first.  Id 0 is the special token
<|endoftext|>, which the default model uses for BOS, EOS and padding.

The training split is the first (1 - holdout) of the corpus's characters; the
rest is validation text that the vocabulary never sees.

Usage
  bpe_train.py --corpus data/tinyshakespeare.txt --vocab 4096 --out tokenizer.json

Deterministic: ties between equally frequent pairs are broken by the pair's
ids, so the same corpus and size always give the same file.
"""

import argparse
import collections
import heapq
import json
import re
import sys

SPECIAL = "<|endoftext|>"
# GPT-2's pre-tokenizer regex, with \p{L} and \p{N} spelt out for ASCII text
# (the corpus is checked to be ASCII; Python's re has no Unicode classes).
SPLIT_ASCII = re.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?[A-Za-z]+| ?[0-9]+| ?[^\sA-Za-z0-9]+|\s+(?!\S)|\s+""")
MAX_VOCAB = 65536


def bytes_to_unicode():
    """GPT-2's reversible byte -> printable character map (the ByteLevel alphabet)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\xa1"), ord("\xac") + 1)) + \
        list(range(ord("\xae"), ord("\xff") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def split_corpus(text, holdout):
    cut = int(len(text) * (1.0 - holdout))
    return text[:cut], text[cut:]


def load_corpus(path, holdout):
    """Returns (train, valid); exits with a one-line reason on bad input."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        sys.exit("bpe_train: cannot read corpus %s: %s" % (path, e.strerror))
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError as e:
        sys.exit("bpe_train: %s: byte %d is not ASCII (this trainer's split regex is ASCII-only)" % (path, e.start))
    if not 0.0 < holdout < 1.0:
        sys.exit("bpe_train: --holdout must be between 0 and 1 (got %g)" % holdout)
    train, valid = split_corpus(text, holdout)
    if not valid or not train:
        sys.exit("bpe_train: %s: the split leaves no %s text (%d characters)" %
                 (path, "validation" if not valid else "training", len(text)))
    return train, valid


def train_bpe(text, vocab_size):
    """Returns (vocab: list of token strings by id, merges: list of (a, b) strings)."""
    b2u = bytes_to_unicode()
    tokens = [SPECIAL] + [b2u[b] for b in range(256)]
    index = {t: i for i, t in enumerate(tokens)}
    word_freq = collections.Counter(SPLIT_ASCII.findall(text))
    words = [[index[b2u[b]] for b in w.encode("ascii")] for w in word_freq]
    freqs = list(word_freq.values())

    pair_count = collections.defaultdict(int)
    pair_words = collections.defaultdict(set)
    for wi, w in enumerate(words):
        for a, b in zip(w, w[1:]):
            pair_count[(a, b)] += freqs[wi]
            pair_words[(a, b)].add(wi)
    heap = [(-c, p) for p, c in pair_count.items()]
    heapq.heapify(heap)

    merges = []
    while len(tokens) < vocab_size and heap:
        negc, pair = heapq.heappop(heap)
        if pair_count.get(pair, 0) != -negc or negc == 0:
            continue  # stale entry
        a, b = pair
        new_id = len(tokens)
        tokens.append(tokens[a] + tokens[b])
        merges.append((tokens[a], tokens[b]))
        changed = set()
        for wi in sorted(pair_words.pop(pair, ())):
            w, f = words[wi], freqs[wi]
            for x, y in zip(w, w[1:]):
                pair_count[(x, y)] -= f
                changed.add((x, y))
            out, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and w[i] == a and w[i + 1] == b:
                    out.append(new_id)
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            words[wi] = out
            for x, y in zip(out, out[1:]):
                pair_count[(x, y)] += f
                pair_words[(x, y)].add(wi)
                changed.add((x, y))
        pair_count.pop(pair, None)
        for p in sorted(changed):
            c = pair_count.get(p, 0)
            if c > 0:
                heapq.heappush(heap, (-c, p))
            else:
                pair_count.pop(p, None)
    return tokens, merges


def tokenizer_json(tokens, merges):
    bl = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [{"id": 0, "content": SPECIAL, "single_word": False, "lstrip": False,
                          "rstrip": False, "normalized": False, "special": True}],
        "normalizer": None,
        "pre_tokenizer": bl,
        "post_processor": None,
        "decoder": dict(bl),
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
                  "ignore_merges": False,
                  "vocab": {t: i for i, t in enumerate(tokens)},
                  "merges": ["%s %s" % m for m in merges]},
    }


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--holdout", type=float, default=0.1, help="fraction of characters held out (the end)")
    ap.add_argument("--vocab", type=int, default=4096)
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    if not 257 < a.vocab <= MAX_VOCAB:
        sys.exit("bpe_train: --vocab must be in 258..%d (got %d)" % (MAX_VOCAB, a.vocab))
    train, _ = load_corpus(a.corpus, a.holdout)
    tokens, merges = train_bpe(train, a.vocab)
    if len(tokens) < a.vocab:
        sys.exit("bpe_train: the training text only supports %d tokens (asked for %d)" % (len(tokens), a.vocab))
    with open(a.out, "w") as f:
        json.dump(tokenizer_json(tokens, merges), f, ensure_ascii=False, indent=1)
        f.write("\n")
    print("bpe_train: %d tokens (%d merges) from %d training characters -> %s" %
          (len(tokens), len(merges), len(train), a.out))


if __name__ == "__main__":
    main(sys.argv[1:])
