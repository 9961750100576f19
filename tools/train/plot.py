#!/usr/bin/python3
"""plot.py - draw train.py's log.csv (training and validation loss, bits per character) as a PNG.

  plot.py LOG.csv OUT.png [--title T]
"""

import argparse
import csv
import sys


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("log")
    ap.add_argument("out")
    ap.add_argument("--title", default="cohort default model: loss")
    ap.add_argument("--target", type=float, default=2.4, help="bits/char target line")
    a = ap.parse_args(argv)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows = list(csv.DictReader(open(a.log)))
    if not rows:
        sys.exit("plot: %s has no rows" % a.log)
    step = [int(r["step"]) for r in rows]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.plot(step, [float(r["train_loss"]) for r in rows], label="train (mean over the last 100 steps)")
    ax1.plot(step, [float(r["val_loss"]) for r in rows], label="validation (held-out 10%)")
    ax1.set_xlabel("step (2,048 tokens each)")
    ax1.set_ylabel("loss per token (nats)")
    ax1.legend()
    ax1.grid(alpha=0.3)
    ax2.plot(step, [float(r["val_bpc"]) for r in rows], label="validation bits/char", color="C1")
    ax2.axhline(2.71, ls=":", color="gray", label="nanoGPT CPU config 2.71")
    ax2.axhline(a.target, ls="--", color="C3", label="target %.2f" % a.target)
    ax2.axhline(2.12, ls=":", color="black", label="nanoGPT GPU baby GPT 2.12")
    ax2.set_xlabel("step")
    ax2.set_ylabel("bits per character")
    ax2.legend()
    ax2.grid(alpha=0.3)
    fig.suptitle(a.title)
    fig.tight_layout()
    fig.savefig(a.out, dpi=80)


if __name__ == "__main__":
    main(sys.argv[1:])
