-- Payouts mirrored from Stripe's payout.* events (and reconciliation's
-- retrievals), and the balance transactions each paid payout settles,
-- fetched once by the `payout_transactions` job so the API never calls
-- Stripe per request. Rows carry account_id like every table; a payout is
-- unique per (account, Stripe id). Amounts are integer minor units.
-- `status_rank` and `observed_at` are the ordering rule's inputs
-- (ledger::payout): a lower rank never overwrites a higher one, the same
-- rank only with a newer observation.
-- `transactions_status`: none (not paid yet), fetching (job queued),
-- fetched (rows below, summing to `amount`).
-- Expand only: new tables, which old binaries never read.

CREATE TABLE payouts (
    id                   TEXT PRIMARY KEY,
    account_id           TEXT NOT NULL,
    stripe_payout_id     TEXT NOT NULL,
    amount               BIGINT NOT NULL,
    currency             TEXT NOT NULL,
    status               TEXT NOT NULL,
    arrival_date         BIGINT NOT NULL,
    automatic            BOOLEAN NOT NULL,
    method               TEXT NOT NULL,
    description          TEXT,
    failure_code         TEXT,
    failure_message      TEXT,
    reconciliation_status TEXT,
    stripe_created       BIGINT NOT NULL,
    observed_at          BIGINT NOT NULL,
    transactions_status  TEXT NOT NULL,
    transactions_fetched_at TIMESTAMPTZ,
    created_at           TIMESTAMPTZ NOT NULL,
    updated_at           TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX payouts_account_stripe ON payouts (account_id, stripe_payout_id);
CREATE INDEX payouts_account_created ON payouts (account_id, stripe_created, id);

CREATE TABLE payout_transactions (
    account_id           TEXT NOT NULL,
    payout_id            TEXT NOT NULL REFERENCES payouts (id),
    position             BIGINT NOT NULL,
    stripe_balance_transaction_id TEXT NOT NULL,
    type                 TEXT NOT NULL,
    reporting_category   TEXT NOT NULL,
    amount               BIGINT NOT NULL,
    fee                  BIGINT NOT NULL,
    net                  BIGINT NOT NULL,
    currency             TEXT NOT NULL,
    created              BIGINT NOT NULL,
    available_on         BIGINT NOT NULL,
    description          TEXT,
    source_id            TEXT,
    payment_intent_id    TEXT,
    PRIMARY KEY (payout_id, position)
);
CREATE UNIQUE INDEX payout_transactions_txn ON payout_transactions (payout_id, stripe_balance_transaction_id);
