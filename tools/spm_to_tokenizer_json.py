#!/usr/bin/python3
"""spm_to_tokenizer_json.py - train small SentencePiece Unigram models and
convert them to Hugging Face tokenizer.json files, as HF's slow-to-fast
converter does for T5, ALBERT and XLM-R (a `Precompiled` normalizer that
carries SentencePiece's precompiled_charsmap, a Metaspace pre-tokenizer,
the Unigram model, a Metaspace decoder).

No T5-style tokenizer.json is available offline, so the test data for
cohort's Precompiled normalizer is produced here by SentencePiece itself
(Debian's python3-sentencepiece; the tests do not need it: the generated
files are committed under tests/data/tokenizers/, with their provenance).

  /usr/bin/python3 tools/spm_to_tokenizer_json.py --corpus data/tinyshakespeare.txt \
      --out-dir tests/data/tokenizers

writes, for each recipe below, NAME.tokenizer.json and NAME.provenance.txt.
Training is deterministic for a given sentencepiece version and input (one
thread, no sampling of sentences), so rerunning the command reproduces the
files byte for byte with the version recorded in the provenance.

With --charsmap-from-rules RULES.tsv it prints instead the base64
precompiled_charsmap that SentencePiece compiles from a rule file
(normalization_rule_tsv: source code points in hex, a tab, target code
points; an empty target deletes), for small hand-checked unit tests.

Recipes (2000 pieces each):
  spm-t5-nmt-nfkc   normalization_rule_name nmt_nfkc, laid out as the
                    published t5-small file: normalizer Precompiled alone,
                    pre-tokenizer Sequence[WhitespaceSplit, Metaspace with
                    add_prefix_space], </s> appended by TemplateProcessing;
                    ids pad=0, eos=1, unk=2 and <extra_id_99..0> after the
                    pieces (special added tokens), as T5.
  spm-xlmr-nfkc-cf  normalization_rule_name nfkc_cf (NFKC + case folding),
                    laid out as transformers' SpmConverter writes it today
                    (XLM-R and most SentencePiece models): normalizer
                    Sequence[Precompiled, Strip(right), Replace(" {2,}" ->
                    "\u2581")], Metaspace with prepend_scheme "always";
                    ids unk=0, bos=1, eos=2.
  spm-albert-nmt-nfkc  nmt_nfkc, laid out as AlbertConverter writes it
                    (lowercased, accents stripped): normalizer
                    Sequence[Replace ``, Replace '', NFKD, StripAccents,
                    Lowercase, Precompiled, Replace(" {2,}" -> " ")],
                    [CLS] $A [SEP]; control symbols [CLS] [SEP] [MASK].
"""
import argparse
import base64
import hashlib
import json
import os
import sys
import tempfile

# sentencepiece is imported where it is used, so that tests/tok_compare.py
# can import MULTI without it.

# A multilingual sample that exercises the charsmap: precomposed and
# decomposed accents, full-width ASCII and half-width katakana, ligatures,
# circled and super/subscript digits, compatibility letters, CJK, Hangul,
# Arabic presentation forms, odd spaces, case pairs for case folding.
MULTI = """\
Caf\u00e9 na\u00efve r\u00e9sum\u00e9 fa\u00e7ade \u00fcber Stra\u00dfe \u00c5ngstr\u00f6m \u00f1and\u00fa
Cafe\u0301 nai\u0308ve re\u0301sume\u0301 fac\u0327ade u\u0308ber A\u030angstro\u0308m n\u0303
\uff28\uff45\uff4c\uff4c\uff4f\u3000\uff37\uff4f\uff52\uff4c\uff44\uff01 \uff11\uff12\uff13\uff14\uff15 \uff08\uff41\uff42\uff43\uff09
\uff76\uff80\uff76\uff85 \uff8a\uff9d\uff76\uff78 \uff7a\uff9d\uff86\uff81\uff8a \uff9e\uff9f
\ufb01nd the \ufb02ower \ufb00ect \ufb03ce \ufb04e \u0132sselmeer \u01c4 \u01c6 \u01c9
\u2460 \u2461 \u2462 x\u00b2 + y\u00b3 = z\u2074 H\u2082O CO\u2082 \u00bd \u00bc \u2153
\u210c \u2102 \u2115 \u211d \u2126 \u212b \u2160\u2161\u2162 \u2170\u2171 \u3392 \u33a1 \u2122 \u2103
\u4eca\u5929\u5929\u6c14\u5f88\u597d\uff0c\u6211\u4eec\u53bb\u516c\u56ed\u5427\u3002\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8
\ud55c\uad6d\uc5b4 \ud14d\uc2a4\ud2b8\uc785\ub2c8\ub2e4 \u1100\u1161\u11a8 \u1112\u1161\u11ab
\ufee1\ufeae\ufea3\ufe92\ufe8e \u0627\u0644\u0639\u0631\u0628\u064a\u0629 \ufdf2 \ufefb
THE QUICK BROWN FOX \u0391\u0392\u0393 \u03a3\u039f\u03a6\u039f\u03a3 \u0130stanbul \u1e9e \u0149 \u017f
tabs\tand  double  spaces\u00a0and\u2003em\u2009thin\u200bzero
\u2018quoted\u2019 \u201cdouble\u201d \u2026 \u2014 \u2013 \u00ab\u00bb \u2032 \u2033
"""

