// serve_openai.mjs — drives `cohort serve` with the official OpenAI Node
// client (tests/serveref, pinned), unmodified: only baseURL and apiKey are
// set.  Called by tests/serve_openai.sh:
//   node serve_openai.mjs api BASE MODEL           models, chat, completions,
//                                                  stop, errors, n, logprobs
//   node serve_openai.mjs solo BASE MODEL OUT      the 64 seeded requests, one
//                                                  at a time, results to OUT
//   node serve_openai.mjs concurrent BASE MODEL IN ORDER_SEED
//                                                  the same 64 at once, in a
//                                                  shuffled arrival order; each
//                                                  must equal its solo result
//   node serve_openai.mjs disconnect BASE MODEL    abort a stream mid-way, and a
//                                                  non-streaming request: the
//                                                  server cancels both
//   node serve_openai.mjs queue BASE MODEL         --max-batch 1 --max-queue 1:
//                                                  the third request gets 429
//   node serve_openai.mjs auth BASE MODEL KEY      --api-key
// Prints "ok ..." per check, "FAIL: ..." per failure; exit 1 on any failure.
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, 'serveref', 'package.json'));
const OpenAI = require('openai');
const { BadRequestError, NotFoundError, RateLimitError, AuthenticationError, APIError } = OpenAI;

const [mode, BASE, MODEL, ARG, ARG2] = process.argv.slice(2);
let fails = 0;
const ok = (m) => console.log(`ok   ${m}`);
const bad = (m) => { console.log(`FAIL: ${m}`); fails++; };
const check = (c, m) => (c ? ok(m) : bad(m));
const client = (key = 'unused') =>
  new OpenAI({ baseURL: `${BASE}/v1`, apiKey: key, maxRetries: 0, timeout: 120000 });
const oa = client();

// A deadline-bounded poll of /metrics (never a fixed sleep).
async function metric(name) {
  const t = await (await fetch(`${BASE}/metrics`)).text();
  const m = t.match(new RegExp(`^${name} ([0-9.e+-]+)$`, 'm'));
  return m ? Number(m[1]) : NaN;
}
async function waitFor(what, cond, ms = 60000) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await cond()) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  bad(`timed out waiting for ${what}`);
  return false;
}

async function expectError(what, cls, status, fn, param) {
  try {
    await fn();
    bad(`${what}: no error`);
  } catch (e) {
    const good = e instanceof cls && e.status === status && (param === undefined || e.param === param);
    check(good, `${what}: ${cls.name} ${status}${param ? ` param=${param}` : ''}` +
      (good ? '' : ` (got ${e.constructor.name} ${e.status} param=${e.param}: ${e.message})`));
  }
}

// The 64 requests: different prompts, seeds, parameters; chat and completions,
// streamed and not.
const LINES = ['Who art thou?', 'Speak of the king.', 'What news from Rome?', 'O, my lord!',
  'Tell me of love.', 'Where is the duke?', 'Good morrow, sir.', 'Why dost thou weep?'];
function requestOf(i) {
  const chat = i % 4 !== 3;
  const common = { model: MODEL, seed: 1000 + i * 7919, max_tokens: 8 + (i % 5) * 6,
    temperature: 0.7 + (i % 3) * 0.2, top_p: i % 2 ? 0.9 : 1 };
  if (chat)
    return { kind: 'chat', stream: i % 2 === 0, body: { ...common,
      messages: [{ role: 'user', content: `${LINES[i % 8]} (${i})` }] } };
  return { kind: 'cmpl', stream: i % 8 === 3, body: { ...common, prompt: `${LINES[i % 8].toUpperCase()}\n` } };
}
async function run(req) {
  if (req.kind === 'chat') {
    if (!req.stream) {
      const r = await oa.chat.completions.create(req.body);
      return { text: r.choices[0].message.content, finish: r.choices[0].finish_reason };
    }
    const s = await oa.chat.completions.create({ ...req.body, stream: true });
    let text = '', finish = null;
    for await (const c of s) {
      if (c.choices[0]?.delta?.content) text += c.choices[0].delta.content;
      if (c.choices[0]?.finish_reason) finish = c.choices[0].finish_reason;
    }
    return { text, finish };
  }
  if (!req.stream) {
    const r = await oa.completions.create(req.body);
    return { text: r.choices[0].text, finish: r.choices[0].finish_reason };
  }
  const s = await oa.completions.create({ ...req.body, stream: true });
  let text = '', finish = null;
  for await (const c of s) {
    text += c.choices[0]?.text ?? '';
    if (c.choices[0]?.finish_reason) finish = c.choices[0].finish_reason;
  }
  return { text, finish };
}

