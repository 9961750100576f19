// cohort monitor dashboard: vanilla JS + SVG, no build step.
// Snapshots arrive over the WebSocket (/ws); history for the charts and the
// transcript is kept here, in the page, since a snapshot holds only the
// latest values (and the latest 200 transcript lines / 300 ticks).
'use strict';

const STAGES = [
  ['queued', 'queued'],
  ['agent_step', 'agent step'],
  ['inference', 'inference'],
  ['delivered', 'delivered'],
];
const HISTORY = 300;        // points kept per latency / throughput series
const TRANSCRIPT_KEEP = 5000;
const TICKS_KEEP = 300;

const token = new URLSearchParams(location.search).get('token');
const withToken = (path) => token ? `${path}?token=${encodeURIComponent(token)}` : path;

const state = {
  snap: null,
  ticks: new Map(),              // tick -> {tick, wall_ms, events, steps}
  stageHist: Object.fromEntries(STAGES.map(([k]) => [k, []])),  // [{p50,p95,p99,jitter}]
  lastStageCount: {},
  modelHist: new Map(),          // name -> [tokens/s]
  transcript: [],                // [{tick, agent, text}] accumulated
  transcriptVersion: 0,
  transcriptRendered: '',
  agentsSeen: new Set(),
  selectedAgent: '',
  agentFilter: '',
  renderQueued: false,
  lastTickSeen: -1,
};

const $ = (id) => document.getElementById(id);
const fmt = new Intl.NumberFormat('en-US');
const fmtNum = (v) => (v === null || v === undefined) ? '—' : fmt.format(v);
const fmtMs = (v) => v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2);

// ---- connection -------------------------------------------------------------

let ws = null;
let backoff = 500;

function setConn(s, text) {
  $('conn').dataset.state = s;
  $('conn-text').textContent = text;
}

function connect() {
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  setConn('connecting', 'connecting…');
  try {
    // ack=1: the server sends the next snapshot only when this page says it
    // has handled the previous one, so a busy page is never behind a queue
    // of stale snapshots (see docs/monitor.md, flow control)
    const path = withToken('/ws');
    ws = new WebSocket(`${proto}//${location.host}${path}${path.includes('?') ? '&' : '?'}ack=1`);
  } catch (e) {
    scheduleReconnect();
    return;
  }
  ws.onopen = () => { backoff = 500; setConn('open', 'live'); };
  ws.onmessage = (ev) => {
    let msg = null;
    try { msg = JSON.parse(ev.data); } catch (e) { /* acked all the same */ }
    if (msg && msg.error) { toast(msg.error); return; } // replies to controls: no ack
    try {
      if (msg && msg.version === 1) onSnapshot(msg);
    } finally {
      ackSnapshot(ev.target); // every other frame is a snapshot
    }
  };
  ws.onclose = () => { ws = null; scheduleReconnect(); };
  ws.onerror = () => { /* onclose follows */ };
}

function ackSnapshot(sock) {
  if (sock.readyState === WebSocket.OPEN) sock.send('{"ack": true}');
}

function scheduleReconnect() {
  const wait = backoff;
  backoff = Math.min(backoff * 2, 5000);
  setConn('closed', `disconnected — retrying in ${(wait / 1000).toFixed(1)} s`);
  setTimeout(connect, wait);
}

// The first paint does not wait for the socket.
async function fetchSnapshot() {
  try {
    const r = await fetch(withToken('api/snapshot'), { cache: 'no-store' });
    if (r.ok) onSnapshot(await r.json());
  } catch (e) { /* the socket will bring it */ }
}

async function sendControl(control) {
  const body = JSON.stringify({ control });
  if (ws && ws.readyState === WebSocket.OPEN) {
    ws.send(body);
  } else {
    try {
      const r = await fetch(withToken('api/control'), {
        method: 'POST', headers: { 'Content-Type': 'application/json' }, body,
      });
      if (!r.ok) { toast(`control ${control}: HTTP ${r.status}`); return; }
    } catch (e) { toast(`control ${control}: not connected`); return; }
  }
  toast(`sent: ${control}`);
}

let toastTimer = null;
function toast(text) {
  const t = $('toast');
  t.textContent = text;
  t.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { t.hidden = true; }, 2500);
}

// ---- snapshot intake (history is kept here) ---------------------------------

