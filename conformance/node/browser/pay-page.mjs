// Drives obol's hosted payment page in real headless Chromium (Debian's
// `chromium`, through playwright-core), as a customer on a 360-pixel-wide
// phone would: type a test card, pay, pass 3-D Secure, see a decline.
//
//   node browser/pay-page.mjs < cases.json
// cases.json: {"screenshots": "<dir>", "cases": [{"name", "url", "steps": [...]}]}
// A step is {"card": "4242…", "submit"?: "<selector>"} (type and pay),
// {"wait": "<selector>"}, {"expect": "paid" | "error" |
// "expired" | "used" | "unknown"}, {"challenge": "complete" | "fail"} (on
// the bank's page) or {"shot": "<file name>"}. Prints one JSON line per
// case: {"name", "ok", "status", "message", "errors_shown"?, "error"?}.
import { readFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const input = JSON.parse(readFileSync(0, 'utf8'));
mkdirSync(input.screenshots, { recursive: true });
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
});

async function payWith(page, card, submit) {
  await page.fill('#obol-sb-number', '');
  await page.fill('#obol-sb-number', card);
  await page.fill('#obol-sb-expiry', '12 / 34');
  await page.fill('#obol-sb-cvc', '123');
  // By keyboard, as a customer without a mouse would.
  await page.focus(submit || '#obol-pay-button');
  await page.keyboard.press('Enter');
}

async function expectState(page, state) {
  if (state === 'paid') {
    await page.waitForSelector('#obol-paid:not([hidden])', { timeout: 20000 });
  } else if (state === 'error') {
    await page.waitForSelector('#obol-pay[data-state="error"]', { timeout: 20000 });
  } else {
    await page.waitForSelector(`[data-state="${state}"]`, { timeout: 20000 });
  }
}

let failed = 0;
for (const c of input.cases) {
  const context = await browser.newContext({ viewport: { width: 360, height: 740 } });
  const page = await context.newPage();
  const consoleErrors = [];
  // Script errors and CSP refusals; a declined card's 402 or a missing
  // favicon on the bank's page are network answers, not page faults.
  page.on('console', (m) => {
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) { consoleErrors.push(m.text()); }
  });
  page.on('pageerror', (e) => consoleErrors.push(String(e)));
  const result = { name: c.name, ok: false };
  try {
    const response = await page.goto(c.url, { waitUntil: 'load' });
    result.status = response.status();
    for (const step of c.steps) {
      if (step.card) { await payWith(page, step.card, step.submit); }
      if (step.wait) { await page.waitForSelector(step.wait, { timeout: 20000 }); }
      if (step.challenge) {
        await page.waitForSelector(`#${step.challenge}`, { timeout: 20000 });
        if (step.shot) { await page.screenshot({ path: join(input.screenshots, step.shot), fullPage: true }); }
        await page.click(`#${step.challenge}`);
        continue;
      }
      if (step.expect) {
        await expectState(page, step.expect);
        if (step.expect === 'error') {
          result.errors_shown = result.errors_shown || [];
          result.errors_shown.push(await page.textContent('#obol-message'));
        }
      }
      if (step.shot) { await page.screenshot({ path: join(input.screenshots, step.shot), fullPage: true }); }
    }
    // Read now, without waiting: a state page has no form.
    const text = (sel) => page.evaluate((s) => { const e = document.querySelector(s); return e ? e.textContent : null; }, sel);
    result.message = (await text('#obol-message')) || (await text('h1'));
    result.order_number = await text('#obol-order-number');
    result.host_result = await text('#result');
    // A page wider than the screen would scroll sideways on a phone.
    result.overflows = await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth);
    result.console_errors = consoleErrors;
    result.ok = true;
  } catch (e) {
    failed += 1;
    result.error = String(e && e.message || e);
    result.html = (await page.content().catch(() => '')).slice(0, 2000);
    await page.screenshot({ path: join(input.screenshots, `${c.name}-failure.png`), fullPage: true }).catch(() => {});
  }
  console.log(JSON.stringify(result));
  await context.close();
}
await browser.close();
process.exit(failed ? 1 : 0);
