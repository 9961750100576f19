// browser_test.mjs — drives the cohort monitor dashboard in Debian's
// Chromium (headless, through playwright-core) and checks what a person
// would look at.  Run by tests/ui_browser.sh:
//
//   node browser_test.mjs --url URL --scenario NAME [--agents N]
//                         [--screenshot PATH]
//
// Scenarios: `recorded` (`cohort inspect RUN.db --ui`, a finished run) and
// `live` (`cohort run SCENARIO --ui`, a run that goes on until it is
// stopped: ticks and counters must advance over the WebSocket, Pause must
// hold the tick, Step must run exactly one tick, Resume must go on, and Stop
// must finish the run with stop reason "stopped").
//
// Each scenario is a list of checks; each check is an async function
// (page, opts) that throws with a message when what it looks for is not
// there.  To add a scenario (e.g. a live run), add an entry to `scenarios`.
import { chromium } from 'playwright-core';
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

// Every wait in this file is for a condition, with a deadline (o.timeout)
// that only matters when the condition never comes: it is generous, because
// a loaded machine or a sanitized build is slow, not wrong.  No check waits
// for a fixed time (tests/README.md).
function parseArgs(argv) {
  const o = { agents: 0, screenshot: '', timeout: 90000 };
  for (let i = 2; i < argv.length; i++) {
    const k = argv[i];
    const v = argv[i + 1];
    if (k === '--url') o.url = v, i++;
    else if (k === '--scenario') o.scenario = v, i++;
    else if (k === '--agents') o.agents = Number(v), i++;
    else if (k === '--screenshot') o.screenshot = v, i++;
    else throw new Error(`unknown argument ${k}`);
  }
  if (!o.url || !o.scenario) throw new Error('need --url and --scenario');
  return o;
}

async function waitFor(what, fn, timeout) {
  const end = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e.message;
    }
    if (Date.now() > end) throw new Error(`${what} (last seen: ${JSON.stringify(last)})`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const text = (page, sel) => page.locator(sel).first().textContent();
const num = (s) => Number(String(s).replace(/[^0-9.]/g, ''));

// ---- checks -----------------------------------------------------------------

async function checkConnected(page, o) {
  await waitFor('the connection indicator says live',
    async () => (await page.locator('#conn').getAttribute('data-state')) === 'open',
    o.timeout);
}

async function checkAgentsTable(page, o) {
  const n = await waitFor(`the agents table shows ${o.agents} agents`, async () => {
    const rows = await page.locator('#agents tbody tr').count();
    return rows === o.agents ? rows : false;
  }, o.timeout);
  const first = await text(page, '#agents tbody tr td.id');
  const state = await text(page, '#agents tbody tr td:nth-child(2)');
  if (!first || !/alive|exited|failed/.test(state))
    throw new Error(`first agent row looks wrong: id ${first}, state ${state}`);
  return n;
}

async function checkCounters(page, o) {
  await waitFor('the counters show events', async () =>
    num(await text(page, '#c-events')) > 0 && num(await text(page, '#c-agent_steps')) > 0,
  o.timeout);
  const digest = await text(page, '#digest');
  if (!/^[0-9a-f]{64}$/.test(digest)) throw new Error(`digest shown: ${digest}`);
}

async function checkTranscript(page, o) {
  await waitFor('the transcript has lines',
    async () => (await page.locator('#transcript .line').count()) > 0, o.timeout);
  // filter by one agent: only its lines remain
  const agent = await text(page, '#transcript .line .a');
  await page.selectOption('#transcript-agent', agent);
  await waitFor(`the transcript shows only ${agent}`, async () => {
    const agents = await page.locator('#transcript .line .a').allTextContents();
    return agents.length > 0 && agents.every((a) => a === agent);
  }, o.timeout);
  await page.selectOption('#transcript-agent', '');
}

async function checkTicksChart(page, o) {
  await waitFor('the ticks chart has bars',
    async () => (await page.locator('#ticks-chart svg rect').count()) > 0, o.timeout);
}

async function checkRecordedNote(page, o) {
  await waitFor('a recorded run says it has no live timings', async () => {
    const note = page.locator('#stages-note');
    return (await note.isVisible()) && /no live timings/i.test(await note.textContent());
  }, o.timeout);
  const disabled = await page.locator('#btn-pause').isDisabled();
  if (!disabled) throw new Error('controls are enabled for a recorded run');
}

async function checkEndpoints(page, o) {
  const r = await page.evaluate(async () => {
    const q = location.search;
    const m = await fetch('metrics' + q).then((x) => x.text());
    const t = await fetch('trace' + q).then((x) => x.json());
    return { metrics: m, events: t.traceEvents.length,
             flows: t.traceEvents.filter((e) => e.ph === 's').length };
  });
  if (!/^cohort_events_total \d+$/m.test(r.metrics)) throw new Error('/metrics lacks cohort_events_total');
  if (!(r.events > 0 && r.flows > 0)) throw new Error(`/trace: ${r.events} events, ${r.flows} flows`);
}

// ---- live run checks ------------------------------------------------------------

const tickShown = async (page) => num(await text(page, '#tick'));
const runState = (page) => text(page, '#runstate');

// The server's view of the run: GET /api/snapshot from the page.
const serverRun = (page) => page.evaluate(async () =>
  (await fetch('api/snapshot' + location.search, { cache: 'no-store' }).then((x) => x.json())).run);

// POST /api/control from the page (also while the control's button is
// disabled); returns the HTTP status.
const postControl = (page, control) => page.evaluate(async (c) => (await fetch(
  'api/control' + location.search, { method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ control: c }) })).status, control);

