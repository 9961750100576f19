#!/usr/bin/python3
"""orch_util.py - helpers for bench/run_orch.sh (Debian /usr/bin/python3, stdlib only).

  orch_util.py journal DB
      One JSON line from a cohort run journal: ticks, events, agent steps,
      messages, loop_seconds (wall clock from the first event of tick 1 to
      the last event: model/module loading and agent instantiation excluded),
      and the wall time of a tick (ticks >= 1, the journal's ticks.wall_us:
      inputs, policy, steps and commit, not the SQLite COMMIT) p50/p99/mean
      in microseconds.

  orch_util.py mem -- CMD [ARG...]
      Runs CMD, polling /proc/PID/status every 10 ms, and prints one JSON line:
      rc, seconds, vm_hwm_kb (peak resident set: ru_maxrss from wait4, which
      is the kernel's VmHWM), vm_peak_kb (peak virtual address space, last
      polled value; VmPeak is itself a high-water mark), vm_size_kb, threads.
      CMD's stdout/stderr go to this process's stderr.

  orch_util.py tag KEY=VALUE... < JSON-LINES
      Adds the fields to every JSON line of stdin (numbers stay numbers).

  orch_util.py summary RESULTS.jsonl
      The tables and ratios run_orch.sh prints at the end (see there).
"""
import json
import os
import sqlite3
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
import journal_rechain as jr  # noqa: E402  (reads format-4 ticks rows)


def pct(sorted_vals, p):
    if not sorted_vals:
        return 0.0
    return sorted_vals[min(len(sorted_vals) - 1, int(p * len(sorted_vals)))]


def journal(db):
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    cur = con.cursor()
    # format 4: a tick's events are one blob in its ticks row
    evs = jr.events(con)
    ticks = max((e.tick for e in evs), default=-1) + 1
    events = len(evs)
    counts = {}
    for e in evs:
        counts[e.kind] = counts.get(e.kind, 0) + 1
    first = min((e.wall_us for e in evs if e.tick >= 1), default=None)
    last = max((e.wall_us for e in evs), default=None)
    walls = sorted(w for (w,) in cur.execute("SELECT wall_us FROM ticks WHERE tick >= 1"))
    con.close()
    loop = ((last or 0) - (first or 0)) / 1e6
    out = {
        "ticks": ticks, "events": events,
        "steps": counts.get("step", 0), "messages": counts.get("message", 0),
        "llm_results": counts.get("llm_result", 0),
        "loop_seconds": loop,
        "tick_us_p50": pct(walls, 0.5), "tick_us_p99": pct(walls, 0.99),
        "tick_us_mean": sum(walls) / len(walls) if walls else 0.0,
    }
    print(json.dumps(out))


def status_kb(pid):
    vals = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmPeak", "VmSize", "VmHWM", "Threads"):
                    vals[k] = int(v.split()[0])
    except (OSError, ValueError):
        pass
    return vals


def mem(cmd):
    t0 = time.monotonic()
    pid = os.fork()
    if pid == 0:
        os.dup2(2, 1)
        try:
            os.execvp(cmd[0], cmd)
        finally:
            os._exit(127)
    peak = {}
    while True:
        done, status, ru = os.wait4(pid, os.WNOHANG)
        if done == pid:
            break
        s = status_kb(pid)
        for k, v in s.items():
            peak[k] = max(peak.get(k, 0), v)
        time.sleep(0.01)
    print(json.dumps({
        "rc": os.waitstatus_to_exitcode(status), "seconds": time.monotonic() - t0,
        "vm_hwm_kb": ru.ru_maxrss, "vm_peak_kb": peak.get("VmPeak", 0),
        "vm_size_kb": peak.get("VmSize", 0), "threads": peak.get("Threads", 0),
    }))


def tag(pairs):
    extra = {}
    for p in pairs:
        k, _, v = p.partition("=")
        try:
            extra[k] = int(v)
        except ValueError:
            try:
                extra[k] = float(v)
            except ValueError:
                extra[k] = v
    for line in sys.stdin:
        line = line.strip()
        if line.startswith("{"):
            d = json.loads(line)
            d.update(extra)
            print(json.dumps(d))


