/*
 * <obol-checkout>: obol's checkout for a host storefront's own page.
 *
 *   <script src="https://obol.example/assets/obol-checkout.js"
 *           integrity="sha384-…" crossorigin="anonymous"></script>
 *   <obol-checkout obol-url="https://obol.example" customer-token="obol_ct_…"
 *                  amount="4999" currency="eur"></obol-checkout>
 *
 * It creates the pre-order PaymentIntent with the customer token the host
 * backend minted, mounts the payment element in the light DOM (Stripe's
 * iframes need it; every class starts with obol-co-), confirms the card
 * and dispatches `payment-success` or `payment-error` (bubbling, composed)
 * with `detail.paymentIntentId`, for the host's order call
 * (`POST /v1/orders` with `payment_reference`). It loads Stripe.js from
 * js.stripe.com, or obol's offline stand-in when obol runs on its sandbox.
 * The host's origin must be in obol's `http.cors_allowed_origins`.
 */
(function () {
  'use strict';
  if (window.customElements.get('obol-checkout')) { return; }

  function loadScript(src) {
    return new Promise(function (resolve, reject) {
      var s = document.createElement('script');
      s.src = src;
      s.onload = resolve;
      s.onerror = function () { reject(new Error('could not load ' + src)); };
      document.head.appendChild(s);
    });
  }

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    e.className = cls;
    if (text) { e.textContent = text; }
    return e;
  }

  class ObolCheckout extends HTMLElement {
    connectedCallback() {
      if (this.started) { return; }
      this.started = true;
      this.classList.add('obol-co');
      this.start().catch((e) => this.fail({ type: 'api_connection_error', message: String(e && e.message || e) }));
    }

    async start() {
      var base = String(this.getAttribute('obol-url') || '').replace(/\/$/, '');
      var token = this.getAttribute('customer-token');
      var amount = Number(this.getAttribute('amount'));
      var currency = this.getAttribute('currency');
      this.message = el('p', 'obol-co-message');
      this.message.setAttribute('role', 'alert');
      var health = await fetch(base + '/health').then(function (r) { return r.json(); });
      var sandbox = health.stripe && health.stripe.mode === 'sandbox';
      if (!window.Stripe) {
        await loadScript(sandbox ? base + '/assets/stripe-sandbox.js' : 'https://js.stripe.com/v3/');
      }
      var r = await fetch(base + '/v1/payment-intents', {
        method: 'POST',
        headers: { 'Authorization': 'Bearer ' + token, 'Content-Type': 'application/json' },
        body: JSON.stringify({ amount: amount, currency: currency })
      });
      var intent = await r.json();
      if (!r.ok) { return this.fail(intent.error || { message: 'The payment could not be started.' }); }
      this.intent = intent;
      this.stripe = sandbox
        ? window.Stripe(intent.publishable_key, { apiBase: health.stripe.api_base })
        : window.Stripe(intent.publishable_key);
      this.elements = this.stripe.elements({ clientSecret: intent.client_secret });
      var mount = el('div', 'obol-co-element');
      this.button = el('button', 'obol-co-pay', 'Pay');
      this.button.type = 'button';
      this.appendChild(mount);
      this.appendChild(this.button);
      this.appendChild(this.message);
      this.elements.create('payment').mount(mount);
      this.button.addEventListener('click', () => this.pay());
    }

    async pay() {
      this.button.disabled = true;
      this.message.textContent = 'Processing your payment…';
      var result = await this.stripe.confirmPayment({
        elements: this.elements,
        confirmParams: { return_url: window.location.href },
        redirect: 'if_required'
      });
      if (result.error) {
        this.button.disabled = false;
        return this.fail(result.error);
      }
      var status = result.paymentIntent.status;
      if (status === 'requires_capture' || status === 'succeeded' || status === 'processing') {
        this.message.textContent = '';
        this.dispatchEvent(new CustomEvent('payment-success', {
          bubbles: true, composed: true,
          detail: { paymentIntentId: this.intent.id, status: status }
        }));
      } else {
        this.button.disabled = false;
        this.fail({ type: 'card_error', message: 'The payment did not go through.' });
      }
    }

    fail(error) {
      this.message.textContent = error.message || 'The payment did not go through.';
      this.dispatchEvent(new CustomEvent('payment-error', {
        bubbles: true, composed: true,
        detail: { paymentIntentId: this.intent && this.intent.id, error: error }
      }));
    }
  }

  window.customElements.define('obol-checkout', ObolCheckout);
})();