// A paused run holds its tick.  Proven without watching the clock: a
// redundant Pause wakes the sleeping orchestrator, which handles it and
// publishes again; once a snapshot newer than the one before the probe is
// out (wall_seconds grows with every publish), the orchestrator has had
// its chance to run a tick, and the tick must be the same.
async function checkHolds(page, o, tick, what) {
  const before = await serverRun(page);
  if (!before.paused || before.tick !== tick)
    throw new Error(`${what}: expected paused at ${tick}, server: ${JSON.stringify(before)}`);
  const status = await postControl(page, 'pause');
  if (status !== 202) throw new Error(`${what}: POST pause answered ${status}`);
  const after = await waitFor(`${what}: the paused run publishes after a control`, async () => {
    const r = await serverRun(page);
    return r.wall_seconds > before.wall_seconds ? r : false;
  }, o.timeout);
  if (!after.paused || after.tick !== tick)
    throw new Error(`${what}: tick moved while paused: ${tick} -> ${after.tick} (${JSON.stringify(after)})`);
  await waitFor(`${what}: the page shows tick ${tick}, paused`, async () =>
    (await tickShown(page)) === tick && /paused/.test(await runState(page)), o.timeout);
}

// The tick and the event counter grow while the page just listens: the
// updates can only come from the WebSocket pushes (the page never polls).
async function checkLiveAdvance(page, o) {
  const t0 = await waitFor('a tick number is shown', async () => {
    const t = await tickShown(page);
    return t > 0 ? t : false;
  }, o.timeout);
  const e0 = num(await text(page, '#c-events'));
  await waitFor(`the tick advances past ${t0}`, async () => (await tickShown(page)) > t0 + 5, o.timeout);
  await waitFor(`the event counter advances past ${e0}`,
    async () => num(await text(page, '#c-events')) > e0, o.timeout);
  if (!/running/.test(await runState(page))) throw new Error(`run state: ${await runState(page)}`);
}

async function checkModelsLive(page, o) {
  await waitFor('the models table shows the tiny model with tokens', async () => {
    const row = page.locator('#models tbody tr').first();
    if ((await page.locator('#models tbody tr').count()) !== 1) return false;
    const cells = await row.locator('td').allTextContents();
    return cells[0] === 'tiny' && num(cells[4]) > 0 ? cells.join(' | ') : false;
  }, o.timeout);
}

async function checkStagesLive(page, o) {
  // a live run has per-stage timings: the agent_step stage has a count
  const r = await page.evaluate(async () =>
    (await fetch('api/snapshot' + location.search).then((x) => x.json())).stages);
  if (!(r.agent_step.count > 0 && r.queued.count > 0))
    throw new Error(`stage counts: ${JSON.stringify(Object.fromEntries(
      Object.entries(r).map(([k, v]) => [k, v.count])))}`);
  if (await page.locator('#stages-note').isVisible()) throw new Error('a live run shows the recorded-run note');
}

