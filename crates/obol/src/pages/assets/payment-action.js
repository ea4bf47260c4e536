/*
 * obol's 3-D Secure action page: the button asks obol to confirm the
 * charge's PaymentIntent on session; obol answers the bank's page, which
 * this page opens and which comes back here. Back from the bank (or
 * while a payment is processing) the page asks obol until it is paid.
 */
(function () {
  'use strict';
  var root = document.getElementById('obol-payment-action');
  if (!root) { return; }
  var base = '/v1/public/payment-actions/' + encodeURIComponent(root.dataset.token);
  var button = document.getElementById('obol-confirm-button');
  var message = document.getElementById('obol-message');

  function say(text, kind) {
    message.textContent = text;
    message.className = kind ? 'obol-' + kind : '';
    root.setAttribute('data-state', kind || 'ready');
  }

  function paid() {
    root.hidden = true;
    root.setAttribute('data-state', 'paid');
    document.getElementById('obol-action-paid').hidden = false;
  }

  function call(method, path) {
    return fetch(base + path, { method: method, headers: { Accept: 'application/json' } }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (b) { return { ok: r.ok, status: r.status, body: b }; });
    });
  }

  function codeOf(r) { return r.body && r.body.error && r.body.error.code; }

  // obol records the payment from Stripe's webhook, or from Stripe when
  // this page asks: wait for it, up to about half a minute.
  function waitForPaid(tries) {
    say('Confirming your payment…', 'working');
    return call('GET', '').then(function (r) {
      if (r.ok && r.body.status === 'succeeded') { return paid(); }
      if (r.ok && r.body.status === 'requires_action') {
        button.disabled = false;
        return say('Your payment is not confirmed yet. Please try again.', 'error');
      }
      if (!r.ok) { return refused(r); }
      if (tries <= 0) {
        return say('Your payment is being processed. There is no need to confirm it again.', 'working');
      }
      return new Promise(function (resolve) { setTimeout(resolve, 1000); }).then(function () { return waitForPaid(tries - 1); });
    }, function () {
      if (tries <= 0) { return say('We could not reach the business. Your payment may have gone through; please reload this page.', 'error'); }
      return new Promise(function (resolve) { setTimeout(resolve, 1000); }).then(function () { return waitForPaid(tries - 1); });
    });
  }

  function refused(r) {
    var code = codeOf(r);
    if (code === 'payment_action_completed') { return paid(); }
    button.disabled = true;
    if (code === 'payment_action_expired') {
      return say('This link has expired. Nothing was charged through it; ask the business for a new link.', 'error');
    }
    if (code === 'payment_action_closed') {
      return say('This payment can no longer be made. Nothing was charged through this link.', 'error');
    }
    if (code === 'card_declined') {
      button.disabled = false;
      return say('Your card was declined. Nothing was charged; contact the business to pay another way.', 'error');
    }
    button.disabled = false;
    return say('We could not confirm your payment just now. Nothing was charged; please try again in a moment.', 'error');
  }

  button.addEventListener('click', function () {
    button.disabled = true;
    say('Contacting your bank…', 'working');
    call('POST', '/confirm').then(function (r) {
      if (!r.ok) { return refused(r); }
      if (r.body.redirect_url) {
        // The bank's page (3-D Secure), which comes back to this page.
        window.location.assign(r.body.redirect_url);
        return;
      }
      if (r.body.status === 'succeeded' || r.body.status === 'processing') { return waitForPaid(30); }
      button.disabled = false;
      say('Your payment is not confirmed yet. Please try again.', 'error');
    }, function () {
      button.disabled = false;
      say('We could not reach the business. Check your connection and try again.', 'error');
    });
  });

  // Back from the bank's page: drop its query (it names the payment) and
  // wait for obol to see the payment.
  var q = new URLSearchParams(window.location.search);
  if (q.get('payment_intent')) {
    window.history.replaceState(null, '', window.location.pathname);
    if (root.hidden) { return; }
    if (q.get('redirect_status') === 'succeeded') {
      button.disabled = true;
      waitForPaid(30);
      return;
    }
    say('Your bank could not confirm it was you, so nothing was charged. Try again, or contact the business.', 'error');
    return;
  }
  if (root.getAttribute('data-state') === 'processing') { waitForPaid(30); }
})();
