-- Organisations: the businesses one obol serves (Stripe Connect: each is
-- one connected Stripe account). An organisation's id is the account_id
-- its rows carry (the tenancy column of 20261201000004), so every
-- existing query already keeps one organisation's rows from another's;
-- 'default' stays the platform's own account, which has no row here.
--
-- The stripe_* columns are filled by the connect step (OAuth): until an
-- organisation is connected it is 'pending' and obol makes no Stripe call
-- for it. Tokens are never stored in plain text: *_enc hold the
-- encrypted form of crate::secrets (v1:<key fingerprint>:<data>).
-- Expand only: a new table, which old binaries never read.

CREATE TABLE organizations (
    id                         TEXT PRIMARY KEY,
    name                       TEXT NOT NULL,
    external_id                TEXT,
    stripe_status              TEXT NOT NULL DEFAULT 'pending',
    stripe_account_id          TEXT,
    account_name               TEXT,
    livemode                   INTEGER,
    stripe_access_token_enc    TEXT,
    stripe_refresh_token_enc   TEXT,
    connected_at               TEXT,
    disconnected_at            TEXT,
    created_at                 TEXT NOT NULL,
    updated_at                 TEXT NOT NULL,
    CHECK (stripe_status IN ('pending', 'active', 'disconnected'))
);
CREATE UNIQUE INDEX organizations_external_id ON organizations (external_id);
CREATE UNIQUE INDEX organizations_stripe_account ON organizations (stripe_account_id);
CREATE INDEX organizations_created ON organizations (created_at, id);

-- The encryption key obol generated for itself in sandbox mode, when
-- secrets.encryption_key is not set (one row, id 'sandbox'). Kept in the
-- database, not in a file, so every obol process sharing it (and a
-- PostgreSQL setup, which has no file beside its database) uses the same
-- key. It protects nothing real: sandbox tokens move no money. With real
-- Stripe keys obol never reads it.
CREATE TABLE generated_keys (
    id           TEXT PRIMARY KEY,
    key_base64   TEXT NOT NULL,
    fingerprint  TEXT NOT NULL,
    created_at   TEXT NOT NULL
);
