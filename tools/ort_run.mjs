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

const req = JSON.parse(readFileSync(reqPath, 'utf8'));
const opts = Object.assign({ intraOpNumThreads: 1, interOpNumThreads: 1, logSeverityLevel: 3 },
                           req.options || {});
const session = await ort.InferenceSession.create(req.model, opts);
const out = { ort_version: ort.env.versions.common, runs: [], run_ms: [] };
for (const feedsSpec of req.runs) {
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
