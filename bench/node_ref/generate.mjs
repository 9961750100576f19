// generate.mjs — the reference stack for cohort's benchmark: Node.js +
// onnxruntime-node running the same ONNX file with a straightforward
// generate loop, one request at a time (what the original design proposed
// before cohort).  Greedy decoding with the KV cache fed back as plain
// tensors: the present.N.* outputs of one session.run become the
// past_key_values.N.* inputs of the next.
//
//   node generate.mjs MODEL_DIR [--threads N] [--prompt-len P] [--decode-len D]
//        [--requests R] [--check TOKENS.json] [--spin] [--warmup N]
//
// Session options mirror cohort's (src/infer/model.c): N intra-op threads
// (0: all online cores), 1 inter-op thread, sequential execution, graph
// optimisation level "all", intra/inter-op spinning off (--spin leaves ONNX
// Runtime's default spinning on, for comparison).
//
// Requests are served one after another, so the aggregate throughput of R
// requests is their tokens over their summed time: this is what the
// reference delivers to R concurrent clients.  The best single request is
// reported too (the machine may be shared; interference only slows down).  Timing: prefill = the first
// run of a request (the whole prompt) plus its argmax; decode = every later
// run plus its argmax.  Prompts are those of bench_infer (same formula,
// request r), or with --check the prompt in TOKENS.json (written by
// bench_infer --dump-tokens), whose greedy tokens are then compared.
//
// Output: a readable summary on stderr and JSON lines on stdout.
import { createRequire } from 'node:module';
import { readFileSync, readdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { makePrompt as makePromptIds } from '../prompt.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, 'package.json'));
const ort = require('onnxruntime-node');

function usage(msg) {
  if (msg) process.stderr.write(`generate.mjs: ${msg}\n`);
  process.stderr.write('usage: node generate.mjs MODEL_DIR [--threads N] [--prompt-len P] ' +
                       '[--decode-len D] [--requests R] [--check TOKENS.json] [--spin] [--warmup N]\n');
  process.exit(2);
}

const args = { threads: 0, promptLen: 64, decodeLen: 64, requests: 1, check: null, spin: false,
               warmup: 4, model: null };
{
  const a = process.argv.slice(2);
  const int = (v, name) => {
    if (v === undefined || !/^\d+$/.test(v)) usage(`${name} needs a non-negative integer`);
    return Number(v);
  };
  for (let i = 0; i < a.length; i++) {
    switch (a[i]) {
      case '--threads': args.threads = int(a[++i], a[i - 1]); break;
      case '--prompt-len': args.promptLen = int(a[++i], a[i - 1]); break;
      case '--decode-len': args.decodeLen = int(a[++i], a[i - 1]); break;
      case '--requests': args.requests = int(a[++i], a[i - 1]); break;
      case '--warmup': args.warmup = int(a[++i], a[i - 1]); break;
      case '--check': args.check = a[++i]; if (!args.check) usage('--check needs a file'); break;
      case '--spin': args.spin = true; break;
      case '-h': case '--help': usage();
      default:
        if (a[i].startsWith('-') || args.model) usage(`unexpected argument ${a[i]}`);
        args.model = a[i];
    }
  }
  if (!args.model) usage('no model folder given');
  if (args.promptLen < 1 || args.decodeLen < 1 || args.requests < 1) usage('lengths and requests must be >= 1');
}

const gc = JSON.parse(readFileSync(path.join(args.model, 'genai_config.json'), 'utf8'));
const dec = gc.model.decoder;
const L = dec.num_hidden_layers, KVH = dec.num_key_value_heads, HD = dec.head_size;
const vocab = gc.model.vocab_size, bos = gc.model.bos_token_id ?? 1;
const threads = args.threads || os.availableParallelism();
const inNames = dec.inputs, outNames = dec.outputs;
const fmt = (pattern, l) => pattern.replace('%d', String(l));

const sessionOptions = {
  intraOpNumThreads: threads,
  interOpNumThreads: 1,
  executionMode: 'sequential',
  graphOptimizationLevel: 'all',
  logSeverityLevel: 3,
};
if (!args.spin) {
  sessionOptions.extra = { session: { intra_op: { allow_spinning: '0' },
                                      inter_op: { allow_spinning: '0' } } };
}
const tLoad0 = process.hrtime.bigint();
const session = await ort.InferenceSession.create(path.join(args.model, dec.filename || 'model.onnx'),
                                                  sessionOptions);
const loadS = Number(process.hrtime.bigint() - tLoad0) / 1e9;
const hasPos = session.inputNames.includes(inNames.position_ids || 'position_ids');

// bench_infer.c make_prompt(), shared with the other Node benches (bench/prompt.mjs)
const makePrompt = (len, req) => makePromptIds(len, req, bos, vocab);

function argmaxLast(logits) {
  const d = logits.data, V = logits.dims[2], off = (logits.dims[1] - 1) * V;
  let best = 0, bv = d[off];
  for (let i = 1; i < V; i++) if (d[off + i] > bv) { bv = d[off + i]; best = i; }
  return best;
}

const now = () => Number(process.hrtime.bigint()) / 1e9;

// Time this process's threads waited on a run queue (Linux schedstat field
// 2, summed over threads), in seconds: interference from other processes.
function runqWait() {
  let ns = 0;
  try {
    for (const t of readdirSync('/proc/self/task')) {
      try {
        ns += Number(readFileSync(`/proc/self/task/${t}/schedstat`, 'utf8').split(' ')[1]);
      } catch { /* thread exited */ }
    }
  } catch { return NaN; }
  return ns / 1e9;
}

// One request: prefill the prompt, then decode until `maxTokens` tokens.
async function generate(prompt, maxTokens) {
  const feeds = {};
  const empty = new Float32Array(0);
  for (let l = 0; l < L; l++) {
    feeds[fmt(inNames.past_key_names, l)] = new ort.Tensor('float32', empty, [1, KVH, 0, HD]);
    feeds[fmt(inNames.past_value_names, l)] = new ort.Tensor('float32', empty, [1, KVH, 0, HD]);
  }
  const tokens = [];
  let total = prompt.length, input = prompt, pos0 = 0;
  let prefillS = 0, decodeS = 0, runS = 0, wait0 = 0;
  const stepS = [];
  while (tokens.length < maxTokens) {
    const t0 = now();
    const n = input.length;
    feeds[inNames.input_ids] = new ort.Tensor('int64', BigInt64Array.from(input, BigInt), [1, n]);
    feeds[inNames.attention_mask] = new ort.Tensor('int64', new BigInt64Array(total).fill(1n), [1, total]);
    if (hasPos) {
      const pos = new BigInt64Array(n);
      for (let i = 0; i < n; i++) pos[i] = BigInt(pos0 + i);
      feeds[inNames.position_ids] = new ort.Tensor('int64', pos, [1, n]);
    }
    const tr = now();
    const out = await session.run(feeds);
    if (tokens.length > 0) runS += now() - tr;
    for (let l = 0; l < L; l++) {
      feeds[fmt(inNames.past_key_names, l)] = out[fmt(outNames.present_key_names, l)];
      feeds[fmt(inNames.past_value_names, l)] = out[fmt(outNames.present_value_names, l)];
    }
    const tok = argmaxLast(out[outNames.logits]);
    tokens.push(tok);
    const dt = now() - t0;
    if (tokens.length === 1) { prefillS += dt; wait0 = runqWait(); } else { decodeS += dt; stepS.push(dt); }
    pos0 += n;
    input = [tok];
    total += 1;
  }
  stepS.sort((a, b) => a - b);
  const h = stepS.length >> 1;
  const p50 = stepS.length % 2 ? stepS[h] : (stepS[h - 1] + stepS[h]) / 2;
  return { tokens, prefillS, decodeS, runS, p50, runqWaitS: runqWait() - wait0 };
}

let checkSpec = null;
if (args.check) {
  checkSpec = JSON.parse(readFileSync(args.check, 'utf8'));
  if (!Array.isArray(checkSpec.prompt) || !Array.isArray(checkSpec.tokens))
    usage(`${args.check}: expected {"prompt": [...], "tokens": [...]}`);
}

if (args.warmup > 0) await generate(makePrompt(args.promptLen, 0), args.warmup);

let sumRunS = 0, sumPrefillS = 0, sumDecodeS = 0, sumPrefillTok = 0, sumDecodeTok = 0, first = null;
let match = null, bestPrefill = 0, bestDecode = 0, bestP50 = 0, bestWaitFrac = NaN;
for (let r = 0; r < args.requests; r++) {
  const prompt = r === 0 && checkSpec ? checkSpec.prompt : makePrompt(args.promptLen, r);
  const res = await generate(prompt, args.decodeLen);
  sumPrefillS += res.prefillS;
  sumDecodeS += res.decodeS;
  sumRunS += res.runS;
  sumPrefillTok += prompt.length;
  sumDecodeTok += res.tokens.length - 1;
  bestPrefill = Math.max(bestPrefill, prompt.length / res.prefillS);
  if (!(bestDecode >= (res.tokens.length - 1) / res.decodeS)) bestWaitFrac = res.runqWaitS / res.decodeS;
  bestDecode = Math.max(bestDecode, (res.tokens.length - 1) / res.decodeS);
  if (res.p50 > 0) bestP50 = Math.max(bestP50, 1 / res.p50);
  if (r === 0) {
    first = { prefill_tok_s: prompt.length / res.prefillS,
              decode_tok_s: (res.tokens.length - 1) / res.decodeS };
    if (checkSpec) {
      const n = Math.min(checkSpec.tokens.length, res.tokens.length);
      match = n > 0 && checkSpec.tokens.slice(0, n).every((t, i) => t === res.tokens[i]);
      if (!match) {
        const at = checkSpec.tokens.findIndex((t, i) => t !== res.tokens[i]);
        process.stderr.write(`greedy tokens differ from cohort's at index ${at}: ` +
                             `cohort ${checkSpec.tokens[at]}, node ${res.tokens[at]}\n`);
      }
    }
  }
}
const summary = {
  bench: 'node_ref', model: path.basename(path.resolve(args.model)),
  ort_version: ort.env.versions.common, node: process.version, threads, spin: args.spin,
  prompt_len: args.promptLen, decode_len: args.decodeLen, requests: args.requests,
  load_s: loadS,
  first_prefill_tok_s: first.prefill_tok_s, first_decode_tok_s: first.decode_tok_s,
  best_prefill_tok_s: bestPrefill, best_decode_tok_s: bestDecode,
  // 1 / median decode-step time: bursts of interference filtered out
  best_decode_tok_s_p50: bestP50,
  // run-queue wait of the best request's decode, as a share of its wall time
  best_decode_runq_wait_frac: bestWaitFrac,
  aggregate_prefill_tok_s: sumPrefillTok / sumPrefillS,
  aggregate_decode_tok_s: sumDecodeTok / sumDecodeS,
  decode_s: sumDecodeS, decode_tokens: sumDecodeTok,
  // share of decode time spent outside session.run (feeds, argmax, JS)
  outside_run_frac: 1 - sumRunS / sumDecodeS,
  tokens_match_cohort: match,
};
process.stderr.write(`node reference (onnxruntime-node ${summary.ort_version}, ${threads} threads, ` +
                     `spinning ${args.spin ? 'on' : 'off'}): ${args.requests} request(s) one at a time, ` +
                     `prompt ${args.promptLen}, decode ${args.decodeLen}\n` +
                     `  request 0: prefill ${first.prefill_tok_s.toFixed(1)} tok/s, decode ` +
                     `${first.decode_tok_s.toFixed(1)} tok/s\n  best request: prefill ` +
                     `${bestPrefill.toFixed(1)} tok/s, decode ${bestDecode.toFixed(1)} tok/s ` +
                     `(p50 ${bestP50.toFixed(1)}; run-queue wait ${(100 * bestWaitFrac).toFixed(0)}%)` +
                     `\n  aggregate: prefill ` +
                     `${summary.aggregate_prefill_tok_s.toFixed(1)} tok/s, decode ` +
                     `${summary.aggregate_decode_tok_s.toFixed(1)} tok/s; ` +
                     `${(100 * summary.outside_run_frac).toFixed(2)}% of decode time outside session.run` +
                     (match === null ? '' : `\n  greedy tokens match cohort: ${match ? 'yes' : 'NO'}`) + '\n');
process.stdout.write(JSON.stringify(summary) + '\n');
