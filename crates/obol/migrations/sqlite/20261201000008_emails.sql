-- The member e-mail outbox: each e-mail obol sends a customer (a payment
-- that needs confirming, a card to update), written in the transaction of
-- the change that causes it and sent by a `send_email` job. The subject
-- and both bodies are rendered when the e-mail is queued, so what is sent
-- (and what GET /v1/emails/{id} shows) is what was decided then.

CREATE TABLE emails (
    id           TEXT PRIMARY KEY,
    account_id   TEXT NOT NULL DEFAULT 'default',
    -- the customer it is for, when there is one
    customer_id  TEXT,
    to_address   TEXT NOT NULL,
    -- payment_action_required, card_update_requested
    template     TEXT NOT NULL,
    subject      TEXT NOT NULL,
    text_body    TEXT NOT NULL,
    html_body    TEXT NOT NULL,
    -- names the logical e-mail ("charge_run_item:{item}:requires_action"):
    -- each is queued, and so sent, once
    dedupe_key   TEXT NOT NULL UNIQUE,
    -- queued, sent, failed, logged (no SMTP server configured: kept, not sent)
    status       TEXT NOT NULL,
    -- send attempts made
    attempts     INTEGER NOT NULL DEFAULT 0,
    last_error   TEXT,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    sent_at      TEXT
);
CREATE INDEX emails_account_created ON emails (account_id, created_at, id);
CREATE INDEX emails_customer ON emails (customer_id, created_at);
