// Drives obol's admin dashboard in real headless Chromium (Debian's
// `chromium`, through playwright-core), as an operator would.
//
//   node browser/admin-dashboard.mjs < input.json
// input.json: {"screenshots", "base", "password", "email", "payment_id",
// "event_id", "event_status", "run_id", "refunded", "handoff"}. For the
// expired session it writes its session cookie to handoff/session and
// waits for handoff/expired (the test ages the session meanwhile). Prints one JSON line per step:
// {"name", "ok", ...facts} and exits non-zero when a step failed.
import { existsSync, readFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const input = JSON.parse(readFileSync(0, 'utf8'));
mkdirSync(input.screenshots, { recursive: true });
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
});
const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, timezoneId: 'Europe/Berlin' });
const page = await context.newPage();
const pageErrors = [];
page.on('console', (m) => { if (m.type() === 'error') { pageErrors.push(m.text()); } });
page.on('pageerror', (e) => pageErrors.push(String(e)));
const shot = (name) => page.screenshot({ path: join(input.screenshots, name), fullPage: true });
const text = (sel) => page.textContent(sel);
let failed = 0;

async function step(name, fn) {
  const result = { name, ok: false };
  try {
    Object.assign(result, await fn());
    result.ok = true;
  } catch (e) {
    result.error = String(e);
    failed += 1;
    await shot(`failed-${name}.png`).catch(() => {});
  }
  console.log(JSON.stringify(result));
}

await step('wrong_password', async () => {
  await page.goto(`${input.base}/admin/payments`);
  await page.waitForSelector('#password');
  await page.fill('#password', 'not the password');
  await page.click('#sign-in');
  await page.waitForSelector('#error');
  await shot('login-refused.png');
  // The refused sign-in is a 401 page, which Chromium logs as a failed
  // resource load: expected here, an error anywhere else.
  const expected = pageErrors.filter((e) => e.includes('status of 401'));
  if (expected.length !== 1) { throw new Error(`expected one 401, saw: ${pageErrors.join('\n')}`); }
  pageErrors.length = 0;
  return { code: await page.getAttribute('#error', 'data-code'), url: page.url() };
});

await step('sign_in', async () => {
  await page.fill('#password', input.password);
  await page.click('#sign-in');
  await page.waitForSelector('#payments-plot');
  await shot('overview.png');
  return { title: await text('h1') };
});

// First after signing in: the event's next automatic retry is 30 s away.
await step('replay_event', async () => {
  await page.click('nav >> text=Webhook inbox');
  await page.click(`#filter-${input.event_status}`);
  await page.waitForSelector(`tr[data-id="${input.event_id}"]`);
  await shot('webhook-inbox.png');
  await page.click(`tr[data-id="${input.event_id}"] a`);
  await page.waitForSelector('#raw');
  const reason = (await text('#reason')).trim();
  const raw = JSON.parse(await text('#raw'));
  await shot('webhook-event.png');
  await page.click('#replay');
  await page.waitForSelector('#notice');
  await shot('webhook-event-replayed.png');
  return { reason, raw_type: raw.type, notice: (await text('#notice')).trim() };
});

await step('find_by_email', async () => {
  await page.click('nav >> text=Payments');
  await page.fill('#q', input.email);
  await page.click('#search');
  await page.waitForSelector(`tr[data-id="${input.payment_id}"]`);
  const rows = await page.locator('#payments tbody tr').count();
  // Times are shown in the viewer's zone, not as the UTC text served.
  const shown = await page.textContent('#payments tbody tr time');
  await shot('payments-search.png');
  return { rows, local_time: !shown.includes('UTC') };
});

await step('timeline', async () => {
  await page.click(`a[href="/admin/payments/${input.payment_id}"]`);
  await page.waitForSelector('#timeline');
  const entries = await page.locator('#timeline li').count();
  await shot('payment.png');
  return { entries, status: (await text('#status')).trim() };
});

await step('refund', async () => {
  const before = await page.locator('#timeline li').count();
  await page.fill('#refund-amount', '10.00');
  await page.selectOption('#reason', 'requested_by_customer');
  await page.click('#refund');
  await page.waitForSelector('#notice');
  const after = await page.locator('#timeline li').count();
  const notice = (await text('#notice')).trim();
  // The payment's refunded amount is what Stripe reports (charge.refunded
  // arrives by webhook): reload, as an operator would, until it shows.
  const deadline = Date.now() + 20000;
  let refunded = (await text('#refunded')).trim();
  while (refunded !== input.refunded && Date.now() < deadline) {
    await page.waitForTimeout(250);
    await page.reload();
    refunded = (await text('#refunded')).trim();
  }
  await shot('payment-refunded.png');
  return { before, after, notice, refunded };
});