// A small deterministic PRNG for the arrival order (mulberry32).
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

async function api() {
  // models
  const models = [];
  for await (const m of oa.models.list()) models.push(m.id);
  check(models.includes(MODEL), `models.list has ${MODEL} (${models.join(',')})`);
  const one = await oa.models.retrieve(MODEL);
  check(one.id === MODEL && one.object === 'model', 'models.retrieve');

  // chat, not streamed: shape, usage, fingerprint, seed header
  const body = { model: MODEL, messages: [{ role: 'system', content: 'You are a player.' },
    { role: 'user', content: 'Who art thou?' }], max_tokens: 24, seed: 42, temperature: 0.9 };
  const { data: r, response } = await oa.chat.completions.create(body).withResponse();
  check(r.object === 'chat.completion' && r.choices.length === 1 &&
    r.choices[0].message.role === 'assistant' && typeof r.choices[0].message.content === 'string' &&
    r.choices[0].message.content.length > 0, 'chat: an assistant message');
  check(['stop', 'length'].includes(r.choices[0].finish_reason), `chat: finish_reason ${r.choices[0].finish_reason}`);
  check(r.usage.completion_tokens > 0 && r.usage.prompt_tokens > 0 &&
    r.usage.total_tokens === r.usage.prompt_tokens + r.usage.completion_tokens, 'chat: usage adds up');
  check(/^fp_[0-9a-f]{12}_cohort-/.test(r.system_fingerprint), `chat: system_fingerprint ${r.system_fingerprint}`);
  check(response.headers.get('x-cohort-seed') === '42', 'chat: x-cohort-seed echoes the seed');
  const again = await oa.chat.completions.create(body);
  check(again.choices[0].message.content === r.choices[0].message.content, 'chat: same seed, same text');

  // chat, streamed: role first, same id on every chunk, usage chunk, same text
  const s = await oa.chat.completions.create({ ...body, stream: true, stream_options: { include_usage: true } });
  let text = '', ids = new Set(), first = null, usage = null, finish = null, n = 0;
  for await (const c of s) {
    n++;
    ids.add(c.id);
    if (first === null) first = c;
    if (c.choices.length) {
      text += c.choices[0].delta.content ?? '';
      if (c.choices[0].finish_reason) finish = c.choices[0].finish_reason;
    }
    if (c.usage) usage = c.usage;
  }
  check(first?.choices[0]?.delta?.role === 'assistant', 'stream: the first delta carries the role');
  check(ids.size === 1 && n > 2, `stream: one id on all ${n} chunks`);
  check(text === r.choices[0].message.content, 'stream: the deltas join to the non-streamed text');
  check(finish === r.choices[0].finish_reason, 'stream: same finish_reason');
  check(usage && usage.completion_tokens === r.usage.completion_tokens &&
    usage.prompt_tokens === r.usage.prompt_tokens, 'stream: include_usage adds the usage chunk');
  // the client's own stream helper accumulates the same message
  const runner = oa.chat.completions.stream({ ...body });
  const fin = await runner.finalChatCompletion();
  check(fin.choices[0].message.content === r.choices[0].message.content, 'stream helper: finalChatCompletion');

  // without a seed: a seed is drawn and returned; replaying it reproduces the text
  const { data: u, response: ur } = await oa.chat.completions.create({ ...body, seed: undefined }).withResponse();
  const drawn = ur.headers.get('x-cohort-seed');
  check(/^[0-9]+$/.test(drawn ?? ''), `no seed: x-cohort-seed ${drawn}`);
  const u2 = await oa.chat.completions.create({ ...body, seed: Number(drawn) > Number.MAX_SAFE_INTEGER ? undefined : Number(drawn) });
  if (Number(drawn) <= Number.MAX_SAFE_INTEGER)
    check(u2.choices[0].message.content === u.choices[0].message.content, 'no seed: the returned seed reproduces the text');

  // completions: a string prompt and token ids, streamed and not
  const c1 = await oa.completions.create({ model: MODEL, prompt: 'ROMEO:', max_tokens: 16, seed: 3, temperature: 0 });
  check(c1.object === 'text_completion' && c1.choices[0].text.length > 0, 'completions: text');
  let ct = '';
  for await (const c of await oa.completions.create({ model: MODEL, prompt: 'ROMEO:', max_tokens: 16, seed: 3, temperature: 0, stream: true }))
    ct += c.choices[0]?.text ?? '';
  check(ct === c1.choices[0].text, 'completions: streamed text equals the whole');
  const lp = await oa.completions.create({ model: MODEL, prompt: 'ROMEO:', max_tokens: 16, temperature: 0, logprobs: 3 });
  check(lp.choices[0].text === c1.choices[0].text && lp.choices[0].logprobs.tokens.join('') === c1.choices[0].text &&
    lp.choices[0].logprobs.token_logprobs.every((x) => x <= 0) &&
    lp.choices[0].logprobs.top_logprobs.every((t) => Object.keys(t).length >= 1), 'completions: logprobs (greedy tokens join to the text)');
  const idsPrompt = await oa.completions.create({ model: MODEL, prompt: [1, 2, 3, 4], max_tokens: 4, temperature: 0 });
  check(idsPrompt.usage.prompt_tokens === 4 && idsPrompt.usage.completion_tokens >= 1, 'completions: token-id prompt');
  const cl = await oa.chat.completions.create({ ...body, logprobs: true, top_logprobs: 2 });
  check(cl.choices[0].logprobs.content.length === cl.usage.completion_tokens &&
    cl.choices[0].logprobs.content.every((t) => t.top_logprobs.length === 2 && t.logprob <= 0), 'chat: logprobs with top_logprobs');

  // n: independent choices, each seeded
  const nr = await oa.chat.completions.create({ ...body, n: 3 });
  check(nr.choices.length === 3 && nr.choices.map((c) => c.index).join() === '0,1,2' &&
    nr.choices[0].message.content === r.choices[0].message.content, 'n=3: three choices, the first as n=1');

  // stop sequences: cut a greedy completion at a string from its middle
  const base = await oa.completions.create({ model: MODEL, prompt: 'KING:', max_tokens: 40, temperature: 0, ignore_eos: true });
  const t0 = base.choices[0].text;
  const stop = t0.slice(Math.floor(t0.length / 2), Math.floor(t0.length / 2) + 3);
  const cut = await oa.completions.create({ model: MODEL, prompt: 'KING:', max_tokens: 40, temperature: 0, ignore_eos: true, stop: [stop] });
  check(cut.choices[0].text === t0.slice(0, t0.indexOf(stop)) && cut.choices[0].finish_reason === 'stop',
    `stop ${JSON.stringify(stop)}: text ends before it, finish_reason stop`);
  let st = '';
  for await (const c of await oa.completions.create({ model: MODEL, prompt: 'KING:', max_tokens: 40, temperature: 0, ignore_eos: true, stop, stream: true }))
    st += c.choices[0]?.text ?? '';
  check(st === cut.choices[0].text, 'stop: streamed the same, the stop string never sent');

  // errors as the client's own classes, naming the field
  await expectError('unknown model', NotFoundError, 404, () => oa.chat.completions.create({ ...body, model: 'no-such-model' }), 'model');
  await expectError('temperature 5', BadRequestError, 400, () => oa.chat.completions.create({ ...body, temperature: 5 }), 'temperature');
  await expectError('messages not an array', BadRequestError, 400, () => oa.chat.completions.create({ ...body, messages: 'hi' }), 'messages');
  await expectError('message without role', BadRequestError, 400, () => oa.chat.completions.create({ ...body, messages: [{ content: 'x' }] }), 'messages[0].role');
  await expectError('max_tokens "ten"', BadRequestError, 400, () => oa.chat.completions.create({ ...body, max_tokens: 'ten' }), 'max_tokens');
  await expectError('max_tokens beyond the context', BadRequestError, 400, () => oa.chat.completions.create({ ...body, max_tokens: 1 << 20 }), 'max_tokens');
  await expectError('n = 0', BadRequestError, 400, () => oa.chat.completions.create({ ...body, n: 0 }), 'n');
  await expectError('unknown field', BadRequestError, 400, () => oa.chat.completions.create({ ...body, frobnicate: 1 }), 'frobnicate');
  await expectError('token id out of range', BadRequestError, 400, () => oa.completions.create({ model: MODEL, prompt: [1, 99999999] }), 'prompt[1]');
  await expectError('response_format bad type', BadRequestError, 400, () => oa.chat.completions.create({ ...body, response_format: { type: 'yaml' } }), 'response_format.type');

  // constrained decoding: json_schema through the engine's grammar
  const js = await oa.chat.completions.create({ ...body, max_tokens: 120, response_format: { type: 'json_schema',
    json_schema: { name: 'v', schema: { type: 'object', properties: { ok: { type: 'boolean' } }, required: ['ok'], additionalProperties: false } } } });
  let parsed = null;
  try { parsed = JSON.parse(js.choices[0].message.content); } catch { /* checked below */ }
  check(js.choices[0].finish_reason !== 'stop' || (parsed && typeof parsed.ok === 'boolean'), `response_format json_schema: ${js.choices[0].message.content}`);
  // a required tool call comes back as tool_calls
  const tc = await oa.chat.completions.create({ ...body, max_tokens: 120, tool_choice: 'required', tools: [{ type: 'function',
    function: { name: 'flip', parameters: { type: 'object', properties: { up: { type: 'boolean' } }, required: ['up'], additionalProperties: false } } }] });
  const call = tc.choices[0].message.tool_calls?.[0];
  check(tc.choices[0].finish_reason === 'length' || (call?.function?.name === 'flip' && typeof JSON.parse(call.function.arguments).up === 'boolean' &&
    tc.choices[0].finish_reason === 'tool_calls'), `tool_choice required: ${JSON.stringify(tc.choices[0].message)}`);

  // raw HTTP: malformed JSON, 413, unknown URL, error body shape
  const raw = await fetch(`${BASE}/v1/chat/completions`, { method: 'POST', body: '{"model":' });
  const rb = await raw.json();
  check(raw.status === 400 && typeof rb.error?.message === 'string' && rb.error.type === 'invalid_request_error' &&
    'param' in rb.error && 'code' in rb.error, `malformed JSON: 400 ${JSON.stringify(rb)}`);
  const big = await fetch(`${BASE}/v1/chat/completions`, { method: 'POST', body: 'x'.repeat(5 << 20) });
  check(big.status === 413 && (await big.json()).error?.code === 'request_too_large', 'oversized body: 413');
  // hostile bodies: every one gets a 4xx with an OpenAI error body naming
  // what is wrong, and the server keeps answering
  const M = JSON.stringify(MODEL);
  const hostile = [
    ['[]', null], ['"x"', null], ['{"model":' + M + '}', 'messages'], ['{"model":' + M + ',"messages":[]}', 'messages'],
    ['{"model":' + M + ',"messages":[1]}', 'messages[0]'], ['{"model":' + M + ',"messages":[{"role":"user","content":5}]}', 'messages[0].content'],
    ['{"model":' + M + ',"messages":[{"role":"user","content":[{"type":"image_url"}]}]}', 'messages[0].content[0]'],
    ['{"model":' + M + ',"messages":[{"role":"user","content":"x"}],"temperature":"hot"}', 'temperature'],
    ['{"model":' + M + ',"messages":[{"role":"user","content":"x"}],"temperature":1e400}', null],
    ['{"model":' + M + ',"messages":[{"role":"user","content":"x"}],"top_p":0}', 'top_p'],
    ['{"model":' + M + ',"messages":[{"role":"user","content":"x"}],"seed":1.5}', 'seed'],
    ['{"model":' + M + ',"messages":[{"role":"user","content":"x"}],"stop":[""]}', 'stop[0]'],
    ['{"model":' + M + ',"messages":[{"role":"user","content":"x"}],"stop":' + JSON.stringify(Array(17).fill('a')) + '}', 'stop'],
    ['{"model":' + M + ',"messages":[{"role":"user","content":"x"}],"stream":"yes"}', 'stream'],
    ['{"model":' + M + ',"messages":[{"role":"user","content":"x"}],"stream_options":{"include_usage":true}}', 'stream_options'],
    ['{"model":' + M + ',"messages":[{"role":"user","content":"x"}],"top_logprobs":3}', 'top_logprobs'],
    ['{"model":' + M + ',"messages":[{"role":"user","content":"x"}],"logit_bias":{"1":5}}', 'logit_bias'],
    ['{"model":' + M + ',"messages":[{"role":"user","content":"x"}],"presence_penalty":1}', 'presence_penalty'],
    ['{"model":' + M + ',"messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"bad name!"}}]}', null],
    ['{"model":' + M + ',"messages":[{"role":"user","content":"x"}],"model":"dup"}', null],
    ['{"model":' + M + ',"prompt":"x"}', 'prompt'],
    ['{"model":' + M + ',"messages":' + '['.repeat(3000) + ']'.repeat(3000) + '}', null],
    ['{"model":' + M + ',"messages":[{"role":"user","content":"x"}],"n":1000000000000}', 'n'],
    // an unknown key whose message is cut inside a UTF-8 character (was a 500)
    ['{"model":' + M + ',"messages":[{"role":"user","content":"x"}],"' + '\u00e9'.repeat(500) + '":1}', null],
  ];
  let hostileOk = 0;
  for (const [b, param] of hostile) {
    const hr = await fetch(`${BASE}/v1/chat/completions`, { method: 'POST', body: b });
    let he = null;
    try { he = (await hr.json()).error; } catch { /* checked below */ }
    const good = hr.status >= 400 && hr.status < 500 && typeof he?.message === 'string' && he.message.length > 0 &&
      (param === null || he.param === param);
    if (good) hostileOk++;
    else bad(`hostile body ${b.slice(0, 80)}: ${hr.status} ${JSON.stringify(he)}`);
  }
  check(hostileOk === hostile.length, `${hostileOk}/${hostile.length} hostile bodies refused with a 4xx naming the field`);
  // deep but allowed nesting (58 schema levels): the checks recurse per
  // level, which once overflowed a civetweb thread's small stack
  const deep = (d) => '{"type":"array","items":'.repeat(d) + '{}' + '}'.repeat(d);
  const dr = await fetch(`${BASE}/v1/chat/completions`, { method: 'POST', body: '{"model":' + M +
    ',"max_tokens":4,"messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_schema","json_schema":{"name":"d","schema":' +
    deep(58) + '}}}' });
  check(dr.status === 200 && (await fetch(`${BASE}/health`)).status === 200, `a schema 58 levels deep: ${dr.status}, the server lives`);
  const nf = await fetch(`${BASE}/v1/nothing`);
  check(nf.status === 404 && (await nf.json()).error?.code === 'unknown_url', 'unknown URL: 404');
}

