#!/usr/bin/python3
"""quant_eval.py - accuracy of weight-only quantized twins against their float model.

  quant_eval.py --base MODEL_DIR --quant QDIR [QDIR...] [--corpus data/tinyshakespeare.txt]
                [--holdout 0.1] [--max-eval-chars N] [--json OUT.json]
                [--min-top1 F] [--max-bpc-rise F] [--min-greedy-tokens F] [--max-rel-logit F]

Everything runs through ONNX Runtime (node + onnxruntime-node 1.29.0,
tools/ort_run.mjs), one thread, the graphs as plain ONNX models:

  held-out text   bits per character of every model on the held-out part of
                  the corpus (the last --holdout of its characters, the split
                  of tools/train/bpe_train.py), windows of 256 tokens as
                  tools/train/train.py's evaluate: bits/char = mean NLL per
                  token x tokens / characters / ln 2; and the top-1 agreement
                  of each twin with the base at every scored position
  prompt logits   prefill logits of PROMPTS (and 8 held-out slices of 64
                  tokens): max |d logit|, that divided by the base's largest
                  |logit| (relative), RMS of d logit divided by the base's
                  logit standard deviation, top-1 agreement at every position
  greedy          32 greedy tokens (KV cache, batch 1) after every prompt:
                  tokens equal at the same position, and prompts whose 32
                  tokens are all equal

With the --min/--max limits it exits 1 when a twin misses one (the test
tests/quant_accuracy.sh); bad input exits 2 with the reason.
"""

import argparse
import json
import math
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "train"))
import mkfixture  # noqa: E402

PROMPTS = ["ROMEO:\n", "First Citizen:\nBefore we proceed any further, hear me speak.\n\n",
           "JULIET:\nO Romeo, Romeo! wherefore art thou Romeo?\n", "KING RICHARD III:\n",
           "MENENIUS:\nWhat work's, my countrymen, in hand? where go you\n", "\n\nDUKE VINCENTIO:\n",
           "LADY CAPULET:\nWhat say you? can you love the gentleman?\n", "To be, or not to be:"]
GREEDY_TOKENS = 32
WINDOW = 256


def graph_past(model_dir):
    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = json.load(f)
    dt = mkfixture.graph_dtype(model_dir, cfg)
    return cfg, {"type": "float16" if dt == "fp16" else "float32", "kv_heads": cfg["num_key_value_heads"],
                 "head_dim": cfg["hidden_size"] // cfg["num_attention_heads"],
                 "layers": cfg["num_hidden_layers"]}


def heldout_ids(corpus, holdout, tokenizer, max_chars=0):
    import bpe_encode
    import bpe_train
    _, valid_txt = bpe_train.load_corpus(corpus, holdout)
    if max_chars:
        valid_txt = valid_txt[:max_chars]
    enc = bpe_encode.Encoder(tokenizer)
    return enc, enc.encode(valid_txt), len(valid_txt)


def prompt_logits(runner, cfg, past, prompts):
    dt = np.float16 if past["type"] == "float16" else np.float32
    feeds = []
    for ids in prompts:
        a = np.array([ids], np.int64)
        feeds.append(mkfixture.feeds_for(a, np.ones_like(a), np.arange(len(ids))[None],
                                         mkfixture.empty_past(cfg, dt, 1)))
    return [o["logits"][0].astype(np.float64) for o in runner.run(feeds)]


