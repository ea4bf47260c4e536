"""Stripe Connect with the official SDK: the consent page submitted like a
browser, stripe.OAuth.token / stripe.OAuth.deauthorize, Stripe-Account
(stripe_account=…) partitioning, and Connect webhook endpoints."""

import html
import json
import re
import urllib.error
import urllib.parse
import urllib.request

import pytest
import stripe

from conftest import API_KEY, RECORDED

CLIENT_ID = "ca_obolconformance"
REDIRECT = "https://platform.test/callback"


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


OPENER = urllib.request.build_opener(NoRedirect)


def location_of(req):
    try:
        OPENER.open(req)
    except urllib.error.HTTPError as e:
        assert e.code in (302, 303), e.code
        return e.headers["Location"]
    raise AssertionError("expected a redirect")


def consent(api_base, state, decision, **fields):
    """Opens /oauth/authorize, submits its form; the redirect's query."""
    query = urllib.parse.urlencode(
        {
            "response_type": "code",
            "client_id": CLIENT_ID,
            "scope": "read_write",
            "state": state,
            "redirect_uri": REDIRECT,
        }
    )
    page = OPENER.open("%s/oauth/authorize?%s" % (api_base, query)).read().decode()
    action = re.search(r'<form method="post" action="([^"]+)"', page).group(1)
    form = {k: html.unescape(v) for k, v in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page)}
    assert 'name="decision" value="allow"' in page and 'name="decision" value="deny"' in page
    form["decision"] = decision
    form.update(fields)
    loc = location_of(urllib.request.Request(api_base + action, data=urllib.parse.urlencode(form).encode()))
    assert loc.startswith(REDIRECT), loc
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(loc).query))


@pytest.fixture
def connect_sdk(api_base, monkeypatch):
    """The SDK's global configuration pointed at the sandbox."""
    monkeypatch.setattr(stripe, "api_key", API_KEY)
    monkeypatch.setattr(stripe, "api_base", api_base)
    monkeypatch.setattr(stripe, "connect_api_base", api_base)
    monkeypatch.setattr(stripe, "client_id", CLIENT_ID)
    return stripe


def test_denied_consent_redirects_with_access_denied(api_base):
    q = consent(api_base, "st-deny", "deny")
    assert q["error"] == "access_denied"
    assert q["state"] == "st-deny"
    assert "code" not in q


def test_oauth_connect_charge_and_deauthorize(client, api_base, connect_sdk, receiver, tag):
    endpoint = client.v1.webhook_endpoints.create(
        params={"url": receiver.url, "enabled_events": ["payment_intent.succeeded", "account.application.*"], "connect": True}
    )
    try:
        assert endpoint.application.startswith("ca_")
        q = consent(api_base, "st-" + tag, "allow", account_name="Winery " + tag)
        assert q["state"] == "st-" + tag
        assert q["code"].startswith("ac_")

        tok = stripe.OAuth.token(grant_type="authorization_code", code=q["code"])
        acct = tok.stripe_user_id
        assert acct.startswith("acct_")
        assert tok.access_token.startswith("sk_test_")
        assert tok.refresh_token.startswith("rt_")
        assert tok.stripe_publishable_key.startswith("pk_test_")
        assert tok.token_type == "bearer"
        assert tok.livemode is False
        assert tok.scope == "read_write"
        with pytest.raises(stripe.oauth_error.InvalidGrantError) as e:
            stripe.OAuth.token(grant_type="authorization_code", code=q["code"])
        assert e.value.code == "invalid_grant"

        refreshed = stripe.OAuth.token(grant_type="refresh_token", refresh_token=tok.refresh_token)
        assert refreshed.stripe_user_id == acct
        assert refreshed.access_token != tok.access_token

        me = client.v1.accounts.retrieve_current(options={"stripe_account": acct})
        assert me.id == acct
        assert me.business_profile.name == "Winery " + tag
        assert me.settings.dashboard.display_name == "Winery " + tag

        pi = stripe.PaymentIntent.create(
            amount=2100, currency="eur", payment_method="pm_card_visa", confirm=True, stripe_account=acct
        )
        assert pi.status == "succeeded"
        # The account's own access token acts as the account too.
        assert stripe.PaymentIntent.retrieve(pi.id, api_key=refreshed.access_token).id == pi.id
        assert client.v1.payment_intents.retrieve(pi.id, options={"stripe_account": acct}).amount == 2100
        with pytest.raises(stripe.InvalidRequestError) as e:
            client.v1.payment_intents.retrieve(pi.id)
        assert e.value.http_status == 404
        assert [p.id for p in client.v1.payment_intents.list(options={"stripe_account": acct}).data] == [pi.id]

        got = receiver.wait_for(lambda g: len(g) >= 1)
        headers, body = got[0]
        sig = {k.lower(): v for k, v in headers.items()}["stripe-signature"]
        event = stripe.Webhook.construct_event(body, sig, endpoint.secret)
        assert event.type == "payment_intent.succeeded"
        assert event.account == acct
        RECORDED.append(("WEBHOOK", receiver.url, 200, json.loads(body), {}))

        gone = stripe.OAuth.deauthorize(stripe_user_id=acct)
        assert gone.stripe_user_id == acct
        got = receiver.wait_for(lambda g: len(g) >= 2)
        headers, body = got[1]
        sig = {k.lower(): v for k, v in headers.items()}["stripe-signature"]
        event = stripe.Webhook.construct_event(body, sig, endpoint.secret)
        assert event.type == "account.application.deauthorized"
        assert event.account == acct
        assert event.data.object.id == CLIENT_ID
        RECORDED.append(("WEBHOOK", receiver.url, 200, json.loads(body), {}))

        with pytest.raises(stripe.PermissionError) as e:
            stripe.PaymentIntent.create(amount=100, currency="eur", stripe_account=acct)
        assert e.value.json_body["error"]["code"] == "account_invalid"
        with pytest.raises(stripe.AuthenticationError):
            stripe.Customer.list(api_key=refreshed.access_token)
        with pytest.raises(stripe.oauth_error.InvalidClientError):
            stripe.OAuth.deauthorize(stripe_user_id=acct)
    finally:
        client.v1.webhook_endpoints.delete(endpoint.id)
