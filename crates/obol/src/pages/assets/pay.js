/*
 * obol's payment page: mounts the payment element of Stripe.js (or obol's
 * sandbox stand-in), confirms the card, then completes the payment link
 * with obol. Coming back from the bank's 3-D Secure page it completes (or
 * explains) at once.
 */
(function () {
  'use strict';
  var root = document.getElementById('obol-pay');
  if (!root) { return; }
  var d = root.dataset;
  var stripe = d.apiBase ? window.Stripe(d.publishableKey, { apiBase: d.apiBase }) : window.Stripe(d.publishableKey);
  var elements = stripe.elements({ clientSecret: d.clientSecret });
  var payment = elements.create('payment');
  payment.mount('#obol-payment-element');
  var form = document.getElementById('obol-pay-form');
  var button = document.getElementById('obol-pay-button');
  var message = document.getElementById('obol-message');
  var intentId = String(d.clientSecret).split('_secret_')[0];

  function say(text, kind) {
    message.textContent = text;
    message.className = kind ? 'obol-' + kind : '';
    root.setAttribute('data-state', kind || 'ready');
  }

  var cardMessage = window.obolCardMessage;

  function paid(body) {
    root.hidden = true;
    var done = document.getElementById('obol-paid');
    document.getElementById('obol-order-number').textContent = body.order_number || '';
    done.hidden = false;
  }

  function complete() {
    say('Confirming your order…', 'working');
    return fetch('/v1/payment-links/' + encodeURIComponent(d.token) + '/complete', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ payment_intent_id: intentId })
    }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (body) {
        if (r.ok) { return paid(body); }
        var code = body.error && body.error.code;
        button.disabled = false;
        if (code === 'payment_not_authorized') {
          return say('The payment was not authorized. Nothing was charged; please try again.', 'error');
        }
        if (code === 'amount_mismatch') {
          button.disabled = true;
          return say('The price of your order changed, so nothing was charged. Please ask the shop for a new link.', 'error');
        }
        if (code === 'payment_link_used' || code === 'payment_link_busy') {
          button.disabled = true;
          return say('This order is already being paid or was paid. Nothing more will be charged.', 'error');
        }
        if (code === 'payment_link_expired') {
          button.disabled = true;
          return say('This payment link has expired. Nothing was charged; ask the shop for a new link.', 'error');
        }
        return say('We could not confirm your order just now. Nothing more will be charged; please try again.', 'error');
      });
    }, function () {
      button.disabled = false;
      say('We could not reach the shop. Check your connection and try again.', 'error');
    });
  }

  form.addEventListener('submit', function (event) {
    event.preventDefault();
    button.disabled = true;
    say('Processing your payment…', 'working');
    stripe.confirmPayment({
      elements: elements,
      confirmParams: { return_url: window.location.origin + window.location.pathname },
      redirect: 'if_required'
    }).then(function (result) {
      if (result.error) {
        button.disabled = false;
        return say(cardMessage(result.error), 'error');
      }
      var status = result.paymentIntent && result.paymentIntent.status;
      if (status === 'requires_capture' || status === 'succeeded' || status === 'processing') {
        return complete();
      }
      button.disabled = false;
      say('The payment did not go through. Nothing was charged; please try again.', 'error');
    });
  });

  // Back from the bank's page (3-D Secure).
  var q = new URLSearchParams(window.location.search);
  if (q.get('payment_intent') === intentId) {
    window.history.replaceState(null, '', window.location.pathname);
    if (q.get('redirect_status') === 'succeeded') {
      button.disabled = true;
      complete();
    } else {
      say('Your bank could not confirm it was you, so nothing was charged. Try again or use another card.', 'error');
    }
  }
})();
