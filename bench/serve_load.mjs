// serve_load.mjs — a load generator for `cohort serve` (issue #13's
// benchmark): C concurrent clients, each sending K streaming completion
// requests one after another (token-id prompts of bench_infer's formula,
// greedy, ignore_eos, D tokens each).  Measures time to first token per
// request (from sending to the first SSE chunk with text), aggregate output
// tokens/s (all tokens over the wall time of the whole run), and, from
// /metrics before and after, the server's time outside ONNX Runtime's Run.
//
//   node serve_load.mjs BASE MODEL_ID MODEL_DIR --clients C [--per-client K]
//        [--prompt-len P] [--decode-len D]
// Output: one JSON line on stdout.  Uses only Node's fetch (no packages).
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { makePrompt as makePromptIds } from './prompt.mjs';

const [BASE, MODEL, DIR, ...rest] = process.argv.slice(2);
const opt = { clients: 1, perClient: 4, promptLen: 64, decodeLen: 64 };
for (let i = 0; i < rest.length; i += 2) {
  const v = Number(rest[i + 1]);
  if (!Number.isInteger(v) || v < 1) throw new Error(`${rest[i]} needs a positive integer`);
  if (rest[i] === '--clients') opt.clients = v;
  else if (rest[i] === '--per-client') opt.perClient = v;
  else if (rest[i] === '--prompt-len') opt.promptLen = v;
  else if (rest[i] === '--decode-len') opt.decodeLen = v;
  else throw new Error(`unknown flag ${rest[i]}`);
}
const gc = JSON.parse(readFileSync(path.join(DIR, 'genai_config.json'), 'utf8'));
const vocab = gc.model.vocab_size, bos = gc.model.bos_token_id ?? 1;

// bench_infer.c make_prompt(), shared with the other Node benches (bench/prompt.mjs)
const makePrompt = (len, req) => makePromptIds(len, req, bos, vocab);

async function metrics() {
  const t = await (await fetch(`${BASE}/metrics`)).text();
  const get = (n) => Number((t.match(new RegExp(`^${n} ([0-9.e+-]+)$`, 'm')) || [])[1]);
  return { ort: get('cohort_serve_ort_seconds_total'), engine: get('cohort_serve_engine_seconds_total') };
}

const now = () => Number(process.hrtime.bigint()) / 1e9;

async function one(req) {
  const t0 = now();
  const r = await fetch(`${BASE}/v1/completions`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ model: MODEL, prompt: makePrompt(opt.promptLen, req), max_tokens: opt.decodeLen,
      temperature: 0, ignore_eos: true, stream: true, stream_options: { include_usage: true } }),
  });
  if (r.status !== 200) throw new Error(`status ${r.status}: ${await r.text()}`);
  let ttft = null, tokens = 0, buf = '';
  const dec = new TextDecoder();
  for await (const part of r.body) {
    buf += dec.decode(part, { stream: true });
    let k;
    while ((k = buf.indexOf('\n\n')) >= 0) {
      const ev = buf.slice(0, k);
      buf = buf.slice(k + 2);
      if (!ev.startsWith('data: ') || ev === 'data: [DONE]') continue;
      const o = JSON.parse(ev.slice(6));
      if (ttft === null && o.choices?.[0]?.text) ttft = now() - t0;
      if (o.usage) tokens = o.usage.completion_tokens;
    }
  }
  return { ttft, tokens };
}

const before = await metrics();
const t0 = now();
const results = [];
await Promise.all([...Array(opt.clients).keys()].map(async (c) => {
  for (let k = 0; k < opt.perClient; k++) results.push(await one(c * opt.perClient + k));
}));
const wall = now() - t0;
const after = await metrics();
const ttfts = results.map((r) => r.ttft).filter((x) => x !== null).sort((a, b) => a - b);
const q = (p) => ttfts[Math.min(ttfts.length - 1, Math.floor(p * ttfts.length))];
const tokens = results.reduce((a, r) => a + r.tokens, 0);
const engine = after.engine - before.engine, ort = after.ort - before.ort;
console.log(JSON.stringify({
  bench: 'serve_load', model: MODEL, clients: opt.clients, requests: results.length,
  prompt_len: opt.promptLen, decode_len: opt.decodeLen, tokens, wall_s: wall,
  aggregate_tok_s: tokens / wall, ttft_p50_s: q(0.5), ttft_p99_s: q(0.99),
  // the serve loop's share of wall time outside ORT Run while it ran steps,
  // and the engine's own share outside Run
  outside_ort_frac_of_wall: 1 - ort / wall, outside_ort_frac_of_engine: 1 - ort / engine,
}));