RECIPES = {
    "spm-t5-nmt-nfkc": dict(rule="nmt_nfkc", layout="t5",
                            ids=dict(pad_id=0, eos_id=1, unk_id=2,
                                     bos_id=-1)),
    "spm-xlmr-nfkc-cf": dict(rule="nfkc_cf", layout="spm",
                             ids=dict(unk_id=0, bos_id=1, eos_id=2,
                                      pad_id=-1)),
    "spm-albert-nmt-nfkc": dict(rule="nmt_nfkc", layout="albert",
                                ids=dict(pad_id=0, unk_id=1, bos_id=2,
                                         eos_id=3),
                                control_symbols=["[CLS]", "[SEP]",
                                                 "[MASK]"]),
}
T5_EXTRA_IDS = 100
VOCAB = 2000
CORPUS_BYTES = 300000
META = "\u2581"


def train(corpus, prefix, recipe):
    import sentencepiece as spm
    args = dict(input=corpus, model_prefix=prefix, model_type="unigram",
                vocab_size=VOCAB, normalization_rule_name=recipe["rule"],
                character_coverage=1.0, num_threads=1,
                input_sentence_size=0, shuffle_input_sentence=False,
                minloglevel=2, **recipe["ids"])
    if "control_symbols" in recipe:
        args["control_symbols"] = ",".join(recipe["control_symbols"])
    spm.SentencePieceTrainer.train(**args)
    return args


def added_token(i, content):
    return {"id": i, "content": content, "single_word": False,
            "lstrip": False, "rstrip": False, "normalized": False,
            "special": True}


def added(pieces):
    """Control and unknown pieces become special added tokens, as the
    transformers tokenizer classes register them."""
    return [added_token(i, p.piece) for i, p in enumerate(pieces)
            if p.type in (p.CONTROL, p.UNKNOWN)]


def template(single, ids):
    """TemplateProcessing for a single sequence: single is a list of token
    names and "$A"; ids maps the names to ids."""
    seq = [{"Sequence": {"id": "A", "type_id": 0}} if t == "$A" else
           {"SpecialToken": {"id": t, "type_id": 0}} for t in single]
    return {"type": "TemplateProcessing", "single": seq, "pair": seq,
            "special_tokens": {t: {"id": t, "ids": [ids[t]], "tokens": [t]}
                               for t in ids}}


def albert_score(piece, score):
    """transformers' AlbertConverter lowers pieces like "1," by 100 unless
    check_number_comma holds (a piece that ends in a comma after a digit)."""
    if len(piece) < 2 or piece[-1] != "," or not piece[-2].isdigit():
        return score
    return score - 100


def convert(model_path, layout):
    """The tokenizer.json of a SentencePiece model, laid out as transformers'
    converters write T5 (T5Converter: the published t5-small file), XLM-R
    (SpmConverter today) or ALBERT (AlbertConverter)."""
    from sentencepiece import sentencepiece_model_pb2 as model_pb2
    m = model_pb2.ModelProto()
    with open(model_path, "rb") as f:
        m.ParseFromString(f.read())
    charsmap = base64.b64encode(m.normalizer_spec.precompiled_charsmap)
    pre = {"type": "Precompiled",
           "precompiled_charsmap": charsmap.decode("ascii")}
    vocab = [[p.piece, p.score] for p in m.pieces]
    toks = added(m.pieces)
    eos = m.pieces[m.trainer_spec.eos_id].piece
    multi_space = {"type": "Replace", "pattern": {"Regex": " {2,}"},
                   "content": META}
    if layout == "t5":
        # <extra_id_99> .. <extra_id_0> after the pieces, score 0
        for k in range(T5_EXTRA_IDS - 1, -1, -1):
            toks.append(added_token(len(vocab), "<extra_id_%d>" % k))
            vocab.append([toks[-1]["content"], 0.0])
        normalizer = pre
        pre_tok = {"type": "Sequence", "pretokenizers": [
            {"type": "WhitespaceSplit"},
            {"type": "Metaspace", "replacement": META,
             "add_prefix_space": True}]}
        decoder = {"type": "Metaspace", "replacement": META,
                   "add_prefix_space": True}
        post = template(["$A", eos], {eos: m.trainer_spec.eos_id})
    elif layout == "spm":
        normalizer = {"type": "Sequence", "normalizers": [
            pre, {"type": "Strip", "strip_left": False, "strip_right": True},
            multi_space]}
        pre_tok = {"type": "Metaspace", "replacement": META,
                   "prepend_scheme": "always", "split": True}
        decoder = {"type": "Metaspace", "replacement": META,
                   "prepend_scheme": "always", "split": True}
        bos = m.pieces[m.trainer_spec.bos_id].piece
        post = template([bos, "$A", eos], {bos: m.trainer_spec.bos_id,
                                           eos: m.trainer_spec.eos_id})
    else:  # albert: do_lower_case, keep_accents=False
        vocab = [[p, albert_score(p, sc)] for p, sc in vocab]
        normalizer = {"type": "Sequence", "normalizers": [
            {"type": "Replace", "pattern": {"String": "``"}, "content": '"'},
            {"type": "Replace", "pattern": {"String": "''"}, "content": '"'},
            {"type": "NFKD"}, {"type": "StripAccents"}, {"type": "Lowercase"},
            pre,
            {"type": "Replace", "pattern": {"Regex": " {2,}"},
             "content": " "}]}
        pre_tok = {"type": "Metaspace", "replacement": META,
                   "prepend_scheme": "always", "split": True}
        decoder = {"type": "Metaspace", "replacement": META,
                   "prepend_scheme": "always", "split": True}
        ids = {p.piece: i for i, p in enumerate(m.pieces)}
        post = template(["[CLS]", "$A", "[SEP]"],
                        {"[CLS]": ids["[CLS]"], "[SEP]": ids["[SEP]"]})
    model = {"type": "Unigram", "unk_id": m.trainer_spec.unk_id,
             "vocab": vocab, "byte_fallback": m.trainer_spec.byte_fallback}
    return {"version": "1.0", "truncation": None, "padding": None,
            "added_tokens": toks, "normalizer": normalizer,
            "pre_tokenizer": pre_tok, "post_processor": post,
            "decoder": decoder, "model": model}, m


