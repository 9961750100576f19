// ui_page.mjs — the "connected browser" of bench/run_ui.sh: Debian's
// Chromium, headless, through playwright-core (installed in tests/ui).
//
//   node bench/ui_page.mjs --url-file FILE [--timeout-s S]
//
// Launches the browser first and prints "ready" (so that its start-up does
// not fall inside the measured run), then waits for FILE to hold the
// dashboard URL, opens it and keeps the page open, rendering every snapshot
// the server pushes, until the page says the run finished.  Prints how many
// WebSocket frames the page received and when the socket opened.
import { createRequire } from 'node:module';
import { existsSync, readFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const require = createRequire(new URL('../tests/ui/package.json', import.meta.url));
const { chromium } = require('playwright-core');

const args = process.argv.slice(2);
const opt = (k, d) => (args.indexOf(k) >= 0 ? args[args.indexOf(k) + 1] : d);
const urlFile = opt('--url-file');
const timeoutMs = Number(opt('--timeout-s', '300')) * 1000;
if (!urlFile) { console.log('usage: ui_page.mjs --url-file FILE [--timeout-s S]'); process.exit(2); }
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const profile = mkdtempSync(join(tmpdir(), 'cohort-bench-chromium-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: '/usr/bin/chromium',
  headless: true,
  viewport: { width: 1400, height: 1000 },
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
let code = 0;
try {
  const page = context.pages()[0] || await context.newPage();
  let frames = 0, bytes = 0, wsOpenAt = 0;
  page.on('websocket', (ws) => {
    wsOpenAt = Date.now();
    ws.on('framereceived', (f) => { frames++; bytes += f.payload.length; });
  });
  console.log('ready');
  const end = Date.now() + timeoutMs;
  while (!existsSync(urlFile) || readFileSync(urlFile, 'utf8').trim() === '') {
    if (Date.now() > end) throw new Error('no URL');
    await sleep(20);
  }
  const url = readFileSync(urlFile, 'utf8').trim();
  const t0 = Date.now();
  await page.goto(url, { waitUntil: 'load' });
  for (;;) {
    const state = await page.locator('#runstate').textContent();
    if (/finished/.test(state)) break;
    if (Date.now() > end) throw new Error(`timeout; run state: ${state}`);
    await sleep(250);
  }
  console.log(`page: socket open ${wsOpenAt ? wsOpenAt - t0 : -1} ms after the URL; ` +
              `${frames} snapshots received (${(bytes / frames / 1024).toFixed(1)} KB each)`);
} catch (e) {
  console.log(`page: FAIL ${e.message}`);
  code = 1;
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
process.exit(code);
