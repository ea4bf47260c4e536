-- The catalog (products and shipping methods, priced by the host's
-- backend), cart lines naming their product, and payment links: a
-- capability token (stored hashed) for paying one order on a hosted page.

CREATE TABLE products (
    id           TEXT PRIMARY KEY,
    account_id   TEXT NOT NULL DEFAULT 'default',
    name         TEXT NOT NULL,
    unit_amount  INTEGER NOT NULL,
    currency     TEXT NOT NULL,
    active       INTEGER NOT NULL DEFAULT 1,
    stock        INTEGER,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL
);
CREATE INDEX products_account_created ON products (account_id, created_at, id);

CREATE TABLE shipping_methods (
    id           TEXT PRIMARY KEY,
    account_id   TEXT NOT NULL DEFAULT 'default',
    name         TEXT NOT NULL,
    amount       INTEGER NOT NULL,
    currency     TEXT NOT NULL,
    active       INTEGER NOT NULL DEFAULT 1,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL
);
CREATE INDEX shipping_methods_account_created ON shipping_methods (account_id, created_at, id);

ALTER TABLE order_line_items ADD COLUMN product_id TEXT;

CREATE TABLE payment_links (
    id                        TEXT PRIMARY KEY,
    account_id                TEXT NOT NULL DEFAULT 'default',
    token_hash                TEXT NOT NULL UNIQUE,
    order_id                  TEXT NOT NULL REFERENCES orders (id),
    payment_id                TEXT NOT NULL,
    stripe_payment_intent_id  TEXT NOT NULL,
    status                    TEXT NOT NULL,
    expires_at                TEXT NOT NULL,
    created_at                TEXT NOT NULL,
    updated_at                TEXT NOT NULL,
    completed_at              TEXT
);
CREATE INDEX payment_links_intent ON payment_links (stripe_payment_intent_id);
