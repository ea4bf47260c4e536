-- The billing mirror: Stripe subscriptions (obol's recurring gifts and
-- plans, and those adopted from Stripe), Stripe invoices, and scheduled
-- payments (a Stripe invoice finalized and charged on a date).
--
-- A row's customer is obol's `customer_id` when obol knows it at write
-- time; readers also resolve it through `stripe_customer_id`, so a
-- subscription mirrored before its customer was adopted links once the
-- customer is known, in any order. The `observed_*` columns hold what the
-- ordering rule compares (`ledger::billing`).

CREATE TABLE subscriptions (
    id                      TEXT PRIMARY KEY,
    account_id              TEXT NOT NULL DEFAULT 'default',
    customer_id             TEXT REFERENCES customers (id),
    stripe_customer_id      TEXT,
    stripe_subscription_id  TEXT,
    -- obol (created through POST /v1/subscriptions) or stripe (adopted)
    source                  TEXT NOT NULL,
    amount                  BIGINT NOT NULL,
    currency                TEXT NOT NULL,
    -- month or year (Stripe's day/week are mirrored as they are)
    billing_interval        TEXT NOT NULL,
    interval_count          BIGINT NOT NULL,
    -- incomplete, incomplete_expired, trialing, active, past_due,
    -- canceled, unpaid, paused
    status                  TEXT NOT NULL,
    current_period_start    BIGINT,
    current_period_end      BIGINT,
    cancel_at_period_end    BOOLEAN NOT NULL DEFAULT FALSE,
    canceled_at             BIGINT,
    ended_at                BIGINT,
    trial_end               BIGINT,
    -- what obol asked for (kept to resubmit with the same key)
    start_date              BIGINT,
    trial_days              BIGINT,
    description             TEXT,
    latest_stripe_invoice_id TEXT,
    observed_at             BIGINT NOT NULL DEFAULT 0,
    created_at              TIMESTAMPTZ NOT NULL,
    updated_at              TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX subscriptions_stripe ON subscriptions (account_id, stripe_subscription_id);
CREATE INDEX subscriptions_account_created ON subscriptions (account_id, created_at, id);
CREATE INDEX subscriptions_stripe_customer ON subscriptions (account_id, stripe_customer_id);

CREATE TABLE billing_invoices (
    id                        TEXT PRIMARY KEY,
    account_id                TEXT NOT NULL DEFAULT 'default',
    stripe_invoice_id         TEXT NOT NULL,
    stripe_customer_id        TEXT,
    stripe_subscription_id    TEXT,
    stripe_payment_intent_id  TEXT,
    -- draft, open, paid, uncollectible, void
    status                    TEXT NOT NULL,
    currency                  TEXT NOT NULL,
    amount_due                BIGINT NOT NULL,
    amount_paid               BIGINT NOT NULL,
    amount_remaining          BIGINT NOT NULL,
    attempt_count             BIGINT NOT NULL,
    -- the attempt an `invoice.payment_action_required` was told for
    action_required_attempt   BIGINT NOT NULL DEFAULT 0,
    billing_reason            TEXT,
    collection_method         TEXT,
    number                    TEXT,
    hosted_invoice_url        TEXT,
    period_start              BIGINT,
    period_end                BIGINT,
    due_date                  BIGINT,
    next_payment_attempt      BIGINT,
    automatically_finalizes_at BIGINT,
    stripe_created            BIGINT NOT NULL,
    observed_at               BIGINT NOT NULL DEFAULT 0,
    created_at                TIMESTAMPTZ NOT NULL,
    updated_at                TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX billing_invoices_stripe ON billing_invoices (account_id, stripe_invoice_id);
CREATE INDEX billing_invoices_account_created ON billing_invoices (account_id, created_at, id);
CREATE INDEX billing_invoices_intent ON billing_invoices (account_id, stripe_payment_intent_id);
CREATE INDEX billing_invoices_subscription ON billing_invoices (account_id, stripe_subscription_id);

CREATE TABLE scheduled_payments (
    id                  TEXT PRIMARY KEY,
    account_id          TEXT NOT NULL DEFAULT 'default',
    customer_id         TEXT NOT NULL REFERENCES customers (id),
    amount              BIGINT NOT NULL,
    currency            TEXT NOT NULL,
    -- unix seconds: when Stripe finalizes and charges the invoice
    charge_at           BIGINT NOT NULL,
    description         TEXT,
    stripe_invoice_id   TEXT,
    created_at          TIMESTAMPTZ NOT NULL,
    updated_at          TIMESTAMPTZ NOT NULL
);
CREATE INDEX scheduled_payments_account_created ON scheduled_payments (account_id, created_at, id);