await step('retry_dead_job', async () => {
  await page.click('nav >> text=Jobs');
  await page.click('#filter-dead');
  await page.waitForSelector('#jobs button.retry');
  await shot('jobs-dead.png');
  await page.click('#jobs button.retry');
  await page.waitForSelector('#notice');
  await shot('jobs-retried.png');
  return { notice: (await text('#notice')).trim() };
});

await step('notifications', async () => {
  await page.click('nav >> text=Notifications');
  // The list is in the page even when empty (then zero-height, "hidden").
  await page.waitForSelector('#endpoints', { state: 'attached' });
  await shot('notifications.png');
  return {};
});

await step('charge_run', async () => {
  await page.click('nav >> text=Charge runs');
  await page.waitForSelector(`tr[data-id="${input.run_id}"]`);
  await shot('charge-runs.png');
  await page.click(`tr[data-id="${input.run_id}"] a`);
  await page.waitForSelector('#run');
  const first = await page.getAttribute('#progress svg', 'data-progress');
  await page.waitForSelector('#progress svg[data-progress="100"]', { timeout: 30000 });
  await page.waitForSelector('#run[data-status="completed"]', { timeout: 30000 });
  await shot('charge-run.png');
  return { first: Number(first), last: 100, status: (await text('#run-status')).trim() };
});

await step('more_pages', async () => {
  const rows = {};
  for (const [label, file, table] of [
    ['Orders', 'orders.png', '#orders'],
    ['Customers', 'customers.png', '#customers, #no-customers'],
    ['Disputes', 'disputes.png', '#disputes, #no-disputes'],
    ['Invoices', 'invoices.png', '#invoices, #no-invoices'],
    ['Organisations', 'organizations.png', '#organizations, #no-organizations'],
  ]) {
    await page.click(`nav >> text=${label}`);
    await page.waitForSelector(table, { state: 'attached' });
    await shot(file);
    rows[label] = await page.locator('main table:first-of-type tbody tr').count();
  }
  // The order of the payment found before, by its e-mail.
  await page.click('nav >> text=Orders');
  await page.fill('#q', input.email);
  await page.click('#search');
  await page.waitForSelector('#orders tbody tr a');
  await page.click('#orders tbody tr a');
  await page.waitForSelector('#timeline', { state: 'attached' });
  const payments = await page.locator(`#payments tr[data-id="${input.payment_id}"]`).count();
  await shot('order.png');
  return { rows, order_payments: payments };
});

await step('form_without_csrf', async () => {
  // The refund form with its CSRF token taken out, as a forged
  // cross-site form would be: refused, and no refund made.
  await page.goto(`${input.base}/admin/payments/${input.payment_id}`);
  await page.waitForSelector('#refund');
  const refunded = (await text('#refunded')).trim();
  const removed = await page.evaluate(() => {
    const inputs = document.querySelectorAll('form input[name="csrf"]');
    inputs.forEach((e) => e.remove());
    return inputs.length;
  });
  await page.fill('#refund-amount', '1.00');
  await page.click('#refund');
  await page.waitForSelector('#error');
  await shot('form-without-csrf.png');
  const code = await page.getAttribute('#error', 'data-code');
  const expected = pageErrors.filter((e) => e.includes('status of 403'));
  if (expected.length !== 1) { throw new Error(`expected one 403, saw: ${pageErrors.join('\n')}`); }
  pageErrors.length = 0;
  await page.goto(`${input.base}/admin/payments/${input.payment_id}`);
  const after = (await text('#refunded')).trim();
  return { removed, code, refunded_before: refunded, refunded_after: after };
});

await step('no_page_errors', async () => {
  if (pageErrors.length) { throw new Error(pageErrors.join('\n')); }
  return {};
});

await step('expired_session', async () => {
  const cookie = (await context.cookies()).find((c) => c.name === 'obol_admin');
  if (!cookie) { throw new Error('no session cookie'); }
  writeFileSync(join(input.handoff, 'session'), cookie.value);
  const deadline = Date.now() + 30000;
  while (!existsSync(join(input.handoff, 'expired'))) {
    if (Date.now() > deadline) { throw new Error('the session was not aged'); }
    await new Promise((r) => setTimeout(r, 50));
  }
  await page.goto(`${input.base}/admin/payments`);
  await page.waitForSelector('#password');
  await shot('session-ended.png');
  return {
    url: new URL(page.url()).pathname + new URL(page.url()).search,
    says: (await page.textContent('main')).includes('Your session has ended'),
    http_only: cookie.httpOnly,
    same_site: cookie.sameSite,
  };
});

await browser.close();
process.exit(failed ? 1 : 0);
