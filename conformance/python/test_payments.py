"""Stripe's official Python SDK against the sandbox: customers, payment
methods, intents, capture, refunds, declines, 3-D Secure, idempotency,
pagination."""

import re
import urllib.parse
import urllib.request
import uuid

import pytest
import stripe


def test_account_and_api_version(client):
    acct = client.v1.accounts.retrieve_current()
    assert acct.id.startswith("acct_")
    assert acct.settings.dashboard.display_name == "obol sandbox"
    from conftest import RECORDED

    assert RECORDED[-1][4].get("stripe-version", RECORDED[-1][4].get("Stripe-Version")) == stripe.api_version


def test_customer_lifecycle(client, tag):
    cus = client.v1.customers.create(params={"email": "jo@example.com", "metadata": {"tag": tag}})
    assert cus.id.startswith("cus_")
    assert cus.metadata["tag"] == tag
    cus = client.v1.customers.update(cus.id, params={"name": "Jo", "metadata": {"tag": ""}})
    assert cus.name == "Jo"
    assert "tag" not in cus.metadata
    assert client.v1.customers.retrieve(cus.id).email == "jo@example.com"
    deleted = client.v1.customers.delete(cus.id)
    assert deleted.deleted is True
    with pytest.raises(stripe.InvalidRequestError) as e:
        client.v1.customers.retrieve("cus_doesnotexist")
    assert e.value.http_status == 404
    assert e.value.code == "resource_missing"


def test_payment_methods_attach_and_list(client):
    cus = client.v1.customers.create()
    pm = client.v1.payment_methods.create(
        params={"type": "card", "card": {"number": "4242424242424242", "exp_month": 12, "exp_year": 2040, "cvc": "123"}}
    )
    assert pm.card.last4 == "4242"
    client.v1.payment_methods.attach(pm.id, params={"customer": cus.id})
    token_pm = client.v1.payment_methods.attach("pm_card_mastercard", params={"customer": cus.id})
    assert token_pm.id.startswith("pm_") and token_pm.id != "pm_card_mastercard"
    cus = client.v1.customers.update(cus.id, params={"invoice_settings": {"default_payment_method": pm.id}})
    assert cus.invoice_settings.default_payment_method == pm.id
    listed = client.v1.customers.payment_methods.list(cus.id, params={"type": "card"})
    assert {p.id for p in listed.data} == {pm.id, token_pm.id}
    listed = client.v1.payment_methods.list(params={"customer": cus.id, "type": "card"})
    assert len(listed.data) == 2
    detached = client.v1.payment_methods.detach(token_pm.id)
    assert detached.customer is None
    with pytest.raises(stripe.CardError) as e:
        client.v1.payment_methods.attach("pm_card_visa_chargeDeclined", params={"customer": cus.id})
    assert e.value.code == "card_declined"


def test_manual_capture_then_partial_refund(client):
    pi = client.v1.payment_intents.create(
        params={"amount": 5000, "currency": "eur", "payment_method": "pm_card_visa", "capture_method": "manual", "confirm": True}
    )
    assert pi.status == "requires_capture"
    assert pi.amount_capturable == 5000
    pi = client.v1.payment_intents.capture(pi.id, params={"amount_to_capture": 4000})
    assert pi.status == "succeeded"
    assert pi.amount_received == 4000
    refund = client.v1.refunds.create(params={"payment_intent": pi.id, "amount": 1500})
    assert refund.status == "succeeded"
    assert refund.amount == 1500
    charge = client.v1.charges.retrieve(pi.latest_charge)
    assert charge.amount_captured == 4000
    assert charge.amount_refunded == 1000 + 1500  # released rest + refund
    assert charge.refunded is False
    with pytest.raises(stripe.InvalidRequestError) as e:
        client.v1.refunds.create(params={"payment_intent": pi.id, "amount": 3000})
    assert e.value.param == "amount"
    with pytest.raises(stripe.InvalidRequestError) as e:
        client.v1.payment_intents.capture(pi.id)
    assert e.value.code == "payment_intent_unexpected_state"
    expanded = client.v1.payment_intents.retrieve(pi.id, params={"expand": ["latest_charge"]})
    assert expanded.latest_charge.id == charge.id
    refunds = client.v1.refunds.list(params={"payment_intent": pi.id})
    assert [r.id for r in refunds.data] == [refund.id]


@pytest.mark.parametrize(
    "card,code,decline_code",
    [
        ("pm_card_visa_chargeDeclined", "card_declined", "generic_decline"),
        ("pm_card_visa_chargeDeclinedInsufficientFunds", "card_declined", "insufficient_funds"),
        ("pm_card_visa_chargeDeclinedStolenCard", "card_declined", "stolen_card"),
        ("pm_card_chargeDeclinedExpiredCard", "expired_card", None),
    ],
)
def test_declines_raise_card_error(client, card, code, decline_code):
    with pytest.raises(stripe.CardError) as e:
        client.v1.payment_intents.create(params={"amount": 1000, "currency": "usd", "payment_method": card, "confirm": True})
    err = e.value
    assert err.http_status == 402
    assert err.code == code
    assert err.error.decline_code == decline_code
    assert err.error.payment_intent.status == "requires_payment_method"
    assert err.error.payment_intent.last_payment_error.code == code
    charge = client.v1.charges.retrieve(err.error.charge)
    assert charge.status == "failed"


