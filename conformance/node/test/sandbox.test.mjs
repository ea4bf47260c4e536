// Stripe's official Node SDK against the obol sandbox.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { test } from 'node:test';
import Stripe from 'stripe';

import { answerChallenge, client, receiver } from './helpers.mjs';

const stripe = client();

test('customer lifecycle', async () => {
  const cus = await stripe.customers.create({ email: 'jo@example.com', metadata: { a: '1' } });
  assert.match(cus.id, /^cus_[A-Za-z0-9]{24}$/);
  const up = await stripe.customers.update(cus.id, { name: 'Jo', metadata: { a: '' } });
  assert.equal(up.name, 'Jo');
  assert.deepEqual(up.metadata, {});
  const del = await stripe.customers.del(cus.id);
  assert.equal(del.deleted, true);
  await assert.rejects(stripe.customers.retrieve('cus_nope'), (e) => e.type === 'StripeInvalidRequestError' && e.statusCode === 404);
});

test('payment methods: attach, list, default', async () => {
  const cus = await stripe.customers.create();
  const pm = await stripe.paymentMethods.create({
    type: 'card',
    card: { number: '4242424242424242', exp_month: 12, exp_year: 2040, cvc: '123' },
  });
  assert.equal(pm.card.last4, '4242');
  await stripe.paymentMethods.attach(pm.id, { customer: cus.id });
  await stripe.paymentMethods.attach('pm_card_amex', { customer: cus.id });
  const updated = await stripe.customers.update(cus.id, { invoice_settings: { default_payment_method: pm.id } });
  assert.equal(updated.invoice_settings.default_payment_method, pm.id);
  const list = await stripe.customers.listPaymentMethods(cus.id, { type: 'card' });
  assert.equal(list.data.length, 2);
  assert.equal(list.object, 'list');
});

test('manual capture, partial capture and partial refund', async () => {
  const pi = await stripe.paymentIntents.create({
    amount: 5000,
    currency: 'eur',
    payment_method: 'pm_card_visa',
    capture_method: 'manual',
    confirm: true,
  });
  assert.equal(pi.status, 'requires_capture');
  const captured = await stripe.paymentIntents.capture(pi.id, { amount_to_capture: 4500 });
  assert.equal(captured.status, 'succeeded');
  assert.equal(captured.amount_received, 4500);
  const re = await stripe.refunds.create({ payment_intent: pi.id, amount: 500 });
  assert.equal(re.status, 'succeeded');
  const again = await stripe.refunds.create({ charge: captured.latest_charge, amount: 1000 });
  assert.equal(again.amount, 1000);
  const charge = await stripe.charges.retrieve(captured.latest_charge);
  assert.equal(charge.amount_refunded, 500 + 500 + 1000);
  await assert.rejects(
    stripe.refunds.create({ payment_intent: pi.id, amount: 4000 }),
    (e) => e.type === 'StripeInvalidRequestError' && e.param === 'amount',
  );
  await assert.rejects(
    stripe.paymentIntents.cancel(pi.id),
    (e) => e.code === 'payment_intent_unexpected_state' && e.raw.payment_intent.id === pi.id,
  );
});

for (const [card, code, declineCode] of [
  ['pm_card_visa_chargeDeclined', 'card_declined', 'generic_decline'],
  ['pm_card_visa_chargeDeclinedInsufficientFunds', 'card_declined', 'insufficient_funds'],
  ['pm_card_visa_chargeDeclinedLostCard', 'card_declined', 'lost_card'],
  ['pm_card_chargeDeclinedIncorrectCvc', 'incorrect_cvc', undefined],
]) {
  test(`decline ${card} is a StripeCardError`, async () => {
    await assert.rejects(
      stripe.paymentIntents.create({ amount: 1000, currency: 'usd', payment_method: card, confirm: true }),
      (e) => {
        assert.ok(e instanceof Stripe.errors.StripeCardError);
        assert.equal(e.statusCode, 402);
        assert.equal(e.code, code);
        assert.equal(e.decline_code || undefined, declineCode); // the SDK reports a missing decline_code as ''
        assert.equal(e.raw.payment_intent.status, 'requires_payment_method');
        return true;
      },
    );
  });
}