async function solo(out) {
  const res = [];
  for (let i = 0; i < 64; i++) res.push(await run(requestOf(i)));
  fs.writeFileSync(out, JSON.stringify(res));
  check(res.every((r) => r.text.length > 0), '64 solo requests answered');
  check(new Set(res.map((r) => r.text)).size > 48, 'the solo answers differ from each other');
}

async function concurrent(inp, orderSeed) {
  const want = JSON.parse(fs.readFileSync(inp, 'utf8'));
  const rand = rng(Number(orderSeed));
  const order = [...Array(64).keys()];
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  const got = new Array(64);
  const pending = [];
  for (const i of order) {
    pending.push(run(requestOf(i)).then((r) => { got[i] = r; }));
    if (rand() < 0.3) await new Promise((r) => setImmediate(r)); // arrivals spread over ticks
  }
  await Promise.all(pending);
  const diff = [...Array(64).keys()].filter((i) => got[i].text !== want[i].text || got[i].finish !== want[i].finish);
  check(diff.length === 0, `64 concurrent clients (order seed ${orderSeed}): every response equals its solo run` +
    (diff.length ? ` (differ: ${diff.join(',')}; e.g. ${JSON.stringify(got[diff[0]])} vs ${JSON.stringify(want[diff[0]])})` : ''));
}

