-- Orders: what a customer or guest buys; obol computes the total itself.

CREATE TABLE orders (
    id                 TEXT PRIMARY KEY,
    number             TEXT NOT NULL UNIQUE,
    account_id         TEXT NOT NULL DEFAULT 'default',
    customer_id        TEXT REFERENCES customers (id),
    -- SHA-256 of the guest token (guest orders only).
    guest_token_hash   TEXT,
    email              TEXT NOT NULL,
    currency           TEXT NOT NULL,
    subtotal           BIGINT NOT NULL,
    shipping_name      TEXT,
    shipping_amount    BIGINT NOT NULL,
    total              BIGINT NOT NULL,
    status             TEXT NOT NULL,
    shipping_address   TEXT,
    billing_address    TEXT,
    payment_reference  TEXT UNIQUE,
    created_at         TIMESTAMPTZ NOT NULL,
    updated_at         TIMESTAMPTZ NOT NULL
);
CREATE INDEX orders_customer ON orders (customer_id, created_at);
CREATE INDEX orders_created ON orders (created_at, id);

CREATE TABLE order_line_items (
    id           TEXT PRIMARY KEY,
    order_id     TEXT NOT NULL REFERENCES orders (id),
    position     INTEGER NOT NULL,
    name         TEXT NOT NULL,
    unit_amount  BIGINT NOT NULL,
    quantity     INTEGER NOT NULL,
    amount       BIGINT NOT NULL
);
CREATE INDEX order_line_items_order ON order_line_items (order_id, position);

-- Authorizations to cancel that Stripe could not be reached for; the
-- reconciliation pass retries them with the same idempotency key.
CREATE TABLE pending_cancellations (
    payment_id   TEXT PRIMARY KEY REFERENCES payments (id),
    reason       TEXT NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    last_error   TEXT,
    created_at   TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL
);
