-- The ledger: payments, their timeline, and the Stripe webhook inbox.

CREATE TABLE payments (
    id                        TEXT PRIMARY KEY,
    account_id                TEXT NOT NULL DEFAULT 'default',
    customer_id               TEXT REFERENCES customers (id),
    order_id                  TEXT,
    stripe_payment_intent_id  TEXT NOT NULL,
    amount                    BIGINT NOT NULL,
    currency                  TEXT NOT NULL,
    amount_refunded           BIGINT NOT NULL DEFAULT 0,
    status                    TEXT NOT NULL,
    disputed                  INTEGER NOT NULL DEFAULT 0,
    -- Unix seconds of the newest Stripe observation applied (see ledger/).
    observed_at               BIGINT NOT NULL DEFAULT 0,
    -- When reconciliation last retrieved the intent (round-robin order).
    reconciled_at             TEXT,
    created_at                TEXT NOT NULL,
    updated_at                TEXT NOT NULL
);
CREATE UNIQUE INDEX payments_intent ON payments (account_id, stripe_payment_intent_id);
CREATE INDEX payments_created ON payments (created_at, id);
CREATE INDEX payments_status ON payments (status, created_at);
CREATE INDEX payments_customer ON payments (customer_id, created_at);

CREATE TABLE payment_timeline (
    id          TEXT PRIMARY KEY,
    payment_id  TEXT NOT NULL REFERENCES payments (id),
    from_state  TEXT,
    to_state    TEXT NOT NULL,
    at          TEXT NOT NULL,
    cause_kind  TEXT NOT NULL,
    cause_ref   TEXT
);
CREATE INDEX payment_timeline_payment ON payment_timeline (payment_id, id);

-- Every Stripe event obol received or fetched, stored before it is
-- acknowledged; unique on Stripe's id, so a redelivery is a no-op.
CREATE TABLE webhook_events (
    id               TEXT PRIMARY KEY,
    stripe_event_id  TEXT NOT NULL UNIQUE,
    account_id       TEXT NOT NULL,
    event_type       TEXT NOT NULL,
    stripe_created   BIGINT NOT NULL,
    livemode         INTEGER NOT NULL,
    payload          TEXT NOT NULL,
    source           TEXT NOT NULL,
    status           TEXT NOT NULL,
    reason           TEXT,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  TEXT NOT NULL,
    locked_until     TEXT,
    received_at      TEXT NOT NULL,
    applied_at       TEXT
);
CREATE INDEX webhook_events_due ON webhook_events (status, next_attempt_at);
CREATE INDEX webhook_events_received ON webhook_events (received_at, id);

-- Small named values background jobs keep between runs (reconciliation's
-- event cursor).
CREATE TABLE sync_state (
    name        TEXT PRIMARY KEY,
    value       TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);

-- Refunds obol asked Stripe for (or learnt of from Stripe's events).
-- status: pending_submission (not yet accepted by Stripe; retried with the
-- same idempotency key), pending, succeeded, failed, canceled.
CREATE TABLE refunds (
    id                TEXT PRIMARY KEY,
    payment_id        TEXT NOT NULL REFERENCES payments (id),
    stripe_refund_id  TEXT UNIQUE,
    amount            BIGINT NOT NULL,
    currency          TEXT NOT NULL,
    reason            TEXT,
    status            TEXT NOT NULL,
    failure_reason    TEXT,
    observed_at       BIGINT NOT NULL DEFAULT 0,
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL
);
CREATE INDEX refunds_payment ON refunds (payment_id, created_at);
CREATE INDEX refunds_status ON refunds (status, updated_at);

-- Disputes (chargebacks) and their own timeline.
CREATE TABLE disputes (
    id                 TEXT PRIMARY KEY,
    stripe_dispute_id  TEXT NOT NULL UNIQUE,
    payment_id         TEXT NOT NULL REFERENCES payments (id),
    amount             BIGINT NOT NULL,
    currency           TEXT NOT NULL,
    reason             TEXT NOT NULL,
    status             TEXT NOT NULL,
    evidence_due_by    BIGINT,
    observed_at        BIGINT NOT NULL,
    created_at         TEXT NOT NULL,
    updated_at         TEXT NOT NULL
);
CREATE INDEX disputes_created ON disputes (created_at, id);
CREATE INDEX disputes_payment ON disputes (payment_id);

CREATE TABLE dispute_timeline (
    id           TEXT PRIMARY KEY,
    dispute_id   TEXT NOT NULL REFERENCES disputes (id),
    from_status  TEXT,
    to_status    TEXT NOT NULL,
    at           TEXT NOT NULL,
    cause_kind   TEXT NOT NULL,
    cause_ref    TEXT
);
CREATE INDEX dispute_timeline_dispute ON dispute_timeline (dispute_id, id);

-- Work for a person: "Respond to dispute", …
CREATE TABLE tasks (
    id            TEXT PRIMARY KEY,
    kind          TEXT NOT NULL,
    title         TEXT NOT NULL,
    subject_type  TEXT NOT NULL,
    subject_id    TEXT NOT NULL,
    payment_id    TEXT,
    customer_id   TEXT,
    status        TEXT NOT NULL,
    due_at        TEXT,
    created_at    TEXT NOT NULL,
    closed_at     TEXT
);
CREATE UNIQUE INDEX tasks_subject ON tasks (kind, subject_type, subject_id);
CREATE INDEX tasks_status ON tasks (status, created_at);