// Pause: the page and the server say paused, and the tick holds (see
// checkHolds).  Step: exactly one more tick, then it holds again.
async function checkPauseStep(page, o) {
  await page.click('#btn-pause');
  await waitFor('the run says paused', async () => /paused/.test(await runState(page)), o.timeout);
  const srv = await waitFor('the server says paused', async () => {
    const r = await serverRun(page);
    return r.paused ? r : false;
  }, o.timeout);
  const t1 = srv.tick;
  await checkHolds(page, o, t1, 'pause');
  if (!(await page.locator('#btn-pause').isDisabled()) || await page.locator('#btn-step').isDisabled())
    throw new Error('while paused, Pause should be disabled and Step enabled');
  await page.click('#btn-step');
  await waitFor(`one step: the server says paused at tick ${t1 + 1}`, async () => {
    const r = await serverRun(page);
    if (r.tick > t1 + 1) throw new Error(`a step ran ${r.tick - t1} ticks`);
    return r.paused && r.tick === t1 + 1;
  }, o.timeout);
  await checkHolds(page, o, t1 + 1, 'after one step');
  o.pausedAt = t1 + 1;
}

async function checkResume(page, o) {
  await page.click('#btn-resume');
  await waitFor('the run says running', async () => /running/.test(await runState(page)), o.timeout);
  await waitFor(`the tick advances past ${o.pausedAt}`,
    async () => (await tickShown(page)) > o.pausedAt + 5, o.timeout);
}

async function takeScreenshot(page, o) {
  if (!o.screenshot) return;
  mkdirSync(dirname(o.screenshot), { recursive: true });
  await page.screenshot({ path: o.screenshot, fullPage: true });
  o.shot = true;
  console.log(`screenshot: ${o.screenshot}`);
}

async function checkStop(page, o) {
  await page.click('#btn-stop');
  await waitFor('the run says finished: stopped',
    async () => /finished: stopped/.test(await runState(page)), o.timeout);
  if (!(await page.locator('#btn-pause').isDisabled())) throw new Error('controls still enabled after stop');
}

// ---- scenarios -----------------------------------------------------------------

const scenarios = {
  // `cohort inspect RUN.db --ui` on a finished swarm run
  recorded: [checkConnected, checkAgentsTable, checkCounters, checkTicksChart,
             checkTranscript, checkRecordedNote, checkEndpoints],
  // `cohort run SCENARIO --ui` on a run that lasts until it is stopped; the
  // screenshot is taken while it is live, before Stop
  live: [checkConnected, checkAgentsTable, checkLiveAdvance, checkModelsLive, checkStagesLive,
         checkTranscript, checkPauseStep, checkResume, checkEndpoints, takeScreenshot, checkStop],
};

async function main() {
  const o = parseArgs(process.argv);
  const checks = scenarios[o.scenario];
  if (!checks) throw new Error(`unknown scenario ${o.scenario}`);
  const profile = mkdtempSync(join(tmpdir(), 'cohort-chromium-'));
  // a fresh profile folder (playwright passes it as --user-data-dir)
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    viewport: { width: 1400, height: 1000 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
           '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const errors = [];
  let failed = 0;
  try {
    const page = context.pages()[0] || await context.newPage();
    page.setDefaultTimeout(o.timeout);
    page.setDefaultNavigationTimeout(o.timeout);
    page.on('pageerror', (e) => errors.push(`page error: ${e.message}`));
    page.on('console', (m) => { if (m.type() === 'error') errors.push(`console: ${m.text()}`); });
    await page.goto(o.url, { waitUntil: 'load' });
    for (const check of checks) {
      try {
        await check(page, o);
        console.log(`ok   ${o.scenario}: ${check.name}`);
      } catch (e) {
        failed++;
        console.log(`FAIL ${o.scenario}: ${check.name}: ${e.message}`);
      }
    }
    if (o.screenshot && !o.shot) {
      mkdirSync(dirname(o.screenshot), { recursive: true });
      await page.screenshot({ path: o.screenshot, fullPage: true });
      console.log(`screenshot: ${o.screenshot}`);
    }
  } finally {
    await context.close();
    rmSync(profile, { recursive: true, force: true });
  }
  for (const e of errors) console.log(`FAIL ${o.scenario}: ${e}`);
  process.exit(failed || errors.length ? 1 : 0);
}

main().catch((e) => { console.log(`FAIL: ${e.stack || e}`); process.exit(1); });
