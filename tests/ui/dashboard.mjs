// SPDX-License-Identifier: MIT
// The dashboard in headless Chromium (the system's /usr/bin/chromium through playwright-core):
// open heald's dashboard, wait until its event stream is live, break the demo shop's returns
// schema with the control bar's "Trigger failure" (refused without the token and with a
// wrong one; then with the token from STATE_DIR/api.token, and its TRIGGERED event shows in
// the live log), send the return a customer would, and check the page shows the live heal:
// its steps (failure .. HEALED, with durations), the cause, the diff with + and - lines
// coloured, the guardrail verdicts and the verification. Saves a screenshot and prints its
// path. A heald without triggers (GET /api/v1/triggers 404) gets the schema broken by
// UI_BREAK instead. Last, the control is checked hidden when heald lists no trigger.
//
// Run by tests/ui/run.sh, which starts heald and the shop and sets:
//   UI_URL         the dashboard ("http://127.0.0.1:PORT/")
//   UI_SHOP        the shop ("http://127.0.0.1:PORT")
//   UI_TOKEN_FILE  heald's API token (STATE_DIR/api.token)
//   UI_BREAK       the shell command that breaks the returns schema (heald without triggers)
//   UI_SHOT        where the screenshot goes
import { execSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { chromium } from 'playwright-core';

const { UI_URL, UI_SHOP, UI_BREAK, UI_SHOT, UI_TOKEN_FILE } = process.env;
if (!UI_URL || !UI_SHOP || !UI_BREAK || !UI_SHOT || !UI_TOKEN_FILE) {
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
  // how the shop gets broken: the page's trigger (heald lists shop's returns-schema) or UI_BREAK
  const tr = await fetch(new URL('api/v1/triggers', UI_URL));
  const listed = tr.status === 200 ? await tr.json() : null;
  const viaPage = Array.isArray(listed) && listed.some((x) => x.target === 'shop' && x.name === 'returns-schema');
  if (tr.status === 404) console.log('     GET /api/v1/triggers: 404: a heald without triggers: the test breaks the schema itself');
  else check(viaPage, `GET /api/v1/triggers lists shop's returns-schema (${tr.status} ${JSON.stringify(listed)})`);

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
    if (r.status() >= 400 && r.request().method() === 'GET' &&
      !(tr.status === 404 && r.status() === 404 && r.url().endsWith('/api/v1/triggers'))) errors.push(`GET ${r.url()}: ${r.status()}`);
  });

  const resp = await page.goto(UI_URL);
  check(resp && resp.status() === 200, `GET / answers 200 (${resp && resp.status()})`);
  check(/text\/html/.test((resp && resp.headers()['content-type']) || ''), 'GET / is text/html');
  await page.waitForSelector('#conn.on', { timeout: 10000 });
  check(true, 'the event stream is live');
  check(await page.locator('#mode').textContent() === 'auto' || await page.locator('#mode-select').isVisible(),
    'the control bar shows the mode');
  check(await page.locator('#no-traces').isVisible(), 'no heal before the break');

  const notice = () => page.locator('#notice');
  const triggeredLines = page.locator('#log li').filter({ has: page.locator('.ty', { hasText: /^TRIGGERED$/ }) });
  if (viaPage) {
    // break the shop from the page: the control bar's trigger, which needs the token
    await page.locator('#trigger-box').waitFor({ state: 'visible', timeout: 5000 });
    const opts = await page.locator('#trigger-select option').allTextContents();
    check(opts.includes('shop · returns-schema'), `the control bar offers "Trigger failure" of: ${opts.join(', ')}`);
    await page.selectOption('#trigger-select', { label: 'shop · returns-schema' });
    const desc = await page.locator('#trigger').getAttribute('title');
    check(/schema change/.test(desc || ''), `the trigger carries its description ("${desc}")`);
    const posted = () => page.waitForResponse((r) => r.url().endsWith('/api/v1/trigger') && r.request().method() === 'POST', { timeout: 5000 });

    await page.fill('#token', '');
    await page.click('#trigger');
    check(/token/i.test(await notice().textContent()) && await notice().evaluate((e) => e.classList.contains('bad')),
      `without the token the page refuses: "${await notice().textContent()}"`);

    await page.fill('#token', 'not-the-token');
    const [bad] = await Promise.all([posted(), page.click('#trigger')]);
    check(bad.status() === 403, `with a wrong token heald refuses (${bad.status()})`);
    await page.waitForFunction(() => /wrong token/.test(document.querySelector('#notice').textContent), null, { timeout: 3000 })
      .catch(() => {});
    check(/wrong token/.test(await notice().textContent()) && await notice().evaluate((e) => e.classList.contains('bad')),
      `the page shows the refusal: "${await notice().textContent()}"`);
    await page.waitForTimeout(300);
    check(await triggeredLines.count() === 0 && await page.locator('.trace').count() === 0, 'nothing was triggered');

    const token = readFileSync(UI_TOKEN_FILE, 'utf8').trim();
    await page.fill('#token', token);
    const [good] = await Promise.all([posted(), page.click('#trigger')]);
    const answer = await good.json().catch(() => null);
    check(good.status() === 202 && answer && answer.queued === true, `with the token heald queues it (${good.status()} ${JSON.stringify(answer)})`);
    const shown = await notice().textContent();
    check(/queued|triggered/.test(shown), `the page shows the answer: "${shown}"`);

    // heald ran shopctl and says so on the event stream: the live log shows it
    await triggeredLines.first().waitFor({ timeout: 10000 });
    const raw = await triggeredLines.first().locator('.raw').textContent();
    check(/"name":"returns-schema"/.test(raw) && /"exit_code":0\b/.test(raw), `the live log shows TRIGGERED: ${raw}`);
    await page.waitForFunction(() => /triggered shop · returns-schema/.test(document.querySelector('#notice').textContent), null, { timeout: 3000 })
      .catch(() => {});
    check(/triggered shop · returns-schema/.test(await notice().textContent()), `the notice says so: "${await notice().textContent()}"`);
  } else {
    execSync(UI_BREAK, { stdio: 'inherit' });
  }

  // the shop is broken: be the customer whose return fails
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
  if (viaPage) check(await triggeredLines.count() === 1, 'after a reload the log still has the TRIGGERED event');

  // no control when heald lists no trigger, or has no /api/v1/triggers at all
  for (const [what, reply] of [['[]', { status: 200, contentType: 'application/json', body: '[]' }],
    ['404', { status: 404, contentType: 'application/json', body: '{"error":"no such endpoint"}' }]]) {
    const p2 = await browser.newPage({ viewport: { width: 1500, height: 1000 } });
    await p2.route('**/api/v1/triggers', (route) => route.fulfill(reply));
    const listedHere = p2.waitForResponse((r) => r.url().endsWith('/api/v1/triggers'), { timeout: 10000 });
    await p2.goto(UI_URL);
    await listedHere;
    await p2.waitForSelector('#conn.on', { timeout: 10000 });
    await p2.waitForTimeout(200);
    check(await p2.locator('#trigger-box').isHidden(), `no "Trigger failure" when /api/v1/triggers answers ${what}`);
    await p2.close();
  }

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
