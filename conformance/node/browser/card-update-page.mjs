// Drives obol's hosted card-update page (/pay/cards/{token}) in real
// headless Chromium (Debian's `chromium`, through playwright-core), as a
// member on a 360-pixel-wide phone would: see the card on file, type a new
// test card into the payment element, save it, see it saved.
//
//   node browser/card-update-page.mjs   (input on stdin, one JSON per line)
// The first line: {"screenshots": "<dir>", "cases": [{"name", "url", "steps": [...]}]}.
// A step is one of
//   {"read": "<label>"}       what the page shows now, into `reads.<label>`
//   {"card": "4242…"}         type the card into the stand-in and click Save
//   {"challenge": "complete" | "fail"}  click it on the bank's 3-D Secure page
//   {"expect": "ready" | "saved" | "error" | "<data-state>"}
//                             wait for it; "saved" is the saved section,
//                             "error" records #obol-message in `errors_shown`
//   {"reload": true}          load the page again (its status in `reload_status`)
//   {"pause": "<label>"}      print {"paused": "<label>", "case": name} and
//                             wait for a line on stdin
//   {"shot": "<file name>"}   a full-page screenshot (with any other key)
// Prints one JSON line per case: {"name", "ok", "status", "reads",
// "errors_shown", "console_errors", "failed_requests", "http_errors",
// "requests", "overflows", "error"?}.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { chromium } from 'playwright-core';

const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const input = JSON.parse((await lines.next()).value);
mkdirSync(input.screenshots, { recursive: true });
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
});
const TIMEOUT = 30000;

async function saveWith(page, card) {
  await page.waitForSelector('#obol-sb-number', { timeout: TIMEOUT });
  await page.fill('#obol-sb-number', '');
  await page.type('#obol-sb-number', card);
  await page.fill('#obol-sb-expiry', '12 / 34');
  await page.fill('#obol-sb-cvc', '123');
  await page.click('#obol-save-button', { timeout: TIMEOUT });
}

async function expectState(page, state) {
  if (state === 'saved') {
    await page.waitForSelector('#obol-card-saved:not([hidden])', { state: 'visible', timeout: TIMEOUT });
  } else {
    await page.waitForSelector(`#obol-card-update[data-state="${state}"]`, { timeout: TIMEOUT });
  }
}

function read(page) {
  return page.evaluate(() => {
    const el = (s) => document.querySelector(s);
    const clean = (e) => (e.innerText || e.textContent).replace(/\s+/g, ' ').trim();
    const text = (s) => { const e = el(s); return e ? clean(e) : null; };
    const visible = (s) => { const e = el(s); return !!e && !e.hidden && e.getClientRects().length > 0; };
    const root = el('#obol-card-update');
    const button = el('#obol-save-button');
    return {
      state: root ? root.getAttribute('data-state') : null,
      message_state: (el('.obol-card[data-state]') || { getAttribute: () => null }).getAttribute('data-state'),
      business: text('#obol-business'),
      current: text('#obol-current'),
      current_card: text('#obol-current-card'),
      message: text('#obol-message'),
      save_button: button ? { text: text('#obol-save-button'), disabled: button.disabled } : null,
      card_inputs: !!el('#obol-sb-number'),
      form_visible: visible('#obol-card-update'),
      saved_visible: visible('#obol-card-saved'),
      saved_text: text('#obol-saved-text'),
      heading: text('h1'),
      body: text('main'),
      scripts: Array.from(document.scripts).map((s) => s.getAttribute('src')),
    };
  });
}

let failed = 0;
for (const c of input.cases) {
  const context = await browser.newContext({ viewport: { width: 360, height: 740 } });
  const page = await context.newPage();
  const consoleErrors = [];
  const failedRequests = [];
  const httpErrors = [];
  const requests = [];
  page.on('console', (m) => {
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) { consoleErrors.push(m.text()); }
  });
  page.on('pageerror', (e) => consoleErrors.push(String(e)));
  page.on('request', (r) => requests.push(`${r.method()} ${r.url()}`));
  page.on('requestfailed', (r) => failedRequests.push(`${r.method()} ${r.url()}: ${r.failure() && r.failure().errorText}`));
  page.on('response', (r) => { if (r.status() >= 400) { httpErrors.push(`${r.status()} ${r.request().method()} ${r.url()}`); } });
  const result = { name: c.name, ok: false, reads: {}, errors_shown: [] };
  try {
    const response = await page.goto(c.url, { waitUntil: 'load' });
    result.status = response.status();
    for (const step of c.steps) {
      if (step.reload) {
        const r = await page.reload({ waitUntil: 'load' });
        result.reload_status = r.status();
      }
      if (step.card) { await saveWith(page, step.card); }
      if (step.challenge) {
        // The bank's page (the sandbox's), which returns to the card-update page.
        await page.waitForSelector(`#${step.challenge}`, { timeout: TIMEOUT });
        result.challenge_url = page.url();
        if (step.shot) { await page.screenshot({ path: join(input.screenshots, step.shot), fullPage: true }); }
        await page.click(`#${step.challenge}`);
        continue;
      }
      if (step.expect) {
        await expectState(page, step.expect);
        if (step.expect === 'error') { result.errors_shown.push(await page.textContent('#obol-message')); }
      }
      if (step.read) { result.reads[step.read] = await read(page); }
      if (step.shot) { await page.screenshot({ path: join(input.screenshots, step.shot), fullPage: true }); }
      if (step.pause) {
        console.log(JSON.stringify({ paused: step.pause, case: c.name }));
        const resumed = await lines.next();
        if (resumed.done) { throw new Error(`stdin closed while paused at ${step.pause}`); }
      }
    }
    result.final_url = page.url();
    result.overflows = await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth);
    result.ok = true;
  } catch (e) {
    failed += 1;
    result.error = String(e && e.message || e);
    result.html = (await page.content().catch(() => '')).slice(0, 4000);
    await page.screenshot({ path: join(input.screenshots, `card-update-${c.name}-failure.png`), fullPage: true }).catch(() => {});
  }
  result.console_errors = consoleErrors;
  result.failed_requests = failedRequests;
  result.http_errors = httpErrors;
  result.requests = requests;
  console.log(JSON.stringify(result));
  await context.close();
}
await browser.close();
process.exit(failed ? 1 : 0);
