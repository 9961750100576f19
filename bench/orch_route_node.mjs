// orch_route_node.mjs — the routing reference the original design proposed:
// agents are plain JS objects spread over N worker_threads (agent k lives on
// worker k % N); a message to an agent on another worker goes through a
// MessagePort (one MessageChannel per pair of workers), a message to a local
// agent through the worker's own queue.
//
// The workload is the one bench/run_orch.sh gives cohort: AGENTS agents in
// pairs (2j, 2j+1); every agent starts with one message from its partner and
// sends every message it receives back to the sender, unchanged (pingpong);
// each message is delivered HOPS times.  With N >= 2 every hop crosses
// workers, as partners never share a worker.
//
// Prints one JSON line: deliveries, seconds (first send to last delivery, after
// all workers are up), deliveries/s, and hop latency (send -> handler, µs)
// p50/p99/mean.
//
// usage: node orch_route_node.mjs AGENTS HOPS WORKERS
import { Worker, MessageChannel, isMainThread, parentPort, workerData } from 'node:worker_threads';

const nowUs = () => {
  const [s, ns] = process.hrtime(); // CLOCK_MONOTONIC: comparable across threads
  return s * 1e6 + ns / 1e3;
};

if (isMainThread) {
  const [agents, hops, nw] = process.argv.slice(2).map(Number);
  if (!(agents >= 2 && agents % 2 === 0 && hops >= 1 && nw >= 1)) {
    console.error('usage: node orch_route_node.mjs AGENTS(even) HOPS WORKERS');
    process.exit(2);
  }
  // ports[i][j]: worker i's end of the channel to worker j
  const ports = Array.from({ length: nw }, () => new Array(nw).fill(null));
  for (let i = 0; i < nw; i++)
    for (let j = i + 1; j < nw; j++) {
      const ch = new MessageChannel();
      ports[i][j] = ch.port1;
      ports[j][i] = ch.port2;
    }
  const workers = [];
  let ready = 0, done = 0, t0 = 0, t1 = 0, lat = [];
  const finish = () => {
    t1 = nowUs();
    const all = new Float64Array(lat.reduce((n, a) => n + a.length, 0));
    let o = 0;
    for (const a of lat) { all.set(a, o); o += a.length; }
    all.sort();
    const pct = (p) => all[Math.min(all.length - 1, Math.floor(p * all.length))];
    let sum = 0;
    for (const v of all) sum += v;
    const seconds = (t1 - t0) / 1e6;
    console.log(JSON.stringify({
      impl: 'node-worker_threads', agents, hops, workers: nw, deliveries: all.length,
      seconds, deliveries_per_s: all.length / seconds,
      lat_us_p50: pct(0.5), lat_us_p99: pct(0.99), lat_us_mean: sum / all.length,
    }));
    for (const w of workers) w.terminate();
  };
  for (let i = 0; i < nw; i++) {
    const mine = ports[i].map((p) => p);
    const transfer = mine.filter((p) => p !== null);
    const w = new Worker(new URL(import.meta.url), {
      workerData: { id: i, nw, agents, hops, ports: mine }, transferList: transfer,
    });
    w.on('message', (m) => {
      if (m.type === 'ready' && ++ready === nw) {
        t0 = nowUs();
        for (const x of workers) x.postMessage({ type: 'go' });
      } else if (m.type === 'done') {
        lat.push(m.lat);
        if (++done === nw) finish();
      }
    });
    w.on('error', (e) => { console.error(e); process.exit(1); });
    workers.push(w);
  }
} else {
  const { id, nw, agents, hops, ports } = workerData;
  // The agents this worker hosts: plain objects with a handler.
  class Agent {
    constructor(index) { this.index = index; this.received = 0; }
    onMessage(msg, send) { // pingpong: back to the sender, unchanged
      this.received++;
      send(msg.from, this.index, msg.body, msg.hops);
    }
  }
  const local = new Map();
  for (let k = id; k < agents; k += nw) local.set(k, new Agent(k));
  const expected = local.size * hops;
  const lat = new Float64Array(expected);
  let delivered = 0, draining = false;
  const queue = [];
  const send = (to, from, body, h) => {
    if (h >= hops) return; // this message has made all its hops
    const msg = { to, from, body, hops: h + 1, t: nowUs() };
    const w = to % nw;
    if (w === id) queue.push(msg);
    else ports[w].postMessage(msg);
  };
  const deliver = (msg) => {
    lat[delivered++] = nowUs() - msg.t;
    local.get(msg.to).onMessage(msg, send);
  };
  const drain = () => {
    for (let i = 0; i < queue.length; i++) deliver(queue[i]);
    queue.length = 0;
    draining = false;
    if (delivered === expected) parentPort.postMessage({ type: 'done', lat }, [lat.buffer]);
  };
  const receive = (ev) => {
    queue.push(ev.data);
    if (!draining) { draining = true; setImmediate(drain); }
  };
  for (const p of ports) if (p) p.on('message', (m) => receive({ data: m }));
  parentPort.on('message', (m) => {
    if (m.type !== 'go') return;
    // every agent starts with one message from its partner (hop 1)
    for (const k of local.keys()) queue.push({ to: k, from: k ^ 1, body: `message ${k} from p-${k ^ 1}`, hops: 1, t: nowUs() });
    draining = true;
    setImmediate(drain);
  });
  parentPort.postMessage({ type: 'ready' });
}
