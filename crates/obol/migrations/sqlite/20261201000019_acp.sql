-- Agentic Commerce Protocol (ops::acp): the checkout sessions agent
-- platforms create at /acp/checkout_sessions, and the Idempotency-Key
-- records of their POSTs. Expand only: new tables, which old binaries
-- never read.

-- One checkout session. `cart` is the agent's input as last set (JSON:
-- line items, buyer, fulfillment details, selected options); prices and
-- totals are never stored here, obol computes them from the catalog on
-- every answer. `payment_intent_id` is the attempt being charged (unique:
-- an order created from that intent finds its session by it),
-- `completing_until` the lease of the one complete call that may charge.
CREATE TABLE acp_checkout_sessions (
    id                      TEXT PRIMARY KEY,
    account_id              TEXT NOT NULL,
    status                  TEXT NOT NULL,
    currency                TEXT NOT NULL,
    cart                    TEXT NOT NULL,
    payment_intent_id       TEXT,
    attempts                INTEGER NOT NULL DEFAULT 0,
    authentication_metadata TEXT,
    decline_message         TEXT,
    order_id                TEXT,
    completing_until        TEXT,
    created_at              TEXT NOT NULL,
    updated_at              TEXT NOT NULL
);
CREATE UNIQUE INDEX acp_checkout_sessions_intent ON acp_checkout_sessions (payment_intent_id);
CREATE INDEX acp_checkout_sessions_order ON acp_checkout_sessions (account_id, order_id);

-- Idempotency-Key records (RFC §6): scoped by credential (a fingerprint
-- of the ACP key, never the key), route and key; `body_hash` is SHA-256
-- of the canonical body. `status` is null while the first request is in
-- flight (until `locked_until`); 5xx answers are deleted, not stored.
-- Kept until `expires_at` (24 h), then swept by the acp_idempotency_sweep job.
CREATE TABLE acp_idempotency_keys (
    credential   TEXT NOT NULL,
    route        TEXT NOT NULL,
    idem_key     TEXT NOT NULL,
    body_hash    TEXT NOT NULL,
    status       INTEGER,
    response     TEXT,
    locked_until TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    expires_at   TEXT NOT NULL,
    PRIMARY KEY (credential, route, idem_key)
);
CREATE INDEX acp_idempotency_keys_expiry ON acp_idempotency_keys (expires_at);
