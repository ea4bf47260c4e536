-- The obol processes sharing this database, one row each, renewed every
-- second. Each live process paces its Stripe requests at its share of
-- stripe.rate_limit_per_second (a floor plus the rest by demand), so
-- several processes together never exceed it.

CREATE TABLE instances (
    id            TEXT PRIMARY KEY,
    started_at    TEXT NOT NULL,
    heartbeat_at  TEXT NOT NULL,
    -- the most Stripe requests queued at the process's pacer during its
    -- last second: its share beyond the floor follows it
    demand        INTEGER NOT NULL DEFAULT 0,
    -- the share it reserved, in thousandths of a request per second: a
    -- process raises its pace only into room the others' claims leave
    claim_milli   INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX instances_heartbeat ON instances (heartbeat_at);
