// Shared setup: a Stripe client pointed at STRIPE_API_BASE and a local
// webhook receiver.
import http from 'node:http';
import Stripe from 'stripe';

export const API_KEY = 'sk_test_obolconformancenode';

export function client() {
  const base = process.env.STRIPE_API_BASE;
  if (!base) throw new Error('STRIPE_API_BASE is not set; run conformance/run.sh');
  const url = new URL(base);
  return new Stripe(API_KEY, {
    host: url.hostname,
    port: Number(url.port),
    protocol: url.protocol.replace(':', ''),
    maxNetworkRetries: 2,
  });
}

export async function receiver() {
  const got = [];
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      got.push({ headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      res.writeHead(200).end('ok');
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}/hook`,
    got,
    async waitFor(pred, ms = 10000) {
      const deadline = Date.now() + ms;
      while (Date.now() < deadline) {
        if (pred(got)) return got;
        await new Promise((r) => setTimeout(r, 50));
      }
      throw new Error(`timed out with ${got.length} deliveries`);
    },
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

/** Fetches the 3-D Secure page and submits one of its forms, like a browser. */
export async function answerChallenge(url, action) {
  const html = await (await fetch(url)).text();
  if (!html.includes('id="complete"') || !html.includes('id="fail"')) throw new Error('no challenge buttons');
  const formAction = html.match(/<form method="post" action="([^"]+)"/)[1];
  const token = html.match(/name="token" value="([^"]+)"/)[1];
  const target = new URL(formAction, url);
  return fetch(target, {
    method: 'POST',
    body: new URLSearchParams({ token, action }),
    redirect: 'manual',
  });
}
