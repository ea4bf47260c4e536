-- Stripe Connect's OAuth flow: one row per connect link
-- (POST /v1/organizations/{id}/connect-links). Both secrets in it are
-- stored hashed (SHA-256, like every capability token):
--   link_hash   the link's token; visiting the link uses it up (link_used_at)
--               and mints the OAuth state;
--   state_hash  the secret half of the OAuth state ("<id>.<secret>"); the
--               callback uses it up (state_used_at), once.
-- Expand only: a new table, which old binaries never read.

CREATE TABLE connect_links (
    id                TEXT PRIMARY KEY,
    organization_id   TEXT NOT NULL,
    return_url        TEXT NOT NULL,
    link_hash         TEXT NOT NULL,
    link_expires_at   TEXT NOT NULL,
    link_used_at      TEXT,
    state_hash        TEXT,
    state_expires_at  TEXT,
    state_used_at     TEXT,
    outcome           TEXT,
    created_at        TEXT NOT NULL
);
CREATE UNIQUE INDEX connect_links_link ON connect_links (link_hash);
CREATE INDEX connect_links_organization ON connect_links (organization_id, created_at);