async function disconnect() {
  const before = await metric('cohort_serve_requests_cancelled_total');
  const ac = new AbortController();
  const s = await oa.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'Speak long.' }],
    max_tokens: 1900, ignore_eos: true, seed: 5, stream: true }, { signal: ac.signal });
  let n = 0;
  try {
    for await (const c of s) { if (++n === 4) ac.abort(); }
  } catch (e) { /* the abort */ }
  check(n >= 4, `disconnect: read ${n} chunks, then aborted`);
  if (await waitFor('the cancelled counter', async () => (await metric('cohort_serve_requests_cancelled_total')) === before + 1))
    ok('disconnect: the server cancelled the request');
  if (await waitFor('the slot to be freed', async () => (await metric('cohort_serve_batch_active')) === 0 &&
      (await metric('cohort_serve_requests_open')) === 0))
    ok('disconnect: its batch slot is free and nothing is open');
  const after = await oa.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'Hi' }], max_tokens: 4, seed: 1 });
  check(after.choices[0].message.content.length > 0, 'disconnect: the server still answers');

  // A non-streaming client that leaves while its request generates: the
  // server notices the closed socket and cancels it (before, it ran to the
  // end: 1900 tokens here, so a request that completes fails the check).
  const before2 = await metric('cohort_serve_requests_cancelled_total');
  const ac2 = new AbortController();
  const pending = oa.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'Speak long.' }],
    max_tokens: 1900, ignore_eos: true, seed: 6 }, { signal: ac2.signal }).then(() => 'answered', () => 'aborted');
  if (await waitFor('the non-streaming request to hold a slot', async () => (await metric('cohort_serve_batch_active')) === 1))
    ac2.abort();
  check((await pending) === 'aborted', 'disconnect, not streaming: the client aborted while its request ran');
  if (await waitFor('the cancelled counter (not streaming)',
      async () => (await metric('cohort_serve_requests_cancelled_total')) === before2 + 1))
    ok('disconnect, not streaming: the server cancelled the request');
  if (await waitFor('the slot to be freed (not streaming)', async () => (await metric('cohort_serve_batch_active')) === 0 &&
      (await metric('cohort_serve_requests_open')) === 0))
    ok('disconnect, not streaming: its batch slot is free and nothing is open');
  const again = await oa.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'Hi' }], max_tokens: 4, seed: 1 });
  check(again.choices[0].message.content === after.choices[0].message.content,
    'disconnect, not streaming: the server still answers (the same text as before)');
}

