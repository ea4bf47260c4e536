-- The obol processes sharing this database, one row each, renewed every
-- second. Each live process paces its Stripe requests at its share of
-- stripe.rate_limit_per_second (rate / live rows), so several processes
-- together never exceed it.

CREATE TABLE instances (
    id            TEXT PRIMARY KEY,
    started_at    TEXT NOT NULL,
    heartbeat_at  TEXT NOT NULL
);
CREATE INDEX instances_heartbeat ON instances (heartbeat_at);
