// ort_run.mjs - run an ONNX model with ONNX Runtime (npm onnxruntime-node) on
// inputs given as JSON, and write every output as JSON.  Used by
// tools/mkfixture.py --check and by the benchmarks as a reference stack.
//
//   node tools/ort_run.mjs REQUEST.json RESPONSE.json
//
// REQUEST  {"model": "path/model.onnx",
//           "options": {"intraOpNumThreads": 1, ...}            (optional)
//           "runs": [ {INPUT_NAME: {"type": "float32"|"float16"|"int64"|"int32",
//                                   "dims": [..], "b64": raw little-endian bytes}} ]}
// RESPONSE {"ort_version": "1.29.0", "runs": [ {OUTPUT_NAME: {"type", "dims", "b64"}} ],
//           "run_ms": [ms per run]}
//
// Instead of "runs", a request may ask for greedy generation with the KV cache
// (batch 1), reading the model shape from config.json beside the model and the
// cache mode from genai_config.json (search.past_present_share_buffer):
// REQUEST  {"model": ..., "generate": {"input_ids": [1, ...], "max_new_tokens": N}}
// RESPONSE {"ort_version", "tokens": [N ids], "prefill_ms", "step_ms": [N-1 values]}
//
// Or greedy generation by full recompute (no KV cache: every step runs the
// whole sequence on empty past tensors), the reference for cohort's chunked
// prefill and KV cache (tools/longref.py):
// REQUEST  {"model": ..., "recompute": {"input_ids": [...], "max_new_tokens": N,
//           "past": {"type": "float32"|"float16", "kv_heads": K, "head_dim": D}}}
// RESPONSE {"ort_version", "tokens": [N ids],
//           "logits": [N x {"type": "float32", "dims": [V], "b64"}]  (last row per step)}
//
// Or the negative log-likelihood of a token sequence (the held-out text), in
// non-overlapping windows of `seq` tokens run `batch` at a time on empty past
// tensors, each window predicting its next tokens, plus the tail that does
// not fill a window scored with the full window before it as context (the
// windowing of tools/train/train.py's evaluate):
// REQUEST  {"model": ..., "nll": {"ids": [...], "seq": 256, "batch": 16,
//           "past": {"type", "kv_heads", "head_dim", "layers"}}}
// RESPONSE {"ort_version", "nll_sum": nats, "count": scored tokens,
//           "argmax": [the top-1 id at every scored position, in text order]}
//
// onnxruntime-node is found in $COH_ORT_NODE_DIR (its package folder), else
// /tmp/ortnode/node_modules/onnxruntime-node.  Install it outside the repo:
//   mkdir -p /tmp/ortnode && cd /tmp/ortnode &&
//   npm install --ignore-scripts onnxruntime-node@1.29.0
import { createRequire } from 'node:module';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

const [reqPath, respPath] = process.argv.slice(2);
if (!reqPath || !respPath) {
  process.stderr.write('usage: node ort_run.mjs REQUEST.json RESPONSE.json\n');
  process.exit(2);
}
const ortDir = process.env.COH_ORT_NODE_DIR || '/tmp/ortnode/node_modules/onnxruntime-node';
const require = createRequire(path.join(path.dirname(ortDir), 'x.js'));
let ort;
try {
  ort = require(ortDir);
} catch (e) {
  process.stderr.write(`ort_run: cannot load onnxruntime-node from ${ortDir}: ${e.message}\n`);
  process.exit(1);
}

const ARRAYS = {
  float32: Float32Array, float16: Uint16Array, int64: BigInt64Array, int32: Int32Array,
};

function toTensor(spec, name) {
  const Ctor = ARRAYS[spec.type];
  if (!Ctor) throw new Error(`input ${name}: unsupported type ${spec.type}`);
  const buf = Buffer.from(spec.b64, 'base64');
  // copy into an aligned ArrayBuffer (Buffer pool slices may be unaligned)
  const ab = new ArrayBuffer(buf.length);
  new Uint8Array(ab).set(buf);
  const data = new Ctor(ab);
  const n = spec.dims.reduce((a, b) => a * b, 1);
  if (data.length !== n) throw new Error(`input ${name}: ${data.length} values for dims ${spec.dims}`);
  return new ort.Tensor(spec.type, data, spec.dims);
}

function fromTensor(t) {
  const d = t.data;
  return {
    type: t.type,
    dims: Array.from(t.dims),
    b64: Buffer.from(d.buffer, d.byteOffset, d.byteLength).toString('base64'),
  };
}

