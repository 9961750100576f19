// browser_test.mjs — drives the cohort monitor dashboard in Debian's
// Chromium (headless, through playwright-core) and checks what a person
// would look at.  Run by tests/ui_browser.sh:
//
//   node browser_test.mjs --url URL --scenario NAME [--agents N]
//                         [--screenshot PATH]
//
// Each scenario is a list of checks; each check is an async function
// (page, opts) that throws with a message when what it looks for is not
// there.  To add a scenario (e.g. a live run), add an entry to `scenarios`.
import { chromium } from 'playwright-core';
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

function parseArgs(argv) {
  const o = { agents: 0, screenshot: '', timeout: 15000 };
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

// ---- scenarios -----------------------------------------------------------------

const scenarios = {
  // `cohort inspect RUN.db --ui` on a finished swarm run
  recorded: [checkConnected, checkAgentsTable, checkCounters, checkTicksChart,
             checkTranscript, checkRecordedNote, checkEndpoints],
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
    if (o.screenshot) {
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