def evaluate(a):
    for d in [a.base] + a.quant:
        if not os.path.isfile(os.path.join(d, "model.onnx")):
            raise mkfixture.FixtureError("%s: no model.onnx" % d)
    enc, ids, chars = heldout_ids(a.corpus, a.holdout, os.path.join(a.base, "tokenizer.json"), a.max_eval_chars)
    slices = [ids[o:o + 64] for o in range(0, len(ids) - 64, max(64, (len(ids) - 64) // 8))][:8]
    prompts = [enc.encode(p) for p in PROMPTS] + slices
    res = {"heldout_tokens": len(ids), "heldout_chars": chars, "prompts": len(prompts), "models": {}}
    per = {}
    for d in [a.base] + a.quant:
        cfg, past = graph_past(d)
        r = mkfixture.OrtRunner(d)
        out = r._call({"model": r.model, "nll": {"ids": ids, "seq": WINDOW, "batch": 16, "past": past}})
        loss = out["nll_sum"] / out["count"]
        bpc = loss * len(ids) / chars / math.log(2)
        logits = prompt_logits(r, cfg, past, prompts)
        greedy = [r.generate(p, GREEDY_TOKENS) for p in prompts]
        note = mkfixture.fixture_note(d).get("quant")
        per[d] = dict(argmax=np.array(out["argmax"]), logits=logits, greedy=greedy)
        res["models"][d] = {"quant": note, "loss_per_token": loss, "scored_tokens": out["count"],
                            "bits_per_char": bpc, "onnx_bytes": os.path.getsize(os.path.join(d, "model.onnx"))}
        print("%-40s loss %.4f nats/token  %.4f bits/char  model.onnx %d bytes" % (
            d, loss, bpc, res["models"][d]["onnx_bytes"]), flush=True)
    b = per[a.base]
    base_bpc = res["models"][a.base]["bits_per_char"]
    for d in a.quant:
        q = per[d]
        m = res["models"][d]
        m["heldout_top1_agree"] = float(np.mean(q["argmax"] == b["argmax"]))
        diffs = [np.abs(x - y) for x, y in zip(q["logits"], b["logits"])]
        m["logit_max_abs"] = float(max(x.max() for x in diffs))
        m["logit_max_rel"] = m["logit_max_abs"] / float(max(np.abs(y).max() for y in b["logits"]))
        allb = np.concatenate([y.ravel() for y in b["logits"]])
        alld = np.concatenate([(x - y).ravel() for x, y in zip(q["logits"], b["logits"])])
        m["logit_rms_over_std"] = float(np.sqrt(np.mean(alld ** 2)) / np.std(allb))
        m["prompt_top1_agree"] = float(np.mean(np.concatenate(
            [x.argmax(-1) == y.argmax(-1) for x, y in zip(q["logits"], b["logits"])])))
        same_pos = sum(sum(int(u == v) for u, v in zip(gq, gb)) for gq, gb in zip(q["greedy"], b["greedy"]))
        m["greedy_tokens_equal"] = same_pos / float(GREEDY_TOKENS * len(prompts))
        m["greedy_prompts_all_equal"] = sum(gq == gb for gq, gb in zip(q["greedy"], b["greedy"]))
        m["bpc_rise"] = m["bits_per_char"] / base_bpc - 1.0
        print("%-40s vs base: held-out top-1 %.2f%%, bits/char %+.2f%%, max|dlogit| %.3f (rel %.4f), "
              "rms/std %.4f, prompt top-1 %.2f%%, greedy tokens equal %.1f%%, %d/%d prompts all 32 equal" % (
                  d, 100 * m["heldout_top1_agree"], 100 * m["bpc_rise"], m["logit_max_abs"], m["logit_max_rel"],
                  m["logit_rms_over_std"], 100 * m["prompt_top1_agree"], 100 * m["greedy_tokens_equal"],
                  m["greedy_prompts_all_equal"], len(prompts)), flush=True)
    return res


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--base", required=True, help="the float model folder")
    ap.add_argument("--quant", nargs="+", required=True, help="its quantized twins (mkfixture.py --quant --from)")
    ap.add_argument("--corpus", default=os.path.join(mkfixture.REPO_DIR, "data", "tinyshakespeare.txt"))
    ap.add_argument("--holdout", type=float, default=0.1)
    ap.add_argument("--max-eval-chars", type=int, default=0, help="score only the first N held-out characters")
    ap.add_argument("--json", help="write the figures here")
    ap.add_argument("--min-top1", type=float, help="least held-out top-1 agreement with the base (0..1)")
    ap.add_argument("--max-bpc-rise", type=float, help="largest relative rise of bits/char (0.01 = 1%%)")
    ap.add_argument("--min-greedy-tokens", type=float, help="least fraction of greedy tokens equal")
    ap.add_argument("--max-rel-logit", type=float, help="largest max|dlogit| / max|base logit|")
    a = ap.parse_args(argv)
    try:
        res = evaluate(a)
    except (mkfixture.FixtureError, OSError, ValueError, KeyError) as e:
        print("quant_eval: %s" % e, file=sys.stderr)
        return 2
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1, sort_keys=True)
            f.write("\n")
    failed = []
    for d in a.quant:
        m = res["models"][d]
        for key, limit, low in (("heldout_top1_agree", a.min_top1, True), ("bpc_rise", a.max_bpc_rise, False),
                                ("greedy_tokens_equal", a.min_greedy_tokens, True),
                                ("logit_max_rel", a.max_rel_logit, False)):
            if limit is not None and (m[key] < limit if low else m[key] > limit):
                failed.append("%s: %s %.4f %s limit %.4f" % (d, key, m[key], "under" if low else "over", limit))
    for f in failed:
        print("quant_eval: FAIL %s" % f, file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