async function queue() {
  const long = { model: MODEL, messages: [{ role: 'user', content: 'Speak long.' }], max_tokens: 1900, ignore_eos: true, seed: 9, stream: true };
  const a1 = new AbortController(), a2 = new AbortController();
  const drain = async (p) => { try { for await (const _ of await p) { /* consume */ } } catch { /* aborted */ } };
  const d1 = drain(oa.chat.completions.create(long, { signal: a1.signal }));
  await waitFor('the first request to hold the slot', async () => (await metric('cohort_serve_batch_active')) === 1);
  const d2 = drain(oa.chat.completions.create(long, { signal: a2.signal }));
  await waitFor('the second request to wait', async () => (await metric('cohort_serve_queue_waiting')) === 1);
  await expectError('queue full', RateLimitError, 429, () => oa.chat.completions.create({ ...long, stream: false, max_tokens: 4 }));
  // answered without waiting for a slot: both earlier requests still hold theirs
  check((await metric('cohort_serve_requests_open')) === 2 && (await metric('cohort_serve_queue_waiting')) === 1,
    '429 answered while the slot and the queue were still full (not queued)');
  a1.abort();
  a2.abort();
  await Promise.all([d1, d2]);
  await waitFor('both to be cancelled', async () => (await metric('cohort_serve_requests_open')) === 0);
}

async function auth(key) {
  await expectError('no API key', AuthenticationError, 401, () => oa.models.list());
  await expectError('wrong API key', AuthenticationError, 401, () => client(key + 'x').models.list());
  const good = client(key);
  const list = [];
  for await (const m of good.models.list()) list.push(m.id);
  check(list.includes(MODEL), 'right API key: models listed');
  const h = await fetch(`${BASE}/health`);
  check(h.status === 200, '/health needs no key');
}

try {
  if (mode === 'api') await api();
  else if (mode === 'solo') await solo(ARG);
  else if (mode === 'concurrent') await concurrent(ARG, ARG2);
  else if (mode === 'disconnect') await disconnect();
  else if (mode === 'queue') await queue();
  else if (mode === 'auth') await auth(ARG);
  else bad(`unknown mode ${mode}`);
} catch (e) {
  bad(`${mode}: ${e?.constructor?.name}: ${e?.message}\n${e?.stack}`);
}
process.exit(fails ? 1 : 0);
