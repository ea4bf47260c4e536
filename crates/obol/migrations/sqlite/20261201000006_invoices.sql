-- Invoices paid through a public link: the invoice (its lines as JSON,
-- its fee frozen when processed), its links, one row per PaymentIntent
-- made to pay it (at most one open at a time), its timeline, the
-- per-account fee rate, and the durable sync of each payment to each
-- accounting target.

CREATE TABLE fee_settings (
    account_id   TEXT PRIMARY KEY,
    percent_bps  INTEGER NOT NULL,
    -- JSON object: lowercase currency -> fixed part in minor units
    fixed        TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL
);

CREATE TABLE invoices (
    id               TEXT PRIMARY KEY,
    account_id       TEXT NOT NULL DEFAULT 'default',
    customer_id      TEXT NOT NULL REFERENCES customers (id),
    number           TEXT NOT NULL,
    -- draft, processed, partially_paid, paid, void
    status           TEXT NOT NULL,
    currency         TEXT NOT NULL,
    -- JSON array of {description, unit_amount, quantity, amount}
    line_items       TEXT NOT NULL,
    subtotal         INTEGER NOT NULL,
    pass_fees        INTEGER NOT NULL,
    -- the fee line (NULL without fee passthrough) and the rate it came from
    fee_amount       INTEGER,
    fee_percent_bps  INTEGER,
    fee_fixed        INTEGER,
    fee_source       TEXT,
    total            INTEGER NOT NULL,
    amount_paid      INTEGER NOT NULL DEFAULT 0,
    fee_paid         INTEGER NOT NULL DEFAULT 0,
    -- YYYY-MM-DD
    due_date         TEXT NOT NULL,
    memo             TEXT,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    processed_at     TEXT,
    paid_at          TEXT,
    voided_at        TEXT
);
CREATE UNIQUE INDEX invoices_account_number ON invoices (account_id, number);
CREATE INDEX invoices_account_created ON invoices (account_id, created_at, id);

-- The invoice's public links: a token (32 random bytes, stored hashed)
-- minted when it is created and again each time it is processed; each
-- opens the invoice until it is void.
CREATE TABLE invoice_links (
    token_hash   TEXT PRIMARY KEY,
    account_id   TEXT NOT NULL DEFAULT 'default',
    invoice_id   TEXT NOT NULL REFERENCES invoices (id),
    created_at   TEXT NOT NULL
);
CREATE INDEX invoice_links_invoice ON invoice_links (invoice_id);

CREATE TABLE invoice_attempts (
    id                        TEXT PRIMARY KEY,
    account_id                TEXT NOT NULL DEFAULT 'default',
    invoice_id                TEXT NOT NULL REFERENCES invoices (id),
    stripe_payment_intent_id  TEXT NOT NULL,
    amount                    INTEGER NOT NULL,
    fee_amount                INTEGER NOT NULL,
    -- open, succeeded, void
    status                    TEXT NOT NULL,
    void_reason               TEXT,
    created_at                TEXT NOT NULL,
    updated_at                TEXT NOT NULL
);
CREATE UNIQUE INDEX invoice_attempts_intent ON invoice_attempts (account_id, stripe_payment_intent_id);
-- Exactly one live PaymentIntent per invoice.
CREATE UNIQUE INDEX invoice_attempts_one_open ON invoice_attempts (invoice_id) WHERE status = 'open';
CREATE INDEX invoice_attempts_status_created ON invoice_attempts (status, created_at);

CREATE TABLE invoice_timeline (
    id           TEXT PRIMARY KEY,
    account_id   TEXT NOT NULL DEFAULT 'default',
    invoice_id   TEXT NOT NULL REFERENCES invoices (id),
    from_status  TEXT,
    to_status    TEXT NOT NULL,
    -- what happened, for people ("replaced pi_… (requires_action)")
    note         TEXT,
    at           TEXT NOT NULL,
    cause_kind   TEXT NOT NULL,
    cause_ref    TEXT
);
CREATE INDEX invoice_timeline_invoice ON invoice_timeline (invoice_id, id);

CREATE TABLE sync_jobs (
    id               TEXT PRIMARY KEY,
    account_id       TEXT NOT NULL DEFAULT 'default',
    invoice_id       TEXT NOT NULL REFERENCES invoices (id),
    payment_id       TEXT NOT NULL,
    -- xero, quickbooks, webhook
    target           TEXT NOT NULL,
    -- pending, succeeded, failed
    status           TEXT NOT NULL,
    -- the runner job that performs it
    job_id           TEXT NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    last_error       TEXT,
    -- what the target answered (Xero PaymentID, QuickBooks SalesReceipt Id)
    external_id      TEXT,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    succeeded_at     TEXT
);
-- Each payment reaches each target once.
CREATE UNIQUE INDEX sync_jobs_once ON sync_jobs (payment_id, target);
CREATE INDEX sync_jobs_account_created ON sync_jobs (account_id, created_at, id);
