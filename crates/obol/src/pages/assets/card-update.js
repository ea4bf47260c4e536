/*
 * obol's card-update page: asks obol for the link's SetupIntent, mounts
 * the payment element of Stripe.js (or obol's sandbox stand-in) in setup
 * mode, confirms the card with stripe.confirmSetup (nothing is charged),
 * then tells obol, which makes the card the member's default. Coming back
 * from the bank's 3-D Secure page it tells obol at once.
 */
(function () {
  'use strict';
  var root = document.getElementById('obol-card-update');
  if (!root) { return; }
  var d = root.dataset;
  var base = '/v1/public/card-updates/' + encodeURIComponent(d.token);
  var form = document.getElementById('obol-card-form');
  var button = document.getElementById('obol-save-button');
  var message = document.getElementById('obol-message');
  var stripe = null;
  var elements = null;

  function say(text, kind) {
    message.textContent = text;
    message.className = kind ? 'obol-' + kind : '';
    root.setAttribute('data-state', kind || 'ready');
  }

  function saved(card) {
    var text = 'Your card ending ' + card.last4 + ' is saved for future payments.';
    document.getElementById('obol-saved-text').textContent = text;
    root.hidden = true;
    var done = document.getElementById('obol-card-saved');
    done.setAttribute('data-last4', card.last4);
    done.hidden = false;
  }

  function post(path, body) {
    return fetch(base + path, {
      method: 'POST',
      headers: { Accept: 'application/json', 'Content-Type': 'application/json' },
      body: JSON.stringify(body || {})
    }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (b) { return { ok: r.ok, status: r.status, body: b }; });
    });
  }

  function refused(r) {
    var code = r.body && r.body.error && r.body.error.code;
    if (code === 'card_update_link_expired') {
      return say('This link has expired. Your card on file was not changed; ask for a new link.', 'error');
    }
    return say('Your card could not be saved right now. Your card on file was not changed; please try again in a moment.', 'error');
  }

  // obol checks the SetupIntent with Stripe and makes its card the default.
  function complete(setupIntentId) {
    button.disabled = true;
    say('Saving your card…', 'working');
    return post('/complete', { setup_intent_id: setupIntentId }).then(function (r) {
      if (r.ok) { return saved(r.body.payment_method); }
      button.disabled = false;
      return refused(r);
    }, function () {
      button.disabled = false;
      say('We could not reach the business. Check your connection and try again.', 'error');
    });
  }

  function start() {
    return post('/setup-intent').then(function (r) {
      if (!r.ok) { button.disabled = true; return refused(r); }
      var body = r.body;
      stripe = d.apiBase ? window.Stripe(body.publishable_key, { apiBase: d.apiBase }) : window.Stripe(body.publishable_key);
      elements = stripe.elements({ clientSecret: body.client_secret });
      elements.create('payment').mount('#obol-payment-element');
      button.disabled = false;
      root.setAttribute('data-setup-intent', body.id);
      root.setAttribute('data-state', 'ready');
    }, function () {
      say('We could not reach the business. Check your connection and reload the page.', 'error');
    });
  }

  form.addEventListener('submit', function (event) {
    event.preventDefault();
    if (!stripe) { return; }
    button.disabled = true;
    say('Checking your card…', 'working');
    stripe.confirmSetup({
      elements: elements,
      confirmParams: { return_url: window.location.origin + window.location.pathname },
      redirect: 'if_required'
    }).then(function (result) {
      if (result.error) {
        button.disabled = false;
        return say(window.obolCardMessage(result.error).replace('nothing was charged', 'nothing was saved').replace('Nothing was charged', 'Nothing was saved'), 'error');
      }
      var si = result.setupIntent;
      if (si && si.status === 'succeeded') { return complete(si.id); }
      button.disabled = false;
      say('Your card could not be saved. Please try again or use another card.', 'error');
    });
  });

  // Back from the bank's page (3-D Secure).
  var q = new URLSearchParams(window.location.search);
  if (q.get('setup_intent')) {
    var id = q.get('setup_intent');
    window.history.replaceState(null, '', window.location.pathname);
    if (q.get('redirect_status') === 'succeeded') {
      complete(id).then(function () { if (!document.getElementById('obol-card-saved').hidden) { return; } start(); });
      return;
    }
    start().then(function () {
      say('Your bank could not confirm it was you, so nothing was saved. Try again or use another card.', 'error');
    });
    return;
  }
  start();
})();
