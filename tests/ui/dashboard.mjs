// SPDX-License-Identifier: MIT
// The dashboard in headless Chromium (the system's /usr/bin/chromium through playwright-core):
// open heald's dashboard, wait until its event stream is live, break the demo shop's returns
// schema, send the return a customer would, and check the page shows the live heal: its
// steps (failure .. HEALED, with durations), the cause, the diff with + and - lines coloured,
// the guardrail verdicts and the verification. Saves a screenshot and prints its path.
//
// Run by tests/ui/run.sh, which starts heald and the shop and sets:
//   UI_URL    the dashboard ("http://127.0.0.1:PORT/")
//   UI_SHOP   the shop ("http://127.0.0.1:PORT")
//   UI_BREAK  the shell command that breaks the returns schema
//   UI_SHOT   where the screenshot goes
import { execSync } from 'node:child_process';
import { chromium } from 'playwright-core';

const { UI_URL, UI_SHOP, UI_BREAK, UI_SHOT } = process.env;
if (!UI_URL || !UI_SHOP || !UI_BREAK || !UI_SHOT) {
  console.error('dashboard.mjs: run it through tests/ui/run.sh');
  process.exit(2);
}
const t0 = Date.now();
const failures = [];
function check(ok, what) {
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}`);
  if (!ok) failures.push(what);
}

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
let code = 0;
try {
  const page = await browser.newPage({ viewport: { width: 1500, height: 1000 } });
  const external = [], errors = [];
  const origin = new URL(UI_URL).origin;
  page.on('request', (r) => {
    const u = r.url();
    if (!u.startsWith(origin) && !u.startsWith('data:')) external.push(u);
  });
  page.on('pageerror', (e) => errors.push(String(e)));
  // the page probes which POST endpoints heald offers (401: there, 404: not): the browser
  // logs those as failed loads; any failed GET is an error
  page.on('console', (m) => { if (m.type() === 'error' && !/^Failed to load resource/.test(m.text())) errors.push(m.text()); });
  page.on('response', (r) => {
    if (r.status() >= 400 && r.request().method() === 'GET') errors.push(`GET ${r.url()}: ${r.status()}`);
  });

  const resp = await page.goto(UI_URL);
  check(resp && resp.status() === 200, `GET / answers 200 (${resp && resp.status()})`);
  check(/text\/html/.test((resp && resp.headers()['content-type']) || ''), 'GET / is text/html');
  await page.waitForSelector('#conn.on', { timeout: 10000 });
  check(true, 'the event stream is live');
  check(await page.locator('#mode').textContent() === 'auto' || await page.locator('#mode-select').isVisible(),
    'the control bar shows the mode');
  check(await page.locator('#no-traces').isVisible(), 'no heal before the break');

  // break the shop, then be the customer whose return fails
  execSync(UI_BREAK, { stdio: 'inherit' });
  const r = await fetch(`${UI_SHOP}/returns`, { method: 'POST', body: '{"order_id":"ord-1001","reason":"damaged"}' });
  check(r.status === 500, `the broken shop answers a return with 500 (${r.status})`);

  // the heal appears live: its card, its steps as they come, and it ends HEALED
  const card = page.locator('.trace').first();
  await card.waitFor({ timeout: 10000 });
  check(true, `a heal card appeared ${Date.now() - t0} ms in`);
  await page.waitForSelector('.trace[data-state="HEALED"]', { timeout: 30000 });
  const steps = await card.locator('.step').evaluateAll((els) => els.map((e) => e.dataset.type).filter(Boolean));
  console.log(`     steps: ${steps.join(' ')}`);
  for (const s of ['API_FAILURE', 'RCA_READY', 'PATCH_READY', 'PATCH_APPLIED', 'RELOAD_DONE', 'VERIFY_PASS', 'HEALED'])
    check(steps.includes(s), `the card shows ${s}`);
  check(steps.indexOf('RCA_READY') < steps.indexOf('PATCH_READY') && steps.indexOf('PATCH_READY') < steps.indexOf('HEALED'),
    'the steps are in order');
  const durations = await card.locator('.step[data-type="VERIFY_PASS"] .ms').textContent();
  check(/\d+(\.\d+)? m?s/.test(durations), `steps carry durations (VERIFY_PASS: ${durations})`);

  // the reasoning lane follows the live heal
  const cause = await page.locator('#cause').textContent();
  check(/returns-schema\.json/.test(cause), `the cause names the schema: "${cause}"`);
  check(await page.locator('#reasoning .meter').count() >= 2, 'confidence and risk are shown');
  const adds = page.locator('#reasoning .diff .add'), dels = page.locator('#reasoning .diff .del');
  check(await dels.count() >= 1 && await adds.count() >= 1, `the diff has + and - lines (${await adds.count()} +, ${await dels.count()} -)`);
  check((await dels.allTextContents()).some((l) => l.startsWith('-') && l.includes('rma_code')),
    'the removed line is rma_code');
  const colour = async (loc) => loc.first().evaluate((e) => getComputedStyle(e).color + '|' + getComputedStyle(e).backgroundColor);
  const [ca, cd] = [await colour(adds), await colour(dels)];
  const ctx = await colour(page.locator('#reasoning .diff .ctx'));
  check(ca !== cd && ca !== ctx && cd !== ctx, `+ and - lines are coloured apart (${ca} / ${cd} / ${ctx})`);
  check(await page.locator('#reasoning .guards li.pass').count() >= 1, 'guardrail verdicts are listed');
  check(/Passed/.test(await page.locator('#verify').textContent()), 'verification passed');
  check(/HEALED/.test(await page.locator('#outcome').textContent()), 'the outcome is HEALED');
  check(await page.locator('#log li').count() >= 7, 'the live patch log has the raw events');
  const counted = await page.waitForFunction(() => (document.querySelector('#counts [data-k="healed"] b') || {}).textContent === '1',
    null, { timeout: 5000 }).then(() => true, () => false);
  check(counted, `the control bar counts the heal (${(await page.locator('#counts').textContent()).trim()})`);

  check(await page.locator('#paused').isHidden(), 'not shown as paused');
  await page.screenshot({ path: UI_SHOT, fullPage: true }); // the live heal

  // a reload rebuilds the same picture from /api/v1/traces and /api/v1/traces/ID
  await page.reload();
  await page.waitForSelector('.trace[data-state="HEALED"] .step[data-type="HEALED"]', { timeout: 10000 });
  await page.waitForSelector('#reasoning .diff .del', { timeout: 10000 });
  check(true, 'after a reload the heal, its steps and its diff come back from the API');
  check(await page.locator('#log li').count() >= 8, 'after a reload the log starts with the recent events');

  check(external.length === 0, `nothing is loaded from elsewhere${external.length ? ': ' + external.join(' ') : ''}`);
  check(errors.length === 0, `no script errors${errors.length ? ': ' + errors.join(' | ') : ''}`);
  console.log(`screenshot: ${UI_SHOT}`);
} catch (e) {
  console.error(`FAIL ${e.message}`);
  failures.push(e.message);
  try {
    const pages = browser.contexts().flatMap((c) => c.pages());
    if (pages[0]) { await pages[0].screenshot({ path: UI_SHOT, fullPage: true }); console.log(`screenshot: ${UI_SHOT}`); }
  } catch (e2) { /* no screenshot */ }
} finally {
  await browser.close();
}
console.log(`${failures.length ? 'FAILED' : 'passed'}: ${failures.length} failure(s), ${Date.now() - t0} ms`);
process.exit(failures.length ? 1 : code);
