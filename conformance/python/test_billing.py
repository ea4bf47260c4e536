"""Billing with the official SDK: products and prices, test clocks,
subscriptions through renewals, declines, scheduled invoices, balance
transactions and payouts. test_zz_schemas validates every object seen."""

import time

import pytest
import stripe

T0 = 1_767_225_600  # 2026-01-01 00:00 UTC
DAY = 86_400


def advance(client, clock, to):
    c = client.v1.test_helpers.test_clocks.advance(clock.id, params={"frozen_time": to})
    assert c.status == "advancing"
    deadline = time.time() + 20
    while time.time() < deadline:
        c = client.v1.test_helpers.test_clocks.retrieve(clock.id)
        if c.status == "ready":
            return c
        time.sleep(0.05)
    raise AssertionError("the test clock did not become ready")


def customer_on_clock(client, pm="pm_card_visa"):
    clock = client.v1.test_helpers.test_clocks.create(params={"frozen_time": T0, "name": "billing"})
    cus = client.v1.customers.create(
        params={"test_clock": clock.id, "payment_method": pm, "invoice_settings": {"default_payment_method": pm}}
    )
    assert cus.test_clock == clock.id and cus.created == T0
    return clock, cus


def monthly(client, cus, **extra):
    prod = client.v1.products.create(params={"name": "Monthly gift"})
    price = client.v1.prices.create(
        params={"currency": "eur", "unit_amount": 1000, "product": prod.id, "recurring": {"interval": "month"}}
    )
    assert price.recurring.interval == "month" and price.type == "recurring"
    return client.v1.subscriptions.create(
        params={"customer": cus.id, "items": [{"price": price.id}], "expand": ["latest_invoice.payment_intent"], **extra}
    )


def test_three_renewals_make_three_more_paid_invoices(client):
    clock, cus = customer_on_clock(client)
    sub = monthly(client, cus, metadata={"gift": "monthly"})
    assert sub.status == "active"
    assert sub.latest_invoice.status == "paid"
    assert sub.latest_invoice.payment_intent.status == "succeeded"
    advance(client, clock, T0 + 91 * DAY)
    paid = client.v1.invoices.list(params={"subscription": sub.id, "status": "paid"})
    assert len(paid.data) == 4
    assert [i.billing_reason for i in paid.data].count("subscription_cycle") == 3
    sub = client.v1.subscriptions.retrieve(sub.id)
    assert sub.status == "active" and sub.current_period_start == T0 + 90 * DAY
    subs = client.v1.subscriptions.list(params={"customer": cus.id})
    assert [s.id for s in subs.data] == [sub.id]
    sub = client.v1.subscriptions.update(sub.id, params={"cancel_at_period_end": True})
    assert sub.cancel_at_period_end is True
    advance(client, clock, T0 + 121 * DAY)
    assert client.v1.subscriptions.retrieve(sub.id).status == "canceled"


def test_a_card_that_starts_declining_ends_past_due(client):
    clock, cus = customer_on_clock(client)
    sub = monthly(client, cus)
    pm = client.v1.payment_methods.attach("pm_card_chargeCustomerFail", params={"customer": cus.id})
    client.v1.customers.update(cus.id, params={"invoice_settings": {"default_payment_method": pm.id}})
    advance(client, clock, T0 + 32 * DAY)
    sub = client.v1.subscriptions.retrieve(sub.id, params={"expand": ["latest_invoice"]})
    assert sub.status == "past_due"
    inv = sub.latest_invoice
    assert inv.status == "open" and inv.attempt_count == 1 and inv.attempted is True
    assert inv.next_payment_attempt == inv.created + 3 * DAY
    with pytest.raises(stripe.CardError) as e:
        client.v1.invoices.pay(inv.id)
    assert e.value.code == "card_declined"
    client.v1.invoices.pay(inv.id, params={"payment_method": client.v1.payment_methods.attach("pm_card_visa", params={"customer": cus.id}).id})
    assert client.v1.subscriptions.retrieve(sub.id).status == "active"


