-- Every change of an order's status, like a payment's timeline: what,
-- when, and which API call, Stripe event or job caused it.

CREATE TABLE order_timeline (
    id           TEXT PRIMARY KEY,
    account_id   TEXT NOT NULL DEFAULT 'default',
    order_id     TEXT NOT NULL REFERENCES orders (id),
    from_status  TEXT,
    to_status    TEXT NOT NULL,
    at           TEXT NOT NULL,
    cause_kind   TEXT NOT NULL,
    cause_ref    TEXT
);
CREATE INDEX order_timeline_order ON order_timeline (order_id, id);
