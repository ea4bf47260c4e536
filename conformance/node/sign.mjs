// Prints {payload, header, secret}: a Stripe-Signature header made by the
// official SDK's generateTestHeaderString, for obol's verifier tests.
// Usage: node sign.mjs [payload-json] [secret]
import Stripe from 'stripe';

const payload = process.argv[2] ?? JSON.stringify({ id: 'evt_sign_test', object: 'event', type: 'payment_intent.succeeded' });
const secret = process.argv[3] ?? 'whsec_obolsigntestsecret000000000000';
const stripe = new Stripe('sk_test_unused');
const header = stripe.webhooks.generateTestHeaderString({ payload, secret });
process.stdout.write(JSON.stringify({ payload, header, secret }) + '\n');
