// bench/llamacpp/llama.mjs — llama.cpp (through node-llama-cpp 3.21.1, its
// prebuilt Linux x64 CPU binary) on a GGUF written by tools/mkgguf.py.  Bench
// only: the runtime and the tests never use it.
//
//   node llama.mjs greedy --model F.gguf --prompt-ids 1,2,3 --n N [--threads T]
//       greedy ids (temperature 0), fed as token ids (no tokenizer), ignoring
//       end of sequence like cohort's --ignore-eos; prints a JSON array
//   node llama.mjs bench --model F.gguf --prompt-len P --decode D --seqs S
//                        --vocab V --bos B [--threads T]
//       S sequences in one context (S parallel sequences, batched together by
//       node-llama-cpp into one llama_decode per step), each with the prompt
//       bench_infer gives request r (same ids), prefilled all at once
//       (prefill tok/s = S*P / wall), then D greedy tokens each, every step
//       one token per sequence (decode tok/s = S*D / wall, aggregate);
//       after a warm-up like bench_infer's (one sequence, prompt + 4 tokens,
//       history cleared); prints one JSON line, with the CPU time of the process and the
//       run-queue wait of its threads (Linux schedstat: time runnable but
//       not running, i.e. other processes had the cores) during decode
//   node llama.mjs prompt --prompt-len P --req R --vocab V --bos B
//       prints bench_infer's prompt for request R as comma-separated ids
import { readFileSync, readdirSync } from "node:fs";
import { getLlama, LlamaLogLevel } from "node-llama-cpp";

function die(msg) {
  process.stderr.write(`llama.mjs: ${msg}\n`);
  process.exit(2);
}

function parseArgs(argv) {
  const o = { threads: 2, n: 32, seqs: 1 };
  const ints = new Set(["n", "threads", "prompt-len", "decode", "seqs", "vocab", "bos", "req"]);
  o.cmd = argv[0];
  for (let i = 1; i < argv.length; i += 2) {
    const k = argv[i].replace(/^--/, "");
    const v = argv[i + 1];
    if (v === undefined) die(`${argv[i]} needs a value`);
    if (ints.has(k)) {
      if (!/^\d+$/.test(v)) die(`--${k}: not a non-negative integer: ${v}`);
      o[k] = Number(v);
    } else if (k === "model") o.model = v;
    else if (k === "prompt-ids") {
      o.promptIds = v.split(",").map((x) => {
        if (!/^\d+$/.test(x)) die(`--prompt-ids: not an id: ${x}`);
        return Number(x);
      });
    } else die(`unknown option ${argv[i]}`);
  }
  if (!o.model && o.cmd !== "prompt") die("--model is required");
  return o;
}

// bench/bench_infer.c make_prompt(): BOS, then ids mixed from (request, position)
function makePrompt(len, req, vocab, bos) {
  const M = (1n << 64n) - 1n;
  const span = BigInt(vocab > 16 ? vocab - 3 : 1);
  const p = [bos];
  for (let i = 1; i < len; i++) {
    let x = (BigInt(req) * 0x9e3779b97f4a7c15n + BigInt(i) * 0xbf58476d1ce4e5b9n) & M;
    x ^= x >> 31n;
    x = (x * 0x94d049bb133111ebn) & M;
    x ^= x >> 29n;
    p.push(Number(3n + (x % span)));
  }
  return p;
}

// n greedy tokens after the already-evaluated history, starting by evaluating
// `first`; an end-of-generation token is yielded and then fed back, so the
// sequence continues past it (cohort's ignore_eos)
async function generate(seq, first, n, out) {
  let feed = [first];
  while (out.length < n) {
    const before = out.length;
    for await (const tok of seq.evaluate(feed, { temperature: 0, yieldEogToken: true })) {
      out.push(tok);
      if (out.length >= n) break;
    }
    if (out.length === before) throw new Error("evaluate yielded nothing");
    feed = [out[out.length - 1]];
  }
  return out;
}