function halfToFloat(h) {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

function argmaxLast(t) {
  const V = t.dims[t.dims.length - 1];
  const base = t.data.length - V;
  const get = t.type === 'float16' ? (i) => halfToFloat(t.data[base + i]) : (i) => t.data[base + i];
  let best = 0;
  let bv = get(0);
  for (let i = 1; i < V; i++) {
    const v = get(i);
    if (v > bv) { bv = v; best = i; }
  }
  return best;
}

async function generate(session, modelPath, g) {
  const dir = path.dirname(modelPath);
  const cfg = JSON.parse(readFileSync(path.join(dir, 'config.json'), 'utf8'));
  let shared = false;
  let gcNote = null;
  let maxLen = cfg.max_position_embeddings;
  try {
    const gc = JSON.parse(readFileSync(path.join(dir, 'genai_config.json'), 'utf8'));
    shared = !!(gc.search && gc.search.past_present_share_buffer);
    gcNote = gc.cohort_fixture || null;
    if (gc.search && gc.search.max_length) maxLen = gc.search.max_length;
  } catch (e) { /* optimum layout: no genai_config.json */ }
  const L = cfg.num_hidden_layers;
  const KV = cfg.num_key_value_heads;
  const D = cfg.hidden_size / cfg.num_attention_heads;
  // the KV cache has the graph's dtype: genai_config.json's cohort_fixture
  // note gives it where the weights are stored in another (fp16 weights under
  // an fp32 graph); else config.json's torch_dtype
  let graphDtype = cfg.torch_dtype === 'float16' ? 'fp16' : 'fp32';
  if (gcNote && (gcNote.dtype === 'fp16' || gcNote.dtype === 'fp32')) graphDtype = gcNote.dtype;
  const type = graphDtype === 'fp16' ? 'float16' : 'float32';
  const P0 = shared ? maxLen : 0;
  let past = {};
  for (let l = 0; l < L; l++) {
    for (const k of ['key', 'value']) {
      past[`past_key_values.${l}.${k}`] = new ort.Tensor(type, new ARRAYS[type](KV * P0 * D), [1, KV, P0, D]);
    }
  }
  const seq = g.input_ids.slice();
  const tokens = [];
  const stepMs = [];
  let prefillMs = 0;
  for (let step = 0; step < g.max_new_tokens; step++) {
    const T = seq.length;
    const S = step === 0 ? T : 1;
    const ids = BigInt64Array.from(seq.slice(T - S).map(BigInt));
    const pos = BigInt64Array.from(Array.from({ length: S }, (_, i) => BigInt(T - S + i)));
    const feeds = Object.assign({
      input_ids: new ort.Tensor('int64', ids, [1, S]),
      attention_mask: new ort.Tensor('int64', new BigInt64Array(T).fill(1n), [1, T]),
      position_ids: new ort.Tensor('int64', pos, [1, S]),
    }, past);
    const t0 = process.hrtime.bigint();
    const res = await session.run(feeds);
    const next = argmaxLast(res.logits);
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    if (step === 0) prefillMs = ms; else stepMs.push(ms);
    past = {};
    for (const name of session.outputNames) {
      if (name.startsWith('present.')) past[name.replace('present.', 'past_key_values.')] = res[name];
    }
    tokens.push(next);
    seq.push(next);
  }
  return { tokens, prefill_ms: prefillMs, step_ms: stepMs };
}

async function recompute(session, r) {
  const seq = r.input_ids.slice();
  const tokens = [];
  const logits = [];
  const pastSpec = r.past;
  const Ctor = ARRAYS[pastSpec.type];
  if (!Ctor) throw new Error(`recompute: unsupported past type ${pastSpec.type}`);
  for (let step = 0; step < r.max_new_tokens; step++) {
    const T = seq.length;
    const feeds = {
      input_ids: new ort.Tensor('int64', BigInt64Array.from(seq.map(BigInt)), [1, T]),
      attention_mask: new ort.Tensor('int64', new BigInt64Array(T).fill(1n), [1, T]),
    };
    if (session.inputNames.includes('position_ids')) {
      feeds.position_ids = new ort.Tensor('int64', BigInt64Array.from(seq.map((_, i) => BigInt(i))), [1, T]);
    }
    for (const name of session.inputNames) {
      if (name.startsWith('past_key_values.')) {
        feeds[name] = new ort.Tensor(pastSpec.type, new Ctor(0), [1, pastSpec.kv_heads, 0, pastSpec.head_dim]);
      }
    }
    const res = await session.run(feeds);
    const t = res.logits;
    const V = t.dims[t.dims.length - 1];
    const row = new Float32Array(V);
    const base = t.data.length - V;
    for (let i = 0; i < V; i++) row[i] = t.type === 'float16' ? halfToFloat(t.data[base + i]) : t.data[base + i];
    let best = 0;
    for (let i = 1; i < V; i++) if (row[i] > row[best]) best = i;
    tokens.push(best);
    logits.push({ type: 'float32', dims: [V], b64: Buffer.from(row.buffer).toString('base64') });
    seq.push(best);
  }
  return { tokens, logits };
}

// log-sum-exp NLL and argmax of the rows [from, V*rows) of a logits tensor
function scoreRows(t, row0, nRows, targets, acc) {
  const V = t.dims[t.dims.length - 1];
  const get = t.type === 'float16' ? (i) => halfToFloat(t.data[i]) : (i) => t.data[i];
  for (let r = 0; r < nRows; r++) {
    const base = (row0 + r) * V;
    let mx = -Infinity;
    let best = 0;
    for (let i = 0; i < V; i++) {
      const v = get(base + i);
      if (v > mx) { mx = v; best = i; }
    }
    let s = 0;
    for (let i = 0; i < V; i++) s += Math.exp(get(base + i) - mx);
    acc.nll += Math.log(s) + mx - get(base + targets[r]);
    acc.count++;
    acc.argmax.push(best);
  }
}

async function nll(session, r) {
  const ids = r.ids;
  const seq = r.seq;
  const batch = r.batch || 1;
  if (!(seq > 0) || ids.length < seq + 1) throw new Error('nll: need seq > 0 and more than seq ids');
  const Ctor = ARRAYS[r.past.type];
  const acc = { nll: 0, count: 0, argmax: [] };
  const run = async (wins) => {
    const B = wins.length;
    const flat = [];
    for (const w of wins) for (let i = 0; i < seq; i++) flat.push(BigInt(ids[w + i]));
    const feeds = {
      input_ids: new ort.Tensor('int64', BigInt64Array.from(flat), [B, seq]),
      attention_mask: new ort.Tensor('int64', new BigInt64Array(B * seq).fill(1n), [B, seq]),
      position_ids: new ort.Tensor('int64', BigInt64Array.from(
        Array.from({ length: B * seq }, (_, i) => BigInt(i % seq))), [B, seq]),
    };
    for (const name of session.inputNames) {
      if (name.startsWith('past_key_values.')) {
        feeds[name] = new ort.Tensor(r.past.type, new Ctor(0), [B, r.past.kv_heads, 0, r.past.head_dim]);
      }
    }
    return (await session.run(feeds)).logits;
  };
  const n = Math.floor((ids.length - 1) / seq);
  for (let i = 0; i < n; i += batch) {
    const wins = [];
    for (let j = i; j < Math.min(n, i + batch); j++) wins.push(j * seq);
    const t = await run(wins);
    for (let k = 0; k < wins.length; k++) {
      scoreRows(t, k * seq, seq, ids.slice(wins[k] + 1, wins[k] + 1 + seq), acc);
    }
  }
  const rest = ids.length - 1 - n * seq;
  if (rest > 0) {
    const w = ids.length - 1 - seq;
    const t = await run([w]);
    scoreRows(t, seq - rest, rest, ids.slice(ids.length - rest), acc);
  }
  return { nll_sum: acc.nll, count: acc.count, argmax: acc.argmax };
}

const req = JSON.parse(readFileSync(reqPath, 'utf8'));
const opts = Object.assign({ intraOpNumThreads: 1, interOpNumThreads: 1, logSeverityLevel: 3 },
                           req.options || {});
const session = await ort.InferenceSession.create(req.model, opts);
const out = { ort_version: ort.env.versions.common, runs: [], run_ms: [] };
if (req.generate) Object.assign(out, await generate(session, req.model, req.generate));
if (req.recompute) Object.assign(out, await recompute(session, req.recompute));
if (req.nll) Object.assign(out, await nll(session, req.nll));
for (const feedsSpec of req.runs || []) {
  const feeds = {};
  for (const [name, spec] of Object.entries(feedsSpec)) feeds[name] = toTensor(spec, name);
  const t0 = process.hrtime.bigint();
  const res = await session.run(feeds);
  out.run_ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
  const r = {};
  for (const name of session.outputNames) r[name] = fromTensor(res[name]);
  out.runs.push(r);
}
writeFileSync(respPath, JSON.stringify(out));
