#!/usr/bin/env python3
"""golden_digest.py — pinned run digests (driven by tests/golden_digest.sh).

Runs every LLM-free example scenario (examples/*.yaml without `models`) and
the golden scenarios of tests/data/golden/ (LLM-free ones, and debate-like
ones on the tests' fixture models) and compares each run's digest and event
count with the values pinned in tests/data/golden_digests.json.

A digest is a function of the run's inputs (the genesis: cohort version,
seed, scenario text, agent module bytes, model files, device/max_batch/
threads) and, for scenarios with a model, of the floating-point results of
ONNX Runtime's kernels, which depend on the CPU's instruction set (MLAS
dispatches on AVX2/FMA/AVX-512/VNNI/AMX).  So each pin records:
  - cohort version and scenario sha256: if either differs, this test FAILS
    (the test's own inputs changed: re-pin, see below);
  - the sha256 of every agent module and the identity of every model, and
    the toolchain that made them (clang + wasi-libc build the modules; numpy
    writes the fixtures): when they differ under another toolchain, the
    pinned digest is NOT COMPARABLE, and the test says so; when they differ
    under the same toolchain, an agent, the SDK or the fixture tool changed,
    and the test FAILS (re-pin);
  - for scenarios with a model, the CPU's instruction set: when it differs
    the pinned digest is NOT COMPARABLE either, and the test says so.
Whether or not the pin is comparable, every scenario is run with --workers
1, 2 and 8 and --workers 1 once more, and all four digests and event counts
must be equal (the determinism contract holds on every machine).

A PINNED DIGEST CHANGES ONLY WITH A COMMIT THAT SAYS WHY (which change to
the journal, the scheduler, the sampler, the engine or the scenario moved
it).  To re-pin: COH_GOLDEN_PRINT=1 bash tests/golden_digest.sh prints the
JSON to commit; never re-pin to make a failure go away without knowing why.
"""
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile

BIN = os.environ["COH_BIN"]
BUILD = os.environ["COH_BUILD_DIR"]
SRC = os.environ["COH_SOURCE_DIR"]
FIX = os.environ["COH_FIXTURES"]
PINS = os.path.join(SRC, "tests", "data", "golden_digests.json")
WORKERS = (1, 2, 8, 1)

# The x86 flags MLAS (ONNX Runtime's CPU kernels) selects kernels by, and
# their aarch64 counterparts.
ISA_FLAGS = ("sse4_1", "avx", "f16c", "fma", "avx2", "avx512f", "avx512bw", "avx512dq", "avx512vl",
             "avx512_vnni", "avx_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_int8",
             "amx_bf16", "asimd", "asimddp", "i8mm", "bf16", "sve", "sve2", "fphp", "asimdhp")


def cpu_isa():
    import platform
    flags = set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if re.match(r"^(flags|Features)\s*:", line):
                    flags = set(line.split(":", 1)[1].split())
                    break
    except OSError:
        pass
    return platform.machine() + " " + " ".join(f for f in ISA_FLAGS if f in flags)


def command_line(args):
    try:
        p = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, timeout=60)
        return p.stdout.strip().split("\n")[0] if p.returncode == 0 else "unknown"
    except OSError:
        return "unknown"


def toolchains():
    """What builds the agent modules and writes the fixtures' bytes."""
    cc = "clang"
    try:
        with open(os.path.join(BUILD, "CMakeCache.txt")) as f:
            m = re.search(r"^COH_WASM_CC:FILEPATH=(.*)$", f.read(), re.M)
            cc = m.group(1) if m else cc
    except OSError:
        pass
    agents = "%s; wasi-libc %s" % (command_line([cc, "--version"]),
                                   command_line(["dpkg-query", "-W", "-f=${Version}", "wasi-libc"]))
    models = "numpy " + command_line([sys.executable, "-c", "import numpy; print(numpy.__version__)"])
    return agents, models


def scenarios():
    """(name, path of the scenario in the laid-out folder) for every case."""
    out = []
    for f in sorted(os.listdir(os.path.join(SRC, "examples"))):
        if not f.endswith(".yaml"):
            continue
        with open(os.path.join(SRC, "examples", f)) as fh:
            text = fh.read()
        if re.search(r"^models:", text, re.M):
            continue  # needs a model that is not a test fixture
        out.append(("examples/" + f, os.path.join("examples", f)))
    for f in sorted(os.listdir(os.path.join(SRC, "tests", "data", "golden"))):
        if f.endswith(".yaml"):
            out.append(("golden/" + f, os.path.join("golden", f)))
    return out


def layout(root):
    """The scenarios' relative paths: examples/ and golden/ beside build/."""
    shutil.copytree(os.path.join(SRC, "examples"), os.path.join(root, "examples"))
    shutil.copytree(os.path.join(SRC, "tests", "data", "golden"), os.path.join(root, "golden"))
    os.makedirs(os.path.join(root, "build"))
    os.symlink(os.path.join(BUILD, "agents"), os.path.join(root, "build", "agents"))
    os.symlink(FIX, os.path.join(root, "build", "fixtures"))