def best(rows, key):
    """The row with the largest `key` (best of the repetitions)."""
    return max(rows, key=lambda r: r[key]) if rows else None


def summary(path):
    rows = [json.loads(l) for l in open(path) if l.strip().startswith("{")]
    sel = lambda **kw: [r for r in rows if all(r.get(k) == v for k, v in kw.items())]
    out = []
    p = out.append
    # ---- (a) routing
    route = sel(bench="route")
    if route:
        r0 = route[0]
        p(f"(a) routing, no LLM: {r0['agents']} pingpong agents in pairs, every agent starts with one "
          f"message, {r0['hops']} hops per message = {r0['agents'] * r0['hops']} deliveries; best of "
          f"{max(r['rep'] for r in route)} runs each")
        p("    impl     workers journal   deliveries/s  per-delivery  hop latency p50 / p99 (us)   [cohort wall incl. load]")
        digests = set()
        for loc in ("disk", "tmpfs"):
            for w in sorted({r["workers"] for r in sel(bench="route", impl="cohort")}):
                b = best(sel(bench="route", impl="cohort", workers=w, journal=loc), "rate")
                if b is None:
                    continue
                digests.add(b["digest"])
                p(f"    cohort   {w:7d} {loc:7s} {b['rate']:14,.0f} {1e6 / b['rate']:10.2f} us"
                  f"  {b['tick_us_p50']:10.0f} / {b['tick_us_p99']:<10.0f} (= tick)   "
                  f"[{b['wall_rate']:,.0f}/s]")
        for w in sorted({r["workers"] for r in sel(bench="route", impl="cohort-nojournal")}):
            b = best(sel(bench="route", impl="cohort-nojournal", workers=w), "rate")
            p(f"    cohort   {w:7d} none    {b['rate']:14,.0f} {1e6 / b['rate']:10.2f} us"
              f"  {'-':>10s}   (coh_run with no journal: bench/orch_nojournal.c)")
        for w in sorted({r["workers"] for r in sel(bench="route", impl="node")}):
            b = best(sel(bench="route", impl="node", workers=w), "rate")
            note = "  (one thread: no MessagePort; not the reference)" if w == 1 else ""
            p(f"    node     {w:7d} -       {b['rate']:14,.0f} {1e6 / b['rate']:10.2f} us"
              f"  {b['lat_us_p50']:10.0f} / {b['lat_us_p99']:<10.0f}{note}")
        p(f"    cohort digests across all worker counts and journal locations: "
          f"{'all equal' if len(digests) == 1 else 'DIFFER: ' + ', '.join(sorted(digests))}")
        ref = best([r for r in sel(bench="route", impl="node") if r["workers"] >= 2], "rate")
        for loc in ("disk", "tmpfs"):
            c = best(sel(bench="route", impl="cohort", journal=loc), "rate")
            if c and ref:
                ratio = c["rate"] / ref["rate"]
                p(f"    RATIO routing, cohort best ({c['workers']} workers, journal on {loc}) / node "
                  f"worker_threads best ({ref['workers']} workers): {ratio:.2f}x   target >= 10x: "
                  f"{'met' if ratio >= 10 else 'MISSED'}")
        c = best(sel(bench="route", impl="cohort-nojournal"), "rate")
        if c and ref:
            p(f"    (no journal at all, {c['workers']} workers: {c['rate'] / ref['rate']:.2f}x the node "
              f"reference: the journal is {100 * (1 - best(sel(bench='route', impl='cohort', journal='tmpfs'), 'rate')['rate'] / c['rate']):.0f}% "
              f"of cohort's routing time with the journal on tmpfs)")
        for w in sorted({r["workers"] for r in sel(bench="route", impl="node")}):
            c = best(sel(bench="route", impl="cohort", workers=w, journal="tmpfs"), "rate")
            n = best(sel(bench="route", impl="node", workers=w), "rate")
            if c and n and w >= 2:
                p(f"    same worker count {w}: cohort (tmpfs) / node = {c['rate'] / n['rate']:.2f}x")
    # ---- (w) whole process, side by side
    whole = sel(bench="whole")
    if whole:
        w0 = whole[0]
        p(f"(w) whole process, {w0['agents']} agents x {w0['hops']} hops, 2 workers, journal on disk: "
          f"wall seconds from exec to exit, {max(len(sel(bench='whole', impl=i)) for i in ('node',))} "
          f"alternating rounds (load {min(r['load'] for r in whole)}-{max(r['load'] for r in whole)})")
        med = {}
        for impl in ("before", "cohort", "node"):
            v = sorted(r["seconds"] for r in sel(bench="whole", impl=impl))
            if not v:
                continue
            med[impl] = v[len(v) // 2]
            digests = sorted({r["digest"] for r in sel(bench="whole", impl=impl) if r["digest"]})
            cpu = sorted(r.get("cpu_seconds", 0) for r in sel(bench="whole", impl=impl))
            p(f"    {impl:7s} median {med[impl]:7.3f} s  min {v[0]:7.3f}  max {v[-1]:7.3f}  "
              f"CPU median {cpu[len(cpu) // 2]:6.3f} s  "
              f"runs: {' '.join('%.3f' % r['seconds'] for r in sel(bench='whole', impl=impl))}"
              + (f"  digest {digests[0][:16]}..." if len(digests) == 1 else
                 f"  digests {len(digests)}" if digests else ""))
        for impl in ("before", "cohort"):
            if impl in med and "node" in med:
                p(f"    {impl} vs node: {med['node'] / med[impl]:.2f}x as fast (target >= 3x, ambition 10x)")
        if "before" in med and "cohort" in med:
            p(f"    after vs before: {med['before'] / med['cohort']:.2f}x as fast")
        p("")
    # ---- (b) LLM
    for model in sorted({r["model"] for r in sel(bench="llm")}, key=lambda m: "0" if "100m" in m else m):
        p("")
        b64 = best(sel(bench="llm", impl="cohort", model=model, max_batch=64), "rate")
        b1 = best(sel(bench="llm", impl="cohort", model=model, max_batch=1), "rate")
        anyr = b64 or b1
        p(f"(b) LLM, model {model}: {anyr['clients']} llmloop agents x {anyr['rounds']} requests each "
          f"(closed loop: the next request when the last result arrives), {anyr['tokens']} tokens; CPU, "
          f"{anyr['threads']} ORT threads; tokens/s over the tick loop (model load excluded), best of runs")
        for b in (b64, b1):
            if b:
                p(f"    cohort run, max_batch {b['max_batch']:3d}: {b['rate']:9.1f} tokens/s  "
                  f"({b['ticks']} ticks, {b['loop_seconds']:.2f} s; cohort's own summary incl. load: "
                  f"{b['wall_rate']:.1f} tokens/s)")
        if b64 and b1:
            ratio = b64["rate"] / b1["rate"]
            p(f"    RATIO continuous batching (max_batch 64) / one at a time (max_batch 1), cohort: {ratio:.2f}x"
              f"   target >= 4x: {'met' if ratio >= 4 else 'MISSED'}")
        frees = sel(bench="llm", impl="engine-api", model=model, mode="free", max_batch=64)
        ticks = sel(bench="llm", impl="engine-api", model=model, mode="tick", max_batch=64)
        one = best(sel(bench="llm", impl="engine-api", model=model, mode="free", max_batch=1), "tokens_per_s")
        fr = best(frees, "tokens_per_s")
        if fr and one:
            p(f"    engine API alone: max_batch 64 free {fr['tokens_per_s']:.1f} tokens/s vs max_batch 1 "
              f"{one['tokens_per_s']:.1f} tokens/s = {fr['tokens_per_s'] / one['tokens_per_s']:.2f}x "
              f"(the engine's own batching gain on this CPU)")
        pairs = [(f, t) for f in frees for t in ticks if f["rep"] == t["rep"]]
        if pairs:
            med = lambda v: sorted(v)[len(v) // 2]
            loss_w = med([1 - t["tokens_per_s"] / f["tokens_per_s"] for f, t in pairs])
            loss_c = med([1 - t["tokens_per_cpu_s"] / f["tokens_per_cpu_s"] for f, t in pairs])
            f0, t0 = pairs[0]
            p(f"    engine API, same clients and requests, max_batch 64, {len(pairs)} adjacent (free, tick) pairs:")
            for f, t in pairs:
                p(f"      pair {f['rep']}: free {f['tokens_per_s']:8.1f} tokens/s ({f['tokens_per_cpu_s']:7.1f}/CPU-s)"
                  f"   tick {t['tokens_per_s']:8.1f} tokens/s ({t['tokens_per_cpu_s']:7.1f}/CPU-s)")
            p(f"      steps: free {f0['logical_steps']}, tick {t0['logical_steps']} "
              f"(+{100 * (t0['logical_steps'] / f0['logical_steps'] - 1):.1f}%); mean decode batch "
              f"{f0['mean_decode_batch']:.1f} vs {t0['mean_decode_batch']:.1f}")
            lw = sorted(1 - t["tokens_per_s"] / f["tokens_per_s"] for f, t in pairs)
            extra = t0["logical_steps"] / f0["logical_steps"] - 1
            noisy = lw[-1] - lw[0] > 0.10
            if not noisy:
                verdict = "met" if loss_w <= 0.10 else "MISSED"
            else:
                verdict = ("wall clock inconclusive (noise); met by the step bound" if extra <= 0.10
                           else "MISSED by the step bound")
            p(f"    RATIO cost of determinism (tick-boundary vs free-running admission), median of pairs: "
              f"{100 * loss_w:.1f}% fewer tokens/s (wall), {100 * loss_c:.1f}% fewer tokens per CPU-second;"
              f" step bound {100 * extra:.1f}%   target <= 10%: {verdict}")
            p(f"      per-pair wall losses range {100 * lw[0]:.1f}% .. {100 * lw[-1]:.1f}%; the step bound: the "
              f"same decode tokens and prefills in {100 * extra:.1f}% more engine steps, so at most that much "
              f"more time when a step's cost does not grow with its batch (less when it does)")
            if b64:
                full = 1 - b64["rate"] / fr["tokens_per_s"]
                p(f"    whole cohort (agents, journal, tick loop; max_batch 64, best run) vs free-running engine "
                  f"(best run): {100 * full:.1f}% fewer tokens/s (different moments: indicative only)")
    # ---- (c) memory
    mem = sel(bench="mem")
    if mem:
        p("")
        base = best(sel(bench="mem", agents=min(r["agents"] for r in mem)), "agents")
        p(f"(c) memory: echo agents (default memory_mb), 10 messages, 4 ticks; peak RSS = VmHWM "
          f"(ru_maxrss); baseline {base['agents']} agents: {base['vm_hwm_kb'] / 1024:.1f} MiB")
        for r in sorted(mem, key=lambda r: r["agents"]):
            if r is base:
                continue
            if r["rc"] != 0:
                p(f"    {r['agents']:6d} agents: does not run (exit {r['rc']}): {r.get('error') or '?'}")
                continue
            per = (r["vm_hwm_kb"] - base["vm_hwm_kb"]) / r["agents"]
            p(f"    {r['agents']:6d} agents: peak RSS {r['vm_hwm_kb'] / 1024:8.1f} MiB, "
              f"(peak - baseline) / N = {per:6.1f} KiB per agent; peak virtual "
              f"{r['vm_peak_kb'] / 2**30:6.2f} TiB = {r['vm_peak_kb'] / 2**20 / r['agents']:.2f} GiB per agent")
        p(f"    x86-64 user address space is 128 TiB (47 bits): at ~8 GiB reserved per agent the ceiling "
          f"is about {128 * 1024 // 8:,} agents per process")
    print("\n".join(out))


def main(argv):
    if len(argv) == 3 and argv[1] == "journal":
        journal(argv[2])
    elif len(argv) >= 4 and argv[1] == "mem" and argv[2] == "--":
        mem(argv[3:])
    elif len(argv) >= 2 and argv[1] == "tag":
        tag(argv[2:])
    elif len(argv) == 3 and argv[1] == "summary":
        summary(argv[2])
    else:
        sys.stderr.write(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
