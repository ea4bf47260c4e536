-- Charge runs: off-session charges of members' saved cards in one run
-- (a wine-club release). The items table is the run's work queue: an
-- item is claimed with a lease (claimed_by, claimed_until) by whichever
-- obol process works the run, and its PaymentIntent is created with an
-- idempotency key derived from the item, so a retry, a restart or a
-- second process never charges twice.

CREATE TABLE charge_runs (
    id            TEXT PRIMARY KEY,
    account_id    TEXT NOT NULL DEFAULT 'default',
    name          TEXT NOT NULL,
    currency      TEXT NOT NULL,
    description   TEXT,
    -- draft, running, completed, canceled
    status        TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    started_at    TEXT,
    completed_at  TEXT,
    canceled_at   TEXT
);
CREATE INDEX charge_runs_account_created ON charge_runs (account_id, created_at, id);

CREATE TABLE charge_run_items (
    id                  TEXT PRIMARY KEY,
    run_id              TEXT NOT NULL REFERENCES charge_runs (id),
    account_id          TEXT NOT NULL DEFAULT 'default',
    customer_id         TEXT NOT NULL REFERENCES customers (id),
    amount              INTEGER NOT NULL,
    external_reference  TEXT,
    -- pending, processing, succeeded, requires_action, failed,
    -- no_payment_method, canceled
    outcome             TEXT NOT NULL,
    payment_intent_id   TEXT,
    decline_code        TEXT,
    failure_message     TEXT,
    attempts            INTEGER NOT NULL DEFAULT 0,
    claimed_by          TEXT,
    claimed_until       TEXT,
    created_at          TEXT NOT NULL,
    updated_at          TEXT NOT NULL,
    finished_at         TEXT
);
CREATE UNIQUE INDEX charge_run_items_reference ON charge_run_items (run_id, external_reference);
CREATE INDEX charge_run_items_run_outcome ON charge_run_items (run_id, outcome, id);
CREATE INDEX charge_run_items_intent ON charge_run_items (payment_intent_id);
