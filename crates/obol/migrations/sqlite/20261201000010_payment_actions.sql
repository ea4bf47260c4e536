-- 3-D Secure action links: a member whose charge-run item ended
-- `requires_action` is e-mailed a link to obol's action page
-- (`/pay/actions/{token}`), where they confirm the item's own
-- PaymentIntent on-session. The token is 32 random bytes, stored only as
-- its SHA-256 hash; one link per item (minted in the transaction that
-- queues its e-mail). It works until it expires or the item leaves
-- requires_action. `confirm_attempts`: confirmations sent to Stripe so far,
-- part of each one's idempotency key.
CREATE TABLE payment_action_links (
    token_hash          TEXT PRIMARY KEY,
    account_id          TEXT NOT NULL DEFAULT 'default',
    charge_run_item_id  TEXT NOT NULL REFERENCES charge_run_items (id),
    customer_id         TEXT NOT NULL REFERENCES customers (id),
    payment_intent_id   TEXT NOT NULL,
    confirm_attempts    INTEGER NOT NULL DEFAULT 0,
    expires_at          TEXT NOT NULL,
    created_at          TEXT NOT NULL
);
CREATE UNIQUE INDEX payment_action_links_item ON payment_action_links (charge_run_item_id);