def charsmap_from_rules(rules):
    """Trains a throwaway character model with the rules (the only way the
    Python module compiles them) and returns its charsmap in base64."""
    import sentencepiece as spm
    from sentencepiece import sentencepiece_model_pb2 as model_pb2
    with tempfile.TemporaryDirectory() as tmp:
        corpus = os.path.join(tmp, "c.txt")
        with open(corpus, "w", encoding="utf-8") as g:
            g.write("abc def\nghi ab\nfi e a\n")
        spm.SentencePieceTrainer.train(
            input=corpus, model_prefix=os.path.join(tmp, "m"),
            model_type="char", vocab_size=20, normalization_rule_tsv=rules,
            minloglevel=2, num_threads=1)
        m = model_pb2.ModelProto()
        with open(os.path.join(tmp, "m.model"), "rb") as f:
            m.ParseFromString(f.read())
    return base64.b64encode(m.normalizer_spec.precompiled_charsmap).decode()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus",
                    help="English text (its first 300 KB are used)")
    ap.add_argument("--out-dir")
    ap.add_argument("--only", choices=sorted(RECIPES))
    ap.add_argument("--charsmap-from-rules", metavar="RULES_TSV")
    a = ap.parse_args()
    if a.charsmap_from_rules:
        print(charsmap_from_rules(a.charsmap_from_rules))
        return 0
    if not a.corpus or not a.out_dir:
        ap.error("--corpus and --out-dir are required")
    import sentencepiece as spm
    with open(a.corpus, encoding="utf-8") as f:
        english = f.read(CORPUS_BYTES)
    for name, recipe in RECIPES.items():
        if a.only and name != a.only:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            corpus = os.path.join(tmp, "corpus.txt")
            with open(corpus, "w", encoding="utf-8") as g:
                g.write(english)
                g.write(MULTI * 20)
            h = hashlib.sha256(open(corpus, "rb").read()).hexdigest()
            args = train(corpus, os.path.join(tmp, "m"), recipe)
            tj, m = convert(os.path.join(tmp, "m.model"), recipe["layout"])
        out = os.path.join(a.out_dir, name + ".tokenizer.json")
        with open(out, "w", encoding="utf-8") as g:
            json.dump(tj, g, ensure_ascii=False, indent=None)
            g.write("\n")
        args.pop("input")
        args.pop("model_prefix")
        with open(os.path.join(a.out_dir, name + ".provenance.txt"), "w",
                  encoding="utf-8") as g:
            g.write("%s.tokenizer.json: written by tools/spm_to_tokenizer_json.py "
                    "(cohort)\nsentencepiece %s (Debian python3-sentencepiece)\n"
                    "training corpus: first %d characters of %s + the "
                    "tool's MULTI sample x20 (sha256 %s)\n"
                    "trainer arguments: %s\n"
                    "precompiled_charsmap: %d bytes (%s)\n"
                    "sha256 of the tokenizer.json: %s\n"
                    "command: /usr/bin/python3 tools/spm_to_tokenizer_json.py "
                    "--corpus data/tinyshakespeare.txt --out-dir "
                    "tests/data/tokenizers\n" %
                    (name, spm.__version__, CORPUS_BYTES,
                     os.path.basename(a.corpus), h,
                     json.dumps(args, sort_keys=True),
                     len(m.normalizer_spec.precompiled_charsmap),
                     m.normalizer_spec.name,
                     hashlib.sha256(open(out, "rb").read()).hexdigest()))
        print("wrote", out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