function onSnapshot(s) {
  const prev = state.snap;
  const restarted = prev && s.run.tick < prev.run.tick;
  if (restarted) {  // a new run on the same port: start the history over
    state.ticks.clear();
    state.transcript = [];
    for (const k of Object.keys(state.stageHist)) state.stageHist[k] = [];
    state.modelHist.clear();
  }
  state.snap = s;
  for (const t of s.ticks) state.ticks.set(t.tick, t);
  if (state.ticks.size > TICKS_KEEP) {
    const keys = [...state.ticks.keys()].sort((a, b) => a - b);
    for (const k of keys.slice(0, keys.length - TICKS_KEEP)) state.ticks.delete(k);
  }
  // one history point per snapshot that brought new samples
  for (const [k] of STAGES) {
    const h = s.stages[k];
    if (h && h.count > 0 && h.count !== state.lastStageCount[k]) {
      const arr = state.stageHist[k];
      arr.push({ p50: h.p50_ms, p95: h.p95_ms, p99: h.p99_ms, jitter: h.jitter_ms });
      if (arr.length > HISTORY) arr.shift();
    }
    state.lastStageCount[k] = h ? h.count : 0;
  }
  if (s.run.tick !== state.lastTickSeen) {
    for (const m of s.models) {
      const arr = state.modelHist.get(m.name) || [];
      arr.push(m.tokens_per_second);
      if (arr.length > HISTORY) arr.shift();
      state.modelHist.set(m.name, arr);
    }
    state.lastTickSeen = s.run.tick;
  }
  mergeTranscript(s.transcript);
  if (!state.renderQueued) {
    state.renderQueued = true;
    requestAnimationFrame(() => { state.renderQueued = false; render(); });
  }
}

// The snapshot's transcript is the tail of the run's transcript: find where
// it overlaps what we hold and append the rest.
function mergeTranscript(lines) {
  const key = (l) => `${l.tick}\u0000${l.agent}\u0000${l.text}`;
  const have = state.transcript;
  if (lines.length === 0) return;
  let k = Math.min(have.length, lines.length);
  for (; k > 0; k--) {
    let ok = true;
    for (let i = 0; i < k && ok; i++)
      ok = key(have[have.length - k + i]) === key(lines[i]);
    if (ok) break;
  }
  if (k === 0 && have.length > 0) {
    const last = have[have.length - 1];
    // no overlap: lines were missed while we were behind (or reconnecting)
    if (lines[0].tick >= last.tick) have.push({ gap: true });
  }
  for (const l of lines.slice(k)) have.push(l);
  if (k < lines.length) state.transcriptVersion++;
  if (have.length > TRANSCRIPT_KEEP) have.splice(0, have.length - TRANSCRIPT_KEEP);
}

// ---- rendering ----------------------------------------------------------------

function render() {
  const s = state.snap;
  if (!s) return;
  const run = s.run;
  const recorded = run.mode === 'journal';
  $('scenario').textContent = run.scenario.split('/').pop();
  $('scenario').title = run.scenario;
  $('mode').textContent = recorded ? 'recorded run' : run.mode;
  const rs = $('runstate');
  rs.textContent = run.finished ? `finished${run.stop_reason ? ': ' + run.stop_reason : ''}`
                   : run.paused ? 'paused' : 'running';
  rs.className = 'badge ' + (run.finished ? 'finished' : run.paused ? 'paused' : 'live');
  $('tick').textContent = fmtNum(run.tick);
  for (const k of Object.keys(s.counters)) {
    const el = $('c-' + k);
    if (el) el.textContent = fmtNum(s.counters[k]);
  }
  $('c-wall').textContent = `${run.wall_seconds.toFixed(1)} s`;
  $('digest').textContent = run.digest || '—';
  $('digest').title = run.digest;
  for (const b of document.querySelectorAll('.controls button')) {
    const c = b.dataset.control;
    b.disabled = run.finished || recorded ||
      (c === 'pause' && run.paused) || (c === 'resume' && !run.paused) ||
      (c === 'step' && !run.paused);
  }
  renderTicks();
  renderStages(recorded);
  renderModels(s.models);
  renderAgents(s.agents);
  renderTranscript();
}

const SVGNS = 'http://www.w3.org/2000/svg';
function el(tag, attrs, parent) {
  const e = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (parent) parent.appendChild(e);
  return e;
}

