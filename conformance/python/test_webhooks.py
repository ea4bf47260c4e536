"""Real signed deliveries, verified with stripe.Webhook.construct_event."""

import json

import pytest
import stripe

from conftest import RECORDED


def test_deliveries_verify_with_construct_event(client, receiver):
    endpoint = client.v1.webhook_endpoints.create(params={"url": receiver.url, "enabled_events": ["*"]})
    secret = endpoint.secret
    assert secret.startswith("whsec_")
    try:
        pi = client.v1.payment_intents.create(
            params={"amount": 1234, "currency": "eur", "payment_method": "pm_card_visa", "confirm": True}
        )
        client.v1.refunds.create(params={"payment_intent": pi.id, "amount": 234})
        got = receiver.wait_for(lambda g: len(g) >= 5)
        types = []
        for headers, body in got:
            sig = {k.lower(): v for k, v in headers.items()}["stripe-signature"]
            event = stripe.Webhook.construct_event(body, sig, secret)
            assert event.object == "event"
            types.append(event.type)
            RECORDED.append(("WEBHOOK", receiver.url, 200, json.loads(body), {}))
            with pytest.raises(stripe.SignatureVerificationError):
                stripe.Webhook.construct_event(body, sig, "whsec_wrong")
        assert sorted(types) == sorted(
            ["payment_intent.created", "charge.succeeded", "payment_intent.succeeded", "refund.created", "charge.refunded"]
        )
    finally:
        client.v1.webhook_endpoints.delete(endpoint.id)