def test_declined_first_payment_leaves_the_subscription_incomplete(client):
    clock = client.v1.test_helpers.test_clocks.create(params={"frozen_time": T0})
    cus = client.v1.customers.create(params={"email": "x@example.com"})
    client.v1.test_helpers.test_clocks.delete(clock.id)
    clock = client.v1.test_helpers.test_clocks.create(params={"frozen_time": T0, "customer": cus.id})
    assert client.v1.customers.retrieve(cus.id).test_clock == clock.id
    pm = client.v1.payment_methods.attach("pm_card_authenticationRequired", params={"customer": cus.id})
    sub = monthly(client, cus, default_payment_method=pm.id, off_session=True)
    assert sub.status == "incomplete"
    assert sub.latest_invoice.payment_intent.status == "requires_action"
    advance(client, clock, T0 + DAY)
    assert client.v1.subscriptions.retrieve(sub.id).status == "incomplete_expired"
    assert client.v1.invoices.retrieve(sub.latest_invoice.id).status == "void"


def test_a_scheduled_invoice_is_charged_only_on_its_date(client):
    clock, cus = customer_on_clock(client)
    when = T0 + 10 * DAY
    inv = client.v1.invoices.create(
        params={"customer": cus.id, "auto_advance": True, "automatically_finalizes_at": when, "collection_method": "charge_automatically"}
    )
    client.v1.invoice_items.create(
        params={"customer": cus.id, "invoice": inv.id, "price_data": {"currency": "eur", "product": client.v1.products.create(params={"name": "Pledge"}).id, "unit_amount": 5000}}
    )
    advance(client, clock, when - 3600)
    inv = client.v1.invoices.retrieve(inv.id)
    assert inv.status == "draft" and inv.amount_due == 5000
    advance(client, clock, when + 3600)
    inv = client.v1.invoices.retrieve(inv.id)
    assert inv.status == "paid" and inv.amount_paid == 5000 and inv.status_transitions.paid_at == when
    sent = client.v1.invoices.create(params={"customer": cus.id, "collection_method": "send_invoice", "days_until_due": 14})
    client.v1.invoice_items.create(params={"customer": cus.id, "invoice": sent.id, "amount": 1200, "currency": "eur"})
    sent = client.v1.invoices.finalize_invoice(sent.id)
    assert sent.status == "open" and sent.due_date == sent.status_transitions.finalized_at + 14 * DAY
    assert sent.hosted_invoice_url
    assert client.v1.invoices.mark_uncollectible(sent.id).status == "uncollectible"
    assert client.v1.invoices.void_invoice(sent.id).status == "void"


def test_a_payout_lists_transactions_that_add_up(client):
    clock, cus = customer_on_clock(client)
    monthly(client, cus)
    pi = client.v1.payment_intents.create(
        params={"amount": 10000, "currency": "eur", "customer": cus.id, "payment_method": cus.invoice_settings.default_payment_method, "confirm": True, "off_session": True}
    )
    ch = client.v1.charges.retrieve(pi.latest_charge, params={"expand": ["balance_transaction"]})
    assert ch.balance_transaction.type == "charge"
    assert ch.balance_transaction.net == ch.balance_transaction.amount - ch.balance_transaction.fee
    refund = client.v1.refunds.create(params={"payment_intent": pi.id, "amount": 2500})
    client.v1.balance.retrieve()
    advance(client, clock, T0 + 9 * DAY)
    payouts = client.v1.payouts.list(params={"limit": 100}).data
    assert payouts
    mine = [p for p in payouts if p.created == T0 + 7 * DAY]
    assert mine
    kinds = set()
    for po in mine:
        assert po.status == "paid" and po.automatic is True
        txns = client.v1.balance_transactions.list(params={"payout": po.id, "limit": 100}).data
        settled = [t for t in txns if t.type != "payout"]
        assert sum(t.net for t in settled) == po.amount
        kinds |= {t.type for t in settled}
    # Other tests' clocks share the account: some payout of that day holds ours.
    assert {"charge", "refund"} <= kinds
    assert refund.balance_transaction in {t.id for po in mine for t in client.v1.balance_transactions.list(params={"payout": po.id, "limit": 100}).data}