function svgIn(container, height) {
  const w = Math.max(container.clientWidth, 200);
  container.textContent = '';
  const svg = el('svg', { viewBox: `0 0 ${w} ${height}`, height }, container);
  return [svg, w];
}

function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function renderTicks() {
  const box = $('ticks-chart');
  const ticks = [...state.ticks.values()].sort((a, b) => a.tick - b.tick);
  const [svg, w] = svgIn(box, 120);
  const H = 120, L = 40, B = 16, T = 6;
  if (ticks.length === 0) {
    el('text', { x: L, y: 60 }, svg).textContent = 'no ticks yet';
    $('ticks-legend').textContent = '';
    return;
  }
  const max = niceMax(Math.max(...ticks.map((t) => t.wall_ms)));
  const bw = (w - L) / Math.max(ticks.length, 60);
  el('line', { x1: L, x2: w, y1: H - B, y2: H - B, class: 'axis' }, svg);
  el('line', { x1: L, x2: w, y1: T, y2: T, class: 'axis' }, svg);
  el('text', { x: L - 4, y: T + 8, 'text-anchor': 'end' }, svg).textContent = fmtMs(max);
  el('text', { x: L - 4, y: H - B, 'text-anchor': 'end' }, svg).textContent = '0';
  ticks.forEach((t, i) => {
    const h = (H - B - T) * Math.min(t.wall_ms / max, 1);
    const r = el('rect', {
      x: L + i * bw, y: H - B - h, width: Math.max(bw - 1, 1), height: Math.max(h, 0.5),
      fill: t.steps === 0 ? '#b8c2d8' : '#3867d6',
    }, svg);
    el('title', {}, r).textContent =
      `tick ${t.tick}: ${fmtMs(t.wall_ms)} ms, ${t.events} events, ${t.steps} steps`;
  });
  el('text', { x: L, y: H - 2 }, svg).textContent = `tick ${ticks[0].tick}`;
  el('text', { x: w - 2, y: H - 2, 'text-anchor': 'end' }, svg).textContent =
    `tick ${ticks[ticks.length - 1].tick}`;
  const walls = ticks.map((t) => t.wall_ms);
  const mean = walls.reduce((a, b) => a + b, 0) / walls.length;
  $('ticks-legend').textContent =
    `${ticks.length} ticks · mean ${fmtMs(mean)} ms · max ${fmtMs(Math.max(...walls))} ms` +
    ` · ${fmtNum(ticks.reduce((a, t) => a + t.events, 0))} events`;
}

function lineChart(box, hist, height) {
  const [svg, w] = svgIn(box, height);
  const L = 34, B = 4, T = 6, H = height;
  const max = niceMax(Math.max(...hist.map((p) => p.p99), 0));
  el('line', { x1: L, x2: w, y1: H - B, y2: H - B, class: 'axis' }, svg);
  el('text', { x: L - 4, y: T + 8, 'text-anchor': 'end' }, svg).textContent = fmtMs(max);
  el('text', { x: L - 4, y: H - B, 'text-anchor': 'end' }, svg).textContent = '0';
  const n = Math.max(hist.length - 1, 1);
  const x = (i) => L + (w - L - 2) * (hist.length === 1 ? 1 : i / n);
  const y = (v) => H - B - (H - B - T) * Math.min(v / max, 1);
  // jitter band around p50
  if (hist.length > 1) {
    const up = hist.map((p, i) => `${x(i)},${y(p.p50 + p.jitter)}`);
    const down = hist.map((p, i) => `${x(i)},${y(Math.max(p.p50 - p.jitter, 0))}`).reverse();
    el('polygon', { points: up.concat(down).join(' '), fill: 'rgba(56,103,214,.12)' }, svg);
  }
  for (const [k, color] of [['p99', 'var(--p99)'], ['p95', 'var(--p95)'], ['p50', 'var(--p50)']]) {
    const pts = hist.map((p, i) => `${x(i)},${y(p[k])}`).join(' ');
    if (hist.length === 1) el('circle', { cx: x(0), cy: y(hist[0][k]), r: 2.5, fill: color }, svg);
    else el('polyline', { points: pts, fill: 'none', stroke: color, 'stroke-width': 1.6 }, svg);
  }
}