def test_off_session_authentication_required(client):
    cus = client.v1.customers.create()
    pm = client.v1.payment_methods.attach("pm_card_authenticationRequired", params={"customer": cus.id})
    with pytest.raises(stripe.CardError) as e:
        client.v1.payment_intents.create(
            params={"amount": 1000, "currency": "eur", "customer": cus.id, "payment_method": pm.id, "off_session": True, "confirm": True}
        )
    assert e.value.code == "authentication_required"


def _complete_challenge(url, action="complete"):
    html = urllib.request.urlopen(url).read().decode()
    assert 'id="complete"' in html and 'id="fail"' in html
    form_action = re.search(r'<form method="post" action="([^"]+)"', html).group(1)
    token = re.search(r'name="token" value="([^"]+)"', html).group(1)
    parsed = urllib.parse.urlsplit(url)
    target = "%s://%s%s" % (parsed.scheme, parsed.netloc, form_action)
    data = urllib.parse.urlencode({"token": token, "action": action}).encode()

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        resp = opener.open(target, data)
        return resp.status, None
    except urllib.error.HTTPError as e:  # the 303 surfaces as an HTTPError
        return e.code, e.headers.get("Location")


def test_three_d_secure_challenge(client):
    pi = client.v1.payment_intents.create(
        params={
            "amount": 2500,
            "currency": "eur",
            "payment_method": "pm_card_threeDSecure2Required",
            "confirm": True,
            "return_url": "https://shop.example/return",
        }
    )
    assert pi.status == "requires_action"
    assert pi.next_action.type == "redirect_to_url"
    status, location = _complete_challenge(pi.next_action.redirect_to_url.url)
    assert status == 303
    assert location.startswith("https://shop.example/return?payment_intent=%s" % pi.id)
    pi = client.v1.payment_intents.retrieve(pi.id)
    assert pi.status == "succeeded"

    failing = client.v1.payment_intents.create(
        params={"amount": 2500, "currency": "eur", "payment_method": "pm_card_authenticationRequired", "confirm": True}
    )
    assert failing.next_action.type == "use_stripe_sdk"
    _complete_challenge(failing.next_action.use_stripe_sdk["stripe_js"], "fail")
    failing = client.v1.payment_intents.retrieve(failing.id)
    assert failing.status == "requires_payment_method"
    assert failing.last_payment_error.code == "payment_intent_authentication_failure"


def test_setup_intent_saves_card(client):
    cus = client.v1.customers.create()
    si = client.v1.setup_intents.create(params={"customer": cus.id, "payment_method": "pm_card_visa", "confirm": True})
    assert si.status == "succeeded"
    assert client.v1.payment_methods.retrieve(si.payment_method).customer == cus.id


def test_idempotent_replay(client):
    key = str(uuid.uuid4())
    a = client.v1.customers.create(params={"email": "idem@example.com"}, options={"idempotency_key": key})
    b = client.v1.customers.create(params={"email": "idem@example.com"}, options={"idempotency_key": key})
    assert a.id == b.id
    from conftest import RECORDED

    headers = {k.lower(): v for k, v in RECORDED[-1][4].items()}
    assert headers.get("idempotent-replayed") == "true"
    with pytest.raises(stripe.IdempotencyError):
        client.v1.customers.create(params={"email": "other@example.com"}, options={"idempotency_key": key})


def test_pagination_and_auto_pagination(client, tag):
    created = [client.v1.payment_intents.create(params={"amount": 1000 + n, "currency": "eur", "customer": None or client.v1.customers.create(params={"metadata": {"tag": tag}}).id}) for n in range(3)]
    cus = client.v1.customers.create(params={"metadata": {"tag": tag}})
    ids = [client.v1.payment_intents.create(params={"amount": 1000 + n, "currency": "eur", "customer": cus.id}).id for n in range(12)]
    page = client.v1.payment_intents.list(params={"customer": cus.id, "limit": 5})
    assert page.has_more is True
    assert [p.id for p in page.data] == list(reversed(ids))[:5]
    everything = [p.id for p in client.v1.payment_intents.list(params={"customer": cus.id, "limit": 5}).auto_paging_iter()]
    assert everything == list(reversed(ids))
    second = client.v1.payment_intents.list(params={"customer": cus.id, "limit": 5, "starting_after": page.data[-1].id})
    assert [p.id for p in second.data] == list(reversed(ids))[5:10]
    assert len(created) == 3


def test_disputes_events_and_charges_lists(client):
    pi = client.v1.payment_intents.create(
        params={"amount": 3000, "currency": "eur", "payment_method": "pm_card_createDispute", "confirm": True}
    )
    disputes = client.v1.disputes.list(params={"payment_intent": pi.id})
    assert len(disputes.data) == 1
    dp = disputes.data[0]
    assert dp.reason == "fraudulent"
    dp = client.v1.disputes.update(dp.id, params={"evidence": {"customer_name": "Jo"}, "submit": False})
    assert dp.evidence.customer_name == "Jo"
    dp = client.v1.disputes.close(dp.id)
    assert dp.status == "lost"
    events = client.v1.events.list(params={"type": "charge.dispute.*", "limit": 100})
    assert {"charge.dispute.created", "charge.dispute.updated", "charge.dispute.closed"} <= {e.type for e in events.data}
    assert client.v1.events.retrieve(events.data[0].id).id == events.data[0].id
    charges = client.v1.charges.list(params={"payment_intent": pi.id})
    assert charges.data[0].disputed is True
