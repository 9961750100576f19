#!/usr/bin/python3
"""summary.py RAW.jsonl --threads T — tables for bench/llamacpp/run.sh.

Greedy agreement per prompt (identical ids, first divergence), then per
(engine, weight type, threads, sequences) the median over rounds of prefill
tok/s, decode tok/s (aggregate) and run-queue wait (share of decode wall
time the process's threads were runnable but another process had the CPU),
CPU use during decode (cores) and CPU milliseconds per decoded token (the
figure the neighbours disturb least: it counts work, not waiting),
and cohort / llama.cpp ratios: the median of the per-round ratios (the two
engines ran back to back in the same round) and the ratio of the medians.
"""
import argparse
import json
import statistics
import sys


def main(argv):
    ap = argparse.ArgumentParser()
    ap.add_argument("raw")
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--cohort-type", default="fp32", help="label of cohort's rows (fp32, int8, int4)")
    a = ap.parse_args(argv)
    agree, rows = [], []
    with open(a.raw) as f:
        for ln, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                o = json.loads(line)
            except ValueError as e:
                print("summary.py: %s:%d: not JSON: %s" % (a.raw, ln, e), file=sys.stderr)
                return 1
            (agree if "agree" in o else rows).append(o)

    print("## greedy agreement (cohort fp32 vs llama.cpp F32, token ids in, ignore EOS)")
    all_ok = True
    for o in agree:
        c, l = o["cohort"], o["llamacpp"]
        n = min(len(c), len(l))
        first = next((i for i in range(n) if c[i] != l[i]), None)
        same = sum(1 for i in range(n) if c[i] == l[i])
        ok = first is None and len(c) == len(l)
        all_ok &= ok
        print("%-14s prompt %d: %d/%d identical%s" % (o["agree"], o["req"], same, max(len(c), len(l)),
                                                      "" if first is None else ", first difference at %d" % first))
    print("agreement: %s" % ("not checked in this run" if not agree else
                             "ALL IDENTICAL" if all_ok else "DIFFERENCES"))

    # normalise: key (engine, type, threads, seqs) -> per round dict
    stats = {}
    for o in rows:
        if o.get("engine") == "cohort":
            key = ("cohort", o.get("type", "fp32"), o["threads"], o["concurrency"])
            v = dict(prefill=o["prefill_tok_s"], decode=o["decode_tok_s"],
                     wait=o["decode_runq_wait_s"] / o["decode_s"] if o["decode_s"] > 0 else 0.0,
                     cpu=o["decode_cpu_s"] / o["decode_s"] if o["decode_s"] > 0 else 0.0)
        else:
            key = ("llama.cpp", o["type"].upper(), o["threads"], o["seqs"])
            v = dict(prefill=o["prefill_tps"], decode=o["decode_tps"],
                     wait=o["decode_runq_wait_s"] / o["decode_s"] if o["decode_s"] > 0 else 0.0,
                     cpu=o["decode_cpu_s"] / o["decode_s"] if o["decode_s"] > 0 else 0.0)
        v["cpu_ms"] = 1000.0 * v["cpu"] / v["decode"] if v["decode"] > 0 else float("nan")
        stats.setdefault(key, {})[o["round"]] = v

    def med(key, field):
        vals = [r[field] for r in stats[key].values() if field in r]
        return statistics.median(vals) if vals else float("nan")

    print("\n## medians over rounds")
    print("| engine | weights | threads | sequences | prefill tok/s | decode tok/s | run-queue wait | CPU in decode | CPU ms per decoded token |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for key in sorted(stats, key=lambda k: (k[0] != "cohort", k[1], k[2], k[3])):
        print("| %s | %s | %d | %d | %.0f | %.1f | %.0f %% | %.2f cores | %.2f |" % (
            key[0], key[1], key[2], key[3], med(key, "prefill"), med(key, "decode"), 100 * med(key, "wait"),
            med(key, "cpu"), med(key, "cpu_ms")))

    for lt in sorted({k[2] for k in stats if k[0] == "llama.cpp"}, key=lambda t: (t != a.threads, t)):
        print("\n## cohort %s (%d threads) / llama.cpp (%d thread%s): median of per-round ratios; ratio of medians"
              % (a.cohort_type, a.threads, lt, "" if lt == 1 else "s"))
        print("| llama.cpp weights | sequences | prefill | decode |")
        print("|---|---:|---:|---:|")
        for key in sorted(stats):
            if key[0] != "llama.cpp" or key[2] != lt:
                continue
            ck = ("cohort", a.cohort_type, a.threads, key[3])
            if ck not in stats:
                continue
            cells = []
            for field in ("prefill", "decode"):
                per = [stats[ck][r][field] / stats[key][r][field] for r in stats[key]
                       if r in stats[ck] and stats[key][r][field] > 0]
                cells.append("%.2fx; %.2fx" % (statistics.median(per) if per else float("nan"),
                                               med(ck, field) / med(key, field)))
            print("| %s | %d | %s | %s |" % (key[1], key[3], cells[0], cells[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