def run(root, rel, workers, db):
    p = subprocess.run([BIN, "run", os.path.join(root, rel), "--journal", db, "--workers", str(workers),
                        "--cache-dir", os.path.join(BUILD, "test-module-cache"), "--quiet"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=500)
    if p.returncode != 0:
        raise RuntimeError("cohort run %s --workers %d: exit %d\n%s" % (rel, workers, p.returncode,
                                                                        p.stderr[-2000:]))
    digest = re.findall(r"^digest: ([0-9a-f]{64})$", p.stdout, re.M)
    events = re.findall(r"^events: (\d+)", p.stdout, re.M)
    if len(digest) != 1 or len(events) != 1:
        raise RuntimeError("cohort run %s: no digest/events line in\n%s" % (rel, p.stdout[-2000:]))
    c = sqlite3.connect(db)
    inputs = json.loads(c.execute("select value from meta where key='inputs'").fetchone()[0])
    c.close()
    return digest[0], int(events[0]), inputs


def observed(name, digest, events, inputs, isa, tools):
    return {
        "agents_toolchain": tools[0],
        "models_toolchain": tools[1] if inputs["models"] else None,
        "digest": digest,
        "events": events,
        "cohort": inputs["cohort"],
        "scenario_sha256": inputs["scenario_sha256"],
        "modules": sorted(set(a["module_sha256"] for a in inputs["agents"])),
        "models": [m["identity"] for m in inputs["models"]],
        "isa": isa if inputs["models"] else None,
    }


def main():
    isa = cpu_isa()
    tools = toolchains()
    printing = os.environ.get("COH_GOLDEN_PRINT") == "1"
    with open(PINS) as f:
        pins = json.load(f)["pins"]
    fails = 0
    not_comparable = []
    now = {}
    root = tempfile.mkdtemp(prefix="golden-")
    try:
        layout(root)
        cases = scenarios()
        print("this CPU's instruction set: %s" % isa)
        print("agent modules built by: %s; fixtures written with: %s" % tools)
        for name, rel in cases:
            runs = []
            for i, w in enumerate(WORKERS):
                runs.append(run(root, rel, w, os.path.join(root, "%s-%d.db" % (name.replace("/", "_"), i))))
            d, n, inputs = runs[0]
            same = all(r[0] == d and r[1] == n for r in runs)
            if same:
                print("ok   %s: one digest for --workers 1/2/8 and two runs (%s, %d events)" % (name, d, n))
            else:
                print("FAIL: %s: digests differ across runs: %s" %
                      (name, ", ".join("w%d %s/%d" % (w, r[0], r[1]) for w, r in zip(WORKERS, runs))))
                fails += 1
            obs = observed(name, d, n, inputs, isa, tools)
            now[name] = obs
            pin = pins.get(name)
            if pin is None:
                print("FAIL: %s: no pinned digest in %s (add one, in a commit that says why)" % (name, PINS))
                fails += 1
                continue
            if pin["cohort"] != obs["cohort"] or pin["scenario_sha256"] != obs["scenario_sha256"]:
                print("FAIL: %s: pinned for cohort %s / scenario %s, this is cohort %s / scenario %s: "
                      "the test's inputs changed; re-pin in a commit that says why" %
                      (name, pin["cohort"], pin["scenario_sha256"][:12], obs["cohort"],
                       obs["scenario_sha256"][:12]))
                fails += 1
                continue
            why = []
            changed = []
            if pin["modules"] != obs["modules"]:
                if pin.get("agents_toolchain") == obs["agents_toolchain"]:
                    changed.append("agent module bytes changed with the same toolchain (%s): an agent "
                                   "or sdk/ change" % obs["agents_toolchain"])
                else:
                    why.append("agent modules differ, built by [%s], pinned with [%s]" %
                               (obs["agents_toolchain"], pin.get("agents_toolchain")))
            if pin["models"] != obs["models"]:
                if pin.get("models_toolchain") == obs["models_toolchain"]:
                    changed.append("fixture model files changed with the same %s: a tools/mkfixture.py "
                                   "change" % obs["models_toolchain"])
                else:
                    why.append("model files differ, written with [%s], pinned with [%s]" %
                               (obs["models_toolchain"], pin.get("models_toolchain")))
            if changed:
                print("FAIL: %s: %s; re-pin in a commit that says why" % (name, "; ".join(changed)))
                fails += 1
                continue
            if pin["isa"] != obs["isa"]:
                why.append("pinned on CPU [%s], this CPU is [%s]" % (pin["isa"], obs["isa"]))
            if why:
                print("NOT COMPARABLE: %s: the pinned digest %s was not compared: %s; only the "
                      "equality across workers and runs above was checked" %
                      (name, pin["digest"][:16], "; ".join(why)))
                not_comparable.append(name)
                continue
            if pin["digest"] == obs["digest"] and pin["events"] == obs["events"]:
                print("ok   %s: the pinned digest and event count (%d)" % (name, pin["events"]))
            else:
                print("FAIL: %s: pinned digest %s with %d events, got %s with %d events" %
                      (name, pin["digest"], pin["events"], obs["digest"], obs["events"]))
                fails += 1
        stale = sorted(set(pins) - set(n for n, _ in cases))
        for name in stale:
            print("FAIL: %s is pinned but no longer a scenario (remove the pin, in a commit that says why)"
                  % name)
            fails += 1
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if printing:
        print(json.dumps({"pins": now}, indent=1, sort_keys=True))
    print("%d scenarios, %d not comparable with their pins, %d failures" %
          (len(now), len(not_comparable), fails))
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
