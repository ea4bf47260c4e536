/*
 * obol's offline stand-in for Stripe.js, loaded by obol's pages in sandbox
 * mode instead of https://js.stripe.com/v3/. The same small surface the
 * pages use: Stripe(pk), stripe.elements({clientSecret}),
 * elements.create('payment'), element.mount(), stripe.confirmPayment(),
 * stripe.confirmSetup(), stripe.handleNextAction(),
 * stripe.retrievePaymentIntent(), stripe.retrieveSetupIntent(). The
 * elements of a SetupIntent's client secret save the card (setup mode).
 *
 * The card fields are plain inputs in the light DOM (class prefix
 * obol-sb-); what the customer types is posted to the sandbox's Stripe API
 * with the publishable key and the intent's (or SetupIntent's) client
 * secret, as Stripe.js posts to api.stripe.com. It never goes to obol. 3-D Secure redirects to
 * the sandbox's challenge page, which returns to `return_url`.
 */
(function () {
  'use strict';

  function intentId(clientSecret) {
    return String(clientSecret || '').split('_secret_')[0];
  }

  function field(id, label, attrs) {
    var wrap = document.createElement('label');
    wrap.className = 'obol-sb-field';
    wrap.htmlFor = id;
    var text = document.createElement('span');
    text.className = 'obol-sb-label';
    text.textContent = label;
    var input = document.createElement('input');
    input.id = id;
    input.className = 'obol-sb-input';
    Object.keys(attrs).forEach(function (k) { input.setAttribute(k, attrs[k]); });
    wrap.appendChild(text);
    wrap.appendChild(input);
    return { wrap: wrap, input: input };
  }

  function PaymentElement() {
    this.inputs = null;
  }

  PaymentElement.prototype.mount = function (target) {
    var host = typeof target === 'string' ? document.querySelector(target) : target;
    if (!host) { throw new Error('obol sandbox Stripe.js: nothing to mount on: ' + target); }
    var box = document.createElement('div');
    box.className = 'obol-sb-payment';
    var number = field('obol-sb-number', 'Card number', {
      inputmode: 'numeric', autocomplete: 'cc-number', placeholder: '4242 4242 4242 4242', required: ''
    });
    var row = document.createElement('div');
    row.className = 'obol-sb-row';
    var expiry = field('obol-sb-expiry', 'Expiry (MM / YY)', {
      inputmode: 'numeric', autocomplete: 'cc-exp', placeholder: 'MM / YY', required: ''
    });
    var cvc = field('obol-sb-cvc', 'Security code', {
      inputmode: 'numeric', autocomplete: 'cc-csc', placeholder: 'CVC', required: ''
    });
    row.appendChild(expiry.wrap);
    row.appendChild(cvc.wrap);
    box.appendChild(number.wrap);
    box.appendChild(row);
    var note = document.createElement('p');
    note.className = 'obol-sb-note';
    note.textContent = 'Sandbox: use a Stripe test card, e.g. 4242 4242 4242 4242.';
    box.appendChild(note);
    host.appendChild(box);
    this.inputs = { number: number.input, expiry: expiry.input, cvc: cvc.input };
  };

  PaymentElement.prototype.values = function () {
    if (!this.inputs) { return { error: 'The payment form is not mounted.' }; }
    var number = this.inputs.number.value.replace(/[\s-]/g, '');
    var exp = this.inputs.expiry.value.replace(/\s/g, '').split('/');
    var cvc = this.inputs.cvc.value.trim();
    if (!/^\d{12,19}$/.test(number)) { return { error: 'Your card number is incomplete.' }; }
    if (exp.length !== 2 || !/^\d{1,2}$/.test(exp[0]) || !/^\d{2,4}$/.test(exp[1])) {
      return { error: "Your card's expiration date is incomplete." };
    }
    if (!/^\d{3,4}$/.test(cvc)) { return { error: "Your card's security code is incomplete." }; }
    var year = exp[1].length === 2 ? '20' + exp[1] : exp[1];
    return { number: number, exp_month: String(Number(exp[0])), exp_year: year, cvc: cvc };
  };

  function Elements(options) {
    this.clientSecret = options && options.clientSecret;
    this.element = null;
  }

  Elements.prototype.create = function (type) {
    if (type !== 'payment') { throw new Error('obol sandbox Stripe.js supports the payment element only'); }
    this.element = new PaymentElement();
    return this.element;
  };

  function StripeStandIn(publishableKey, options) {
    if (!(this instanceof StripeStandIn)) { return new StripeStandIn(publishableKey, options); }
    this.key = publishableKey;
    this.apiBase = String((options && options.apiBase) || '').replace(/\/$/, '');
  }

  StripeStandIn.prototype.request = function (method, path, params) {
    var body = new URLSearchParams(params || {});
    var url = this.apiBase + path + (method === 'GET' ? '?' + body.toString() : '');
    return fetch(url, {
      method: method,
      headers: { 'Authorization': 'Bearer ' + this.key, 'Content-Type': 'application/x-www-form-urlencoded' },
      body: method === 'GET' ? undefined : body.toString()
    }).then(function (r) { return r.json(); });
  };

  StripeStandIn.prototype.elements = function (options) {
    return new Elements(options);
  };

  // What a confirm resolves with: `{paymentIntent}` or `{setupIntent}`.
  function resolved(intent) {
    return intent.object === 'setup_intent' ? { setupIntent: intent } : { paymentIntent: intent };
  }

  StripeStandIn.prototype.next = function (pi, redirect) {
    if (pi.status === 'requires_action' && pi.next_action && pi.next_action.redirect_to_url) {
      // Stripe.js shows the bank's page in a modal; the stand-in goes there
      // and the bank's page comes back to return_url.
      window.location.assign(pi.next_action.redirect_to_url.url);
      return new Promise(function () {});
    }
    if (redirect === 'always' && pi.status !== 'requires_payment_method') {
      window.location.assign(pi._return_url || window.location.href);
      return new Promise(function () {});
    }
    return Promise.resolve(resolved(pi));
  };

  StripeStandIn.prototype.confirmPayment = function (options) {
    return this.confirm('payment_intents', options);
  };

  // Like Stripe.js's confirmSetup: saves the card of the elements'
  // SetupIntent; resolves with `{setupIntent}` or `{error}`.
  StripeStandIn.prototype.confirmSetup = function (options) {
    return this.confirm('setup_intents', options);
  };

  StripeStandIn.prototype.confirm = function (kind, options) {
    var elements = options.elements;
    var params = (options && options.confirmParams) || {};
    var element = elements && elements.element;
    var values = element ? element.values() : { error: 'The payment form is not mounted.' };
    if (values.error) {
      return Promise.resolve({ error: { type: 'validation_error', message: values.error } });
    }
    var secret = elements.clientSecret;
    var self = this;
    return this.request('POST', '/v1/' + kind + '/' + encodeURIComponent(intentId(secret)) + '/confirm', {
      'client_secret': secret,
      'payment_method_data[type]': 'card',
      'payment_method_data[card][number]': values.number,
      'payment_method_data[card][exp_month]': values.exp_month,
      'payment_method_data[card][exp_year]': values.exp_year,
      'payment_method_data[card][cvc]': values.cvc,
      'return_url': params.return_url || window.location.href
    }).then(function (pi) {
      if (pi.error) { return { error: pi.error }; }
      return self.next(pi, options.redirect);
    }, function () {
      return { error: { type: 'api_connection_error', message: 'We could not reach the payment service. Check your connection and try again.' } };
    });
  };

  StripeStandIn.prototype.retrievePaymentIntent = function (clientSecret) {
    return this.request('GET', '/v1/payment_intents/' + encodeURIComponent(intentId(clientSecret)), {
      client_secret: clientSecret
    }).then(function (pi) { return pi.error ? { error: pi.error } : { paymentIntent: pi }; });
  };

  StripeStandIn.prototype.retrieveSetupIntent = function (clientSecret) {
    return this.request('GET', '/v1/setup_intents/' + encodeURIComponent(intentId(clientSecret)), {
      client_secret: clientSecret
    }).then(function (si) { return si.error ? { error: si.error } : { setupIntent: si }; });
  };

  StripeStandIn.prototype.handleNextAction = function (options) {
    var self = this;
    return this.retrievePaymentIntent(options.clientSecret).then(function (r) {
      return r.error ? r : self.next(r.paymentIntent, 'if_required');
    });
  };

  window.Stripe = StripeStandIn;
})();
