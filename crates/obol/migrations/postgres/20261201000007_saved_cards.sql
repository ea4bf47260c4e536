-- Saved cards: obol's copy of each card Stripe keeps for a customer, and
-- the links that let a member save a new one.
--
-- A card's row is keyed by Stripe's `pm_…` id. Events arrive in any order:
-- `stripe_updated` is the unix time (seconds) of the newest observation of
-- the card's details applied, and an older one changes nothing; a detached
-- card stays detached (Stripe never attaches it again) and is never the
-- default. `default_observed` is the time of the newest observation of the
-- customer's default card (every row of one Stripe customer carries the
-- same value), so a late `customer.updated` cannot bring back an old
-- default. A row may exist before its details are known (a default named
-- before its `payment_method.attached` arrived): brand, last4 and expiry
-- are NULL until then.
CREATE TABLE payment_methods (
    stripe_payment_method_id  TEXT PRIMARY KEY,
    account_id                TEXT NOT NULL DEFAULT 'default',
    -- obol's customer; NULL until known
    customer_id               TEXT REFERENCES customers (id),
    stripe_customer_id        TEXT NOT NULL,
    brand                     TEXT,
    last4                     TEXT,
    exp_month                 BIGINT,
    exp_year                  BIGINT,
    is_default                BOOLEAN NOT NULL DEFAULT FALSE,
    detached                  BOOLEAN NOT NULL DEFAULT FALSE,
    stripe_updated            BIGINT NOT NULL DEFAULT 0,
    default_observed          BIGINT NOT NULL DEFAULT 0,
    created_at                TIMESTAMPTZ NOT NULL,
    updated_at                TIMESTAMPTZ NOT NULL
);
CREATE INDEX payment_methods_customer ON payment_methods (account_id, customer_id);
CREATE INDEX payment_methods_stripe_customer ON payment_methods (stripe_customer_id);

-- Events name Stripe's customer; obol finds its own by it.
CREATE INDEX customers_stripe_customer ON customers (stripe_customer_id);

-- A member's link to the card-update page: a token (32 random bytes,
-- stored hashed) that saves a card for one customer until it expires.
-- `used_at`: when a card was first saved through it. The link's live
-- SetupIntent is reused while Stripe can still confirm it.
CREATE TABLE card_update_links (
    token_hash              TEXT PRIMARY KEY,
    account_id              TEXT NOT NULL DEFAULT 'default',
    customer_id             TEXT NOT NULL REFERENCES customers (id),
    stripe_setup_intent_id  TEXT,
    expires_at              TIMESTAMPTZ NOT NULL,
    used_at                 TIMESTAMPTZ,
    created_at              TIMESTAMPTZ NOT NULL
);
CREATE INDEX card_update_links_customer ON card_update_links (customer_id);
