"""The README's quickstart, with a client generated from obol's OpenAPI
document by openapi-python-client (no hand-written HTTP calls to obol).

    openapi-python-client generate --url $OBOL/openapi.json --meta none \
        --output-path obol_client --config clients/python/generator.yaml
    OBOL=http://127.0.0.1:8080 KEY=obol_sk_… python clients/python/quickstart.py

The one call that is not obol's: confirming the PaymentIntent, which in a
shop is the customer's browser running Stripe.js; here the built-in
sandbox's Stripe API stands in for it.
"""

import os
import sys
import time

import httpx

from obol_client import AuthenticatedClient, Client
from obol_client.api.checkout import create_payment_intent
from obol_client.api.customers import create_customer, create_customer_token, get_customer
from obol_client.api.health import health
from obol_client.api.orders import create_order
from obol_client.api.payments import get_payment
from obol_client.models import (
    CustomerIn,
    CustomerOut,
    CustomerTokenIn,
    Currency,
    ErrorBody,
    LineItemIn,
    OrderIn,
    OrderOut,
    PaymentIntentIn,
    PaymentIntentOut,
    PaymentOut,
    PaymentState,
    ShippingIn,
    StripeMode,
)


def expect(cond, what):
    if not cond:
        print(f"FAILED: {what}")
        sys.exit(1)
    print(f"ok: {what}")


base = os.environ["OBOL"]
key = os.environ["KEY"]
anonymous = Client(base_url=base)
backend = AuthenticatedClient(base_url=base, token=key)

# Is it up, and which Stripe does it talk to?
h = health.sync(client=anonymous)
expect(h.stripe.mode == StripeMode.SANDBOX, f"health: {h.status.value}, stripe {h.stripe.mode.value}")

# Create a customer; external_id is the application's own id for them.
ana = create_customer.sync(
    client=backend,
    body=CustomerIn(external_id="member-42", email="ana@example.com", name="Ana"),
)
expect(isinstance(ana, CustomerOut), f"customer {ana.id}")

# The same external_id again answers 409 customer_exists with the existing id.
again = create_customer.sync_detailed(client=backend, body=CustomerIn(external_id="member-42"))
expect(
    again.status_code == 409
    and isinstance(again.parsed, ErrorBody)
    and again.parsed.error.code == "customer_exists"
    and again.parsed.error.existing_id == ana.id,
    "a taken external_id answers 409 customer_exists with existing_id",
)

# A short-lived token for Ana's browser or app: it sees only Ana's objects.
minted = create_customer_token.sync(client=backend, body=CustomerTokenIn(customer_id=ana.id, ttl_seconds=900))
as_ana = AuthenticatedClient(base_url=base, token=minted.token)
expect(get_customer.sync(ana.id, client=as_ana).email == "ana@example.com", "Ana's token reads Ana")

# Without credentials: 401 with a stable code.
unauth = httpx.get(f"{base}/v1/customers/{ana.id}")
expect(unauth.status_code == 401 and ErrorBody.from_dict(unauth.json()).error.code == "unauthenticated", "no credential: 401 unauthenticated")

# Pay first: authorize 49.99 EUR before the order exists.
intent = create_payment_intent.sync(client=backend, body=PaymentIntentIn(amount=4999, currency=Currency.EUR))
expect(isinstance(intent, PaymentIntentOut) and intent.id.startswith("pi_"), f"intent {intent.id} ({intent.status.value})")

# The customer's card confirms it (Stripe.js in a shop; the sandbox here).
confirmed = httpx.post(
    f"{h.stripe.api_base}/v1/payment_intents/{intent.id}/confirm",
    auth=("sk_test_quickstart", ""),
    data={"payment_method": "pm_card_visa", "return_url": "https://shop.example.com/done"},
).json()
expect(confirmed["status"] == "requires_capture", "the card authorized 49.99 EUR")

# The order names the authorization; obol checks amount and currency with
# Stripe, confirms the order and captures it.
order = create_order.sync(
    client=backend,
    body=OrderIn(
        email="ana@example.com",
        currency=Currency.EUR,
        payment_reference=intent.id,
        line_items=[LineItemIn(name="Riesling 2022", unit_amount=2000, quantity=2)],
        shipping=ShippingIn(name="Standard", amount=999),
    ),
)
expect(
    isinstance(order, OrderOut) and order.total.amount == 4999 and order.total.currency == Currency.EUR,
    f"order {order.number}: {order.status.value}, total {order.total.amount} {order.total.currency.value}",
)

# The capture's webhook settles the ledger within moments.
payment = None
for _ in range(50):
    payment = get_payment.sync(order.payment_id, client=backend)
    if isinstance(payment, PaymentOut) and payment.status == PaymentState.COMPLETED:
        break
    time.sleep(0.2)
expect(payment.status == PaymentState.COMPLETED and payment.amount_captured == 4999, "payment completed")