function renderStages(recorded) {
  const s = state.snap;
  const box = $('stages');
  const note = $('stages-note');
  const total = STAGES.reduce((a, [k]) => a + (s.stages[k] ? s.stages[k].count : 0), 0);
  if (recorded && total === 0) {
    note.hidden = false;
    note.textContent = 'No live timings for a recorded run: a journal keeps the wall time of ' +
      'each tick (see Ticks) and of each event, but not per-stage latencies. ' +
      'Run with --ui to see them live.';
  } else {
    note.hidden = true;
  }
  if (box.children.length !== STAGES.length) {
    box.textContent = '';
    for (const [k, label] of STAGES) {
      const d = document.createElement('div');
      d.className = 'stage';
      d.id = 'stage-' + k;
      const h = document.createElement('h3');
      h.textContent = label;
      const nums = document.createElement('div');
      nums.className = 'nums';
      const chart = document.createElement('div');
      chart.className = 'chart';
      d.append(h, nums, chart);
      box.appendChild(d);
    }
  }
  for (const [k] of STAGES) {
    const h = s.stages[k];
    const d = $('stage-' + k);
    const nums = d.querySelector('.nums');
    const chart = d.querySelector('.chart');
    nums.textContent = '';
    if (!h || h.count === 0) {
      nums.textContent = 'no samples';
      chart.textContent = '';
      continue;
    }
    for (const [cls, name, v] of [['k50', 'p50', h.p50_ms], ['k95', 'p95', h.p95_ms],
                                  ['k99', 'p99', h.p99_ms], ['kj', 'jitter', h.jitter_ms]]) {
      const sp = document.createElement('span');
      sp.className = cls;
      sp.append(`${name} `);
      const b = document.createElement('b');
      b.textContent = fmtMs(v);
      sp.append(b);
      nums.append(sp);
    }
    const n = document.createElement('span');
    n.className = 'kj';
    n.textContent = `n=${fmtNum(h.count)}`;
    nums.append(n);
    const hist = state.stageHist[k].length ? state.stageHist[k]
      : [{ p50: h.p50_ms, p95: h.p95_ms, p99: h.p99_ms, jitter: h.jitter_ms }];
    lineChart(chart, hist, 90);
  }
}

function sparkline(values, w, h) {
  const svg = el('svg', { viewBox: `0 0 ${w} ${h}`, width: w, height: h });
  if (values.length < 2) return svg;
  const max = Math.max(...values, 1e-9);
  const pts = values.map((v, i) => `${(w * i) / (values.length - 1)},${h - 1 - (h - 2) * (v / max)}`);
  el('polyline', { points: pts.join(' '), fill: 'none', stroke: 'var(--accent)', 'stroke-width': 1.4 }, svg);
  return svg;
}

function renderModels(models) {
  const tb = $('models').querySelector('tbody');
  tb.textContent = '';
  $('models-empty').hidden = models.length > 0;
  $('models').hidden = models.length === 0;
  for (const m of models) {
    const tr = document.createElement('tr');
    const cells = [
      m.name, m.provider || '—',
      m.max_batch ? `${m.batch} / ${m.max_batch}` : String(m.batch),
      fmtNum(m.queued), fmtNum(m.tokens), m.tokens_per_second.toFixed(1),
    ];
    cells.forEach((c, i) => {
      const td = document.createElement('td');
      td.textContent = c;
      if (i >= 4) td.className = 'num';
      if (i === 2 && m.max_batch) {
        const bar = document.createElement('span');
        bar.className = 'inbox-bar';
        bar.style.width = `${Math.round(40 * m.batch / m.max_batch)}px`;
        td.prepend(bar);
      }
      tr.appendChild(td);
    });
    const td = document.createElement('td');
    td.appendChild(sparkline(state.modelHist.get(m.name) || [], 140, 24));
    tr.appendChild(td);
    tb.appendChild(tr);
  }
}

const agentRows = new Map();  // id -> tr (kept, so selection and scroll stay)

