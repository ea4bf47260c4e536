-- Admin dashboard sessions (crate::admin). `id_hash`: SHA-256 of the
-- random 256-bit session id in the cookie (the id itself is never stored).
-- `kind`: `password` (the admin password: every organisation, switchable)
-- or `api_key` (a secret key: the organisation named at sign-in only).
-- `account_id`: the organisation the session acts in now.
-- `last_seen_at` drives the idle timeout, `expires_at` the absolute one.
CREATE TABLE admin_sessions (
    id_hash       TEXT PRIMARY KEY,
    kind          TEXT NOT NULL,
    account_id    TEXT NOT NULL DEFAULT 'default',
    created_at    TIMESTAMPTZ NOT NULL,
    last_seen_at  TIMESTAMPTZ NOT NULL,
    expires_at    TIMESTAMPTZ NOT NULL
);
CREATE INDEX admin_sessions_expires ON admin_sessions (expires_at);

-- The dashboard's lists are per account, newest first, keyset on
-- (created_at, id): these serve them without a sort of the whole table
-- (scripts/bench-admin-pages.sh, 100,000 payments).
CREATE INDEX payments_account_created ON payments (account_id, created_at, id);
CREATE INDEX customers_account_email ON customers (account_id, lower(email));
CREATE INDEX orders_account_email ON orders (account_id, lower(email));
CREATE INDEX orders_account_created ON orders (account_id, created_at, id);