test('3-D Secure: requires_action, complete the challenge, succeeded', async () => {
  const pi = await stripe.paymentIntents.create({
    amount: 2000,
    currency: 'eur',
    payment_method: 'pm_card_threeDSecure2Required',
    confirm: true,
    return_url: 'https://shop.example/back',
  });
  assert.equal(pi.status, 'requires_action');
  assert.equal(pi.next_action.type, 'redirect_to_url');
  const res = await answerChallenge(pi.next_action.redirect_to_url.url, 'complete');
  assert.equal(res.status, 303);
  assert.ok(res.headers.get('location').startsWith(`https://shop.example/back?payment_intent=${pi.id}`));
  const done = await stripe.paymentIntents.retrieve(pi.id);
  assert.equal(done.status, 'succeeded');

  const si = await stripe.setupIntents.create({
    payment_method: 'pm_card_authenticationRequired',
    confirm: true,
    return_url: 'https://shop.example/saved',
  });
  assert.equal(si.status, 'requires_action');
  await answerChallenge(si.next_action.redirect_to_url.url, 'fail');
  const failed = await stripe.setupIntents.retrieve(si.id);
  assert.equal(failed.status, 'requires_payment_method');
  assert.equal(failed.last_setup_error.code, 'setup_intent_authentication_failure');
});

test('idempotent replay and misuse', async () => {
  const key = randomUUID();
  const a = await stripe.customers.create({ email: 'i@example.com' }, { idempotencyKey: key });
  const b = await stripe.customers.create({ email: 'i@example.com' }, { idempotencyKey: key });
  assert.equal(a.id, b.id);
  assert.equal(b.lastResponse.headers['idempotent-replayed'], 'true');
  await assert.rejects(
    stripe.customers.create({ email: 'j@example.com' }, { idempotencyKey: key }),
    (e) => e instanceof Stripe.errors.StripeIdempotencyError,
  );
});

test('pagination and auto-pagination', async () => {
  const cus = await stripe.customers.create();
  const ids = [];
  for (let n = 0; n < 11; n++) {
    ids.push((await stripe.paymentIntents.create({ amount: 1000 + n, currency: 'eur', customer: cus.id })).id);
  }
  ids.reverse();
  const page = await stripe.paymentIntents.list({ customer: cus.id, limit: 4 });
  assert.equal(page.has_more, true);
  assert.deepEqual(page.data.map((p) => p.id), ids.slice(0, 4));
  const all = [];
  for await (const pi of stripe.paymentIntents.list({ customer: cus.id, limit: 4 })) all.push(pi.id);
  assert.deepEqual(all, ids);
  const viaArray = await stripe.paymentIntents.list({ customer: cus.id, limit: 3 }).autoPagingToArray({ limit: 100 });
  assert.equal(viaArray.length, 11);
});

test('webhook deliveries verify with stripe.webhooks.constructEvent', async () => {
  const rx = await receiver();
  const we = await stripe.webhookEndpoints.create({ url: rx.url, enabled_events: ['payment_intent.succeeded', 'charge.refunded'] });
  try {
    const pi = await stripe.paymentIntents.create({ amount: 777, currency: 'eur', payment_method: 'pm_card_visa', confirm: true });
    await stripe.refunds.create({ payment_intent: pi.id });
    const got = await rx.waitFor((g) => g.length >= 2);
    const types = got.map(({ headers, body }) => {
      const event = stripe.webhooks.constructEvent(body, headers['stripe-signature'], we.secret);
      assert.throws(() => stripe.webhooks.constructEvent(body, headers['stripe-signature'], 'whsec_wrong'));
      return event.type;
    });
    assert.deepEqual(types.sort(), ['charge.refunded', 'payment_intent.succeeded']);
  } finally {
    await stripe.webhookEndpoints.del(we.id);
    await rx.close();
  }
});

test('signature made by generateTestHeaderString verifies', () => {
  const payload = JSON.stringify({ id: 'evt_test', object: 'event' });
  const secret = 'whsec_' + 'x'.repeat(32);
  const header = stripe.webhooks.generateTestHeaderString({ payload, secret });
  const event = stripe.webhooks.constructEvent(payload, header, secret);
  assert.equal(event.id, 'evt_test');
});