function renderAgents(agents) {
  const tb = $('agents').querySelector('tbody');
  const f = state.agentFilter.toLowerCase();
  const maxInbox = Math.max(1, ...agents.map((a) => a.inbox));
  const present = new Set();
  let shown = 0;
  agents.forEach((a, idx) => {
    present.add(a.id);
    let tr = agentRows.get(a.id);
    if (!tr) {
      tr = document.createElement('tr');
      tr.dataset.agent = a.id;
      for (let i = 0; i < 7; i++) tr.appendChild(document.createElement('td'));
      tr.children[0].className = 'id';
      for (const i of [2, 3, 4, 5]) tr.children[i].className = 'num';
      tr.children[6].className = 'event';
      tr.addEventListener('click', () => selectAgent(a.id));
      agentRows.set(a.id, tr);
    }
    if (tb.children[idx] !== tr) tb.insertBefore(tr, tb.children[idx] || null);
    const c = tr.children;
    c[0].textContent = a.id;
    if (c[1].dataset.state !== a.state) {
      c[1].textContent = '';
      const p = document.createElement('span');
      p.className = 'pill ' + a.state;
      p.textContent = a.state;
      c[1].appendChild(p);
      c[1].dataset.state = a.state;
    }
    c[2].textContent = '';
    const bar = document.createElement('span');
    bar.className = 'inbox-bar';
    bar.style.width = `${Math.round(30 * a.inbox / maxInbox)}px`;
    c[2].append(bar, fmtNum(a.inbox));
    c[3].textContent = fmtNum(a.fuel_used);
    c[4].textContent = fmtNum(a.steps);
    c[5].textContent = fmtNum(a.last_tick);
    c[6].textContent = a.last_event;
    c[6].title = a.last_event;
    const visible = !f || a.id.toLowerCase().includes(f) || a.state.includes(f);
    tr.hidden = !visible;
    if (visible) shown++;
    tr.classList.toggle('selected', a.id === state.selectedAgent);
    if (!state.agentsSeen.has(a.id)) {
      state.agentsSeen.add(a.id);
      const o = document.createElement('option');
      o.value = a.id;
      o.textContent = a.id;
      $('transcript-agent').appendChild(o);
    }
  });
  for (const [id, tr] of agentRows) {
    if (!present.has(id)) { tr.remove(); agentRows.delete(id); }
  }
  $('agents-count').textContent = f ? `${shown} of ${agents.length}` : `${agents.length}`;
}

function selectAgent(id) {
  state.selectedAgent = state.selectedAgent === id ? '' : id;
  $('transcript-agent').value = state.selectedAgent;
  render();
}

function renderTranscript() {
  const box = $('transcript');
  const renderKey = `${state.transcriptVersion}/${state.selectedAgent}`;
  if (renderKey === state.transcriptRendered) return;
  state.transcriptRendered = renderKey;
  const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 30;
  const want = state.selectedAgent;
  const lines = state.transcript.filter((l) => l.gap || !want || l.agent === want);
  const shown = lines.slice(-1000);
  box.textContent = '';
  const frag = document.createDocumentFragment();
  for (const l of shown) {
    const d = document.createElement('div');
    if (l.gap) {
      d.className = 'gap';
      d.textContent = '… lines missed while the dashboard was behind …';
    } else {
      d.className = 'line';
      const t = document.createElement('span');
      t.className = 't';
      t.textContent = l.tick;
      const a = document.createElement('span');
      a.className = 'a';
      a.textContent = l.agent;
      a.title = l.agent;
      a.addEventListener('click', () => selectAgent(l.agent));
      const x = document.createElement('span');
      x.className = 'x';
      x.textContent = l.text;
      x.title = l.text.length > 200 ? l.text.slice(0, 2000) : l.text;
      d.append(t, a, x);
    }
    frag.appendChild(d);
  }
  box.appendChild(frag);
  const n = lines.filter((l) => !l.gap).length;
  $('transcript-count').textContent = want ? `${n} lines from ${want}` : `${n} lines`;
  if (atBottom) box.scrollTop = box.scrollHeight;
}

// ---- wiring -----------------------------------------------------------------------

for (const b of document.querySelectorAll('.controls button'))
  b.addEventListener('click', () => sendControl(b.dataset.control));
$('agent-filter').addEventListener('input', (e) => { state.agentFilter = e.target.value; render(); });
$('transcript-agent').addEventListener('change', (e) => { state.selectedAgent = e.target.value; render(); });
$('link-metrics').href = withToken('metrics');
$('link-trace').href = withToken('trace');
$('link-snapshot').href = withToken('api/snapshot');
window.addEventListener('resize', () => render());
fetchSnapshot();
connect();
