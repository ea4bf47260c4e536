// Drives the pages a charge run's e-mails link to, in real headless
// Chromium (Debian's `chromium`, through playwright-core), as a member on
// a 360-pixel-wide phone would: obol's 3-D Secure action page
// (/pay/actions/{token}: confirm, the bank's challenge, paid) and the
// card-update page (/pay/cards/{token}: type a card, save it).
//
//   node browser/charge-run-action-page.mjs   (input on stdin, one JSON per line)
// The first line: {"screenshots": "<dir>", "cases": [{"name", "url", "steps": [...]}]}.
// A step is one of
//   {"read": "<label>"}       what the page shows now, into `reads.<label>`
//   {"confirm": true}         click the action page's confirm button
//   {"card": "4242…"}         type the card into the stand-in and click Save
//   {"challenge": "complete" | "fail"}  click it on the bank's 3-D Secure page
//   {"expect": "paid" | "saved" | "card-ready" | "<data-state>"}
//                             wait for it: "paid" is the action page's paid
//                             section, "saved" the card page's saved one,
//                             "card-ready" the card form, anything else the
//                             action page's data-state ("error" records
//                             #obol-message in `errors_shown`)
//   {"reload": true}          load the page again (its status in `reload_status`)
//   {"pause": "<label>"}      print {"paused": "<label>", "case": name} and
//                             wait for a line on stdin
//   {"shot": "<file name>"}   a full-page screenshot (with any other key)
// Prints one JSON line per case: {"name", "ok", "status", "reads",
// "errors_shown", "challenge_url", "final_url", "console_errors",
// "failed_requests", "http_errors", "requests", "overflows", "error"?}.
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
  if (state === 'paid') {
    await page.waitForSelector('#obol-action-paid:not([hidden])', { state: 'visible', timeout: TIMEOUT });
  } else if (state === 'saved') {
    await page.waitForSelector('#obol-card-saved:not([hidden])', { state: 'visible', timeout: TIMEOUT });
  } else if (state === 'card-ready') {
    await page.waitForSelector('#obol-card-update[data-state="ready"]', { timeout: TIMEOUT });
  } else {
    await page.waitForSelector(`#obol-payment-action[data-state="${state}"]`, { timeout: TIMEOUT });
  }
}

function read(page) {
  return page.evaluate(() => {
    const el = (s) => document.querySelector(s);
    const clean = (e) => (e.innerText || e.textContent).replace(/\s+/g, ' ').trim();
    const text = (s) => { const e = el(s); return e ? clean(e) : null; };
    const visible = (s) => { const e = el(s); return !!e && !e.hidden && e.getClientRects().length > 0; };
    const button = el('#obol-confirm-button') || el('#obol-save-button');
    const root = el('#obol-payment-action') || el('#obol-card-update');
    return {
      state: root ? root.getAttribute('data-state') : null,
      message_state: (el('.obol-card[data-state]') || { getAttribute: () => null }).getAttribute('data-state'),
      business: text('#obol-business'),
      amount: text('#obol-amount'),
      description: text('#obol-description'),
      current: text('#obol-current'),
      message: text('#obol-message'),
      button: button ? { text: clean(button), disabled: button.disabled } : null,
      form_visible: visible('#obol-payment-action') || visible('#obol-card-update'),
      paid_visible: visible('#obol-action-paid'),
      paid_text: text('#obol-paid-text'),
      saved_visible: visible('#obol-card-saved'),
      saved_text: text('#obol-saved-text'),
      // The visible page's heading (the other section is hidden).
      heading: (Array.from(document.querySelectorAll('h1')).filter((h) => h.getClientRects().length > 0).map(clean)[0]) || null,
      url: window.location.href,
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
      if (step.confirm) { await page.click('#obol-confirm-button', { timeout: TIMEOUT }); }
      if (step.card) { await saveWith(page, step.card); }
      if (step.challenge) {
        // The bank's page (the sandbox's), which returns to obol's page.
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
    await page.screenshot({ path: join(input.screenshots, `charge-run-${c.name}-failure.png`), fullPage: true }).catch(() => {});
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