// summed run-queue wait (ns) of this process's threads (0 where unavailable)
function runqWaitNs() {
  let sum = 0;
  try {
    for (const t of readdirSync("/proc/self/task")) {
      const f = readFileSync(`/proc/self/task/${t}/schedstat`, "utf8").split(" ");
      sum += Number(f[1]) || 0;
    }
  } catch {
    return 0;
  }
  return sum;
}

const o = parseArgs(process.argv.slice(2));
if (o.cmd === "prompt") {
  if (!o["prompt-len"] || o.vocab === undefined || o.bos === undefined || o.req === undefined)
    die("prompt needs --prompt-len --req --vocab --bos");
  process.stdout.write(makePrompt(o["prompt-len"], o.req, o.vocab, o.bos).join(",") + "\n");
  process.exit(0);
}
const llama = await getLlama({ gpu: false, build: "never", maxThreads: o.threads, logLevel: LlamaLogLevel.error });
const model = await llama.loadModel({ modelPath: o.model, gpuLayers: 0 });

if (o.cmd === "greedy") {
  if (!o.promptIds || o.promptIds.length < 1) die("--prompt-ids is required");
  const ctx = await model.createContext({ contextSize: o.promptIds.length + o.n + 8, sequences: 1, threads: o.threads });
  const seq = ctx.getSequence();
  if (o.promptIds.length > 1) await seq.evaluateWithoutGeneratingNewTokens(o.promptIds.slice(0, -1));
  const out = await generate(seq, o.promptIds[o.promptIds.length - 1], o.n, []);
  process.stdout.write(JSON.stringify(out) + "\n");
  await ctx.dispose();
} else if (o.cmd === "bench") {
  const P = o["prompt-len"], D = o.decode, S = o.seqs;
  if (!P || !D || !S || o.vocab === undefined || o.bos === undefined) die("bench needs --prompt-len --decode --seqs --vocab --bos");
  const ctx = await model.createContext({
    contextSize: S * (P + D + 8), sequences: S, threads: o.threads, batchSize: Math.max(512, S * P),
  });
  const seqs = [];
  for (let r = 0; r < S; r++) seqs.push(ctx.getSequence());
  const prompts = seqs.map((_, r) => makePrompt(P, r, o.vocab, o.bos));
  // warm-up, as bench_infer does (--warmup 4): one sequence runs prompt 0 and
  // 4 tokens, then its history is cleared (first-use allocations and graph
  // set-up are not counted)
  await seqs[0].evaluateWithoutGeneratingNewTokens(prompts[0].slice(0, -1));
  await generate(seqs[0], prompts[0][P - 1], 4, []);
  await seqs[0].clearHistory();
  // prefill: all prompts but their last token, in one batch
  let t0 = process.hrtime.bigint();
  await Promise.all(seqs.map((s, r) => s.evaluateWithoutGeneratingNewTokens(prompts[r].slice(0, -1))));
  const prefillS = Number(process.hrtime.bigint() - t0) / 1e9;
  // decode: each step evaluates one token per sequence and samples the next
  const outs = seqs.map(() => []);
  const cpu0 = process.cpuUsage(), wait0 = runqWaitNs();
  t0 = process.hrtime.bigint();
  await Promise.all(seqs.map((s, r) => generate(s, prompts[r][P - 1], D, outs[r])));
  const decodeS = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = process.cpuUsage(cpu0), waitS = (runqWaitNs() - wait0) / 1e9;
  process.stdout.write(JSON.stringify({
    engine: "llama.cpp", seqs: S, prompt_len: P, decode_len: D, threads: o.threads,
    prefill_tps: (S * (P - 1)) / prefillS, decode_tps: (S * D) / decodeS, decode_s: decodeS,
    decode_cpu_s: (cpu.user + cpu.system) / 1e6, decode_runq_wait_s: waitS, tokens0: outs[0],
  }) + "\n");
  await ctx.dispose();
} else die(`unknown command ${o.cmd} (greedy | bench)`);
await model.dispose();
await llama.dispose();
