// Drives obol's hosted invoice page (/pay/invoices/{token}) in real
// headless Chromium (Debian's `chromium`, through playwright-core), as a
// customer on a 360-pixel-wide phone would: read the invoice, type a test
// card into the payment element, pay, see a decline, see it paid.
//
//   node browser/invoice-page.mjs   (input on stdin, one JSON per line)
// The first line: {"screenshots": "<dir>", "cases": [{"name", "url", "steps": [...]}]}.
// A step is one of
//   {"read": "<label>"}       what the page shows now, into `reads.<label>`
//   {"card": "4242…"}         type the card into the stand-in and click Pay
//   {"challenge": "complete" | "fail"}  click it on the bank's 3-D Secure page
//   {"expect": "ready" | "paid" | "error" | "<data-state>"}
//                             wait for it; "paid" is the script's thank-you
//                             section or the page rendered paid, "error"
//                             records #obol-message in `errors_shown`
//   {"reload": true}          load the page again (its status in `reload_status`)
//   {"pause": "<label>"}      print {"paused": "<label>", "case": name} and
//                             wait for a line on stdin (the caller checks
//                             obol's side meanwhile)
//   {"shot": "<file name>"}   a full-page screenshot (with any other key)
// Prints one JSON line per case: {"name", "ok", "status", "reads",
// "final", "errors_shown", "console_errors", "failed_requests",
// "http_errors", "requests", "overflows", "error"?}.
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

async function payWith(page, card) {
  await page.waitForSelector('#obol-sb-number', { timeout: TIMEOUT });
  await page.fill('#obol-sb-number', '');
  await page.fill('#obol-sb-number', card);
  await page.fill('#obol-sb-expiry', '12 / 34');
  await page.fill('#obol-sb-cvc', '123');
  await page.click('#obol-pay-button', { timeout: TIMEOUT });
}

async function expectState(page, state) {
  if (state === 'paid') {
    // The script's thank-you once obol recorded the payment, or the page
    // rendered paid (coming back from the bank's page after obol saw it).
    await page.waitForSelector('#obol-invoice-paid:not([hidden]), #obol-invoice[data-state="paid"]', { state: 'visible', timeout: TIMEOUT });
  } else {
    await page.waitForSelector(`#obol-invoice[data-state="${state}"]`, { timeout: TIMEOUT });
  }
}

// What the customer sees, read at once (a state page has no form).
function read(page) {
  return page.evaluate(() => {
    const el = (s) => document.querySelector(s);
    const clean = (e) => (e.innerText || e.textContent).replace(/\s+/g, ' ').trim();
    // How many lines an element's text takes (a box per line).
    const linesOf = (s) => {
      const e = el(s);
      if (!e) { return null; }
      const range = document.createRange();
      range.selectNodeContents(e);
      return new Set(Array.from(range.getClientRects()).map((r) => Math.round(r.top))).size;
    };
    const text = (s) => { const e = el(s); return e ? clean(e) : null; };
    const cells = (row) => Array.from(row.cells).map(clean);
    const visible = (s) => { const e = el(s); return !!e && !e.hidden && e.getClientRects().length > 0; };
    const root = el('#obol-invoice');
    const button = el('#obol-pay-button');
    return {
      state: root ? root.getAttribute('data-state') : null,
      number: text('#obol-invoice-number'),
      business: text('#obol-business'),
      total: text('#obol-total'),
      fee_line: el('#obol-fee-line') && cells(el('#obol-fee-line')),
      due_date: text('#obol-due-date'),
      due_datetime: el('#obol-due-date') && el('#obol-due-date').getAttribute('datetime'),
      status_text: text('#obol-status'),
      due_date_lines: linesOf('#obol-due-date'),
      status_lines: linesOf('#obol-status'),
      memo: text('.obol-memo'),
      lines: Array.from(document.querySelectorAll('.obol-line:not(.obol-fee-line)')).map(cells),
      message: text('#obol-message'),
      pay_button: button ? { text: text('#obol-pay-button'), disabled: button.disabled } : null,
      card_inputs: !!el('#obol-sb-number'),
      paid_text: text('#obol-paid'),
      void_text: text('#obol-void'),
      invoice_visible: visible('#obol-invoice'),
      thank_you_visible: visible('#obol-invoice-paid'),
      thank_you: text('#obol-invoice-paid'),
      heading: text('h1'),
      scripts: Array.from(document.scripts).map((s) => s.getAttribute('src')),
      stripe_loaded: typeof window.Stripe === 'function',
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
  // Script errors and CSP refusals; a declined card's 402 is a network
  // answer (in `http_errors`), not a page fault.
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
      if (step.card) { await payWith(page, step.card); }
      if (step.challenge) {
        // The bank's page (the sandbox's), which returns to the invoice.
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
    result.final = await read(page);
    result.final_url = page.url();
    // A page wider than the screen would scroll sideways on a phone.
    result.overflows = await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth);
    result.ok = true;
  } catch (e) {
    failed += 1;
    result.error = String(e && e.message || e);
    result.html = (await page.content().catch(() => '')).slice(0, 4000);
    await page.screenshot({ path: join(input.screenshots, `invoice-${c.name}-failure.png`), fullPage: true }).catch(() => {});
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
