-- Stripe webhook endpoints obol registered itself (today the platform's
-- one Connect endpoint, connect=true), with the signing secret Stripe
-- showed once when it was created. The secret is needed back to verify
-- deliveries, by every obol process on this database and after restarts,
-- so it is stored encrypted (crate::secrets, v1:<key fingerprint>:<data>,
-- bound to this table, column and row), never in plain text.
-- Expand only: a new table, which old binaries never read.

CREATE TABLE stripe_webhook_endpoints (
    id           TEXT PRIMARY KEY,
    url          TEXT NOT NULL,
    connect      BOOLEAN NOT NULL,
    secret_enc   TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL
);
