-- Signed notifications to the host application (Standard Webhooks), from
-- a durable outbox written in the same transaction as the change.

CREATE TABLE webhook_endpoints (
    id           TEXT PRIMARY KEY,
    url          TEXT NOT NULL,
    -- JSON array of event types, or ["*"].
    event_types  TEXT NOT NULL,
    -- whsec_<base64 key>; obol must sign with it, so it is kept as is.
    secret       TEXT NOT NULL,
    description  TEXT,
    status       TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    deleted_at   TIMESTAMPTZ
);

CREATE TABLE notifications (
    id          TEXT PRIMARY KEY,
    event_type  TEXT NOT NULL,
    payload     TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL
);

CREATE TABLE notification_deliveries (
    id                TEXT PRIMARY KEY,
    notification_id   TEXT NOT NULL REFERENCES notifications (id),
    endpoint_id       TEXT NOT NULL REFERENCES webhook_endpoints (id),
    -- pending, succeeded, failed (gave up after the retry schedule)
    status            TEXT NOT NULL,
    attempts          INTEGER NOT NULL DEFAULT 0,
    next_attempt_at   TIMESTAMPTZ NOT NULL,
    locked_until      TIMESTAMPTZ,
    last_status_code  INTEGER,
    last_error        TEXT,
    created_at        TIMESTAMPTZ NOT NULL,
    updated_at        TIMESTAMPTZ NOT NULL,
    delivered_at      TIMESTAMPTZ
);
CREATE INDEX notification_deliveries_due ON notification_deliveries (status, next_attempt_at);
CREATE INDEX notification_deliveries_endpoint ON notification_deliveries (endpoint_id, created_at);
