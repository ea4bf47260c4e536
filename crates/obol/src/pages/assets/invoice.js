/*
 * obol's invoice page: asks obol for the invoice's PaymentIntent, mounts
 * the payment element of Stripe.js (or obol's sandbox stand-in), confirms
 * the card, then waits until obol has recorded the payment. Coming back
 * from the bank's 3-D Secure page it waits at once.
 */
(function () {
  'use strict';
  var root = document.getElementById('obol-invoice');
  if (!root || root.getAttribute('data-state') !== 'payable') { return; }
  var d = root.dataset;
  var base = '/v1/public/invoices/' + encodeURIComponent(d.token);
  var form = document.getElementById('obol-pay-form');
  var button = document.getElementById('obol-pay-button');
  var message = document.getElementById('obol-message');
  var stripe = null;
  var elements = null;

  function say(text, kind) {
    message.textContent = text;
    message.className = kind ? 'obol-' + kind : '';
    root.setAttribute('data-state', kind === 'error' ? 'error' : (kind || 'payable'));
  }

  function paid() {
    root.hidden = true;
    document.getElementById('obol-invoice-paid').hidden = false;
  }

  // obol records the payment from Stripe's webhook (or asks Stripe when
  // this page polls): wait for it, up to about half a minute.
  function waitForPaid(tries) {
    say('Confirming your payment…', 'working');
    return fetch(base, { headers: { Accept: 'application/json' } }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (body) {
        if (r.ok && body.status === 'paid') { return paid(); }
        if (tries <= 0) {
          return say('Your payment is being processed. You will get a receipt by e-mail; there is no need to pay again.', 'working');
        }
        return new Promise(function (resolve) { setTimeout(resolve, 1000); }).then(function () { return waitForPaid(tries - 1); });
      });
    }, function () {
      if (tries <= 0) { return say('We could not reach the business. Your payment may have gone through; please reload this page.', 'error'); }
      return new Promise(function (resolve) { setTimeout(resolve, 1000); }).then(function () { return waitForPaid(tries - 1); });
    });
  }

  function start() {
    return fetch(base + '/payment-intent', { method: 'POST', headers: { Accept: 'application/json' } }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (body) {
        if (!r.ok) {
          var code = body.error && body.error.code;
          button.disabled = true;
          if (code === 'invoice_not_payable') { return say(body.error.message, 'error'); }
          return say('This invoice cannot be paid right now. Nothing was charged; please try again in a moment.', 'error');
        }
        stripe = d.apiBase ? window.Stripe(body.publishable_key, { apiBase: d.apiBase }) : window.Stripe(body.publishable_key);
        elements = stripe.elements({ clientSecret: body.client_secret });
        elements.create('payment').mount('#obol-payment-element');
        button.disabled = false;
        root.setAttribute('data-intent', body.id);
        root.setAttribute('data-state', 'ready');
      });
    }, function () {
      say('We could not reach the business. Check your connection and reload the page.', 'error');
    });
  }

  form.addEventListener('submit', function (event) {
    event.preventDefault();
    if (!stripe) { return; }
    button.disabled = true;
    say('Processing your payment…', 'working');
    stripe.confirmPayment({
      elements: elements,
      confirmParams: { return_url: window.location.origin + window.location.pathname },
      redirect: 'if_required'
    }).then(function (result) {
      if (result.error) {
        button.disabled = false;
        return say(window.obolCardMessage(result.error), 'error');
      }
      var status = result.paymentIntent && result.paymentIntent.status;
      if (status === 'succeeded' || status === 'processing') { return waitForPaid(30); }
      button.disabled = false;
      say('The payment did not go through. Nothing was charged; please try again.', 'error');
    });
  });

  // Back from the bank's page (3-D Secure).
  var q = new URLSearchParams(window.location.search);
  if (q.get('payment_intent')) {
    window.history.replaceState(null, '', window.location.pathname);
    if (q.get('redirect_status') === 'succeeded') {
      button.disabled = true;
      waitForPaid(30);
      return;
    }
    say('Your bank could not confirm it was you, so nothing was charged. Try again or use another card.', 'error');
  }
  start();
})();
