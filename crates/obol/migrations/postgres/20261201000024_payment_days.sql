-- The overview's payments-per-day plot keeps each closed day's totals
-- (payment_day_totals, with a payment_days_cached row per day computed,
-- empty days included) instead of summing every payment of 30 days on
-- every load. A day's totals hold while its version is the one they were
-- computed at: every write to a payment of a day before today (UTC) moves
-- that day's version (this trigger), so no code path can forget to.
-- Today's payments move no version (today is always summed live): new
-- payments, the hot path, take no shared row lock. The totals and the
-- versions are read in one statement, so one snapshot: a write committed
-- after it moved the version, and the totals are computed again.
CREATE TABLE payment_day_versions (
    account_id TEXT NOT NULL,
    day TEXT NOT NULL,
    version BIGINT NOT NULL,
    PRIMARY KEY (account_id, day)
);
CREATE TABLE payment_days_cached (
    account_id TEXT NOT NULL,
    day TEXT NOT NULL,
    version BIGINT NOT NULL,
    PRIMARY KEY (account_id, day)
);
CREATE TABLE payment_day_totals (
    account_id TEXT NOT NULL,
    day TEXT NOT NULL,
    status TEXT NOT NULL,
    currency TEXT NOT NULL,
    payments BIGINT NOT NULL,
    amount BIGINT NOT NULL,
    PRIMARY KEY (account_id, day, status, currency)
);
-- A changed payment moves the version of its day, and of the day it moves
-- to when its creation time changes (no code path does).
CREATE FUNCTION payments_day_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    today TEXT := to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD');
    acct TEXT;
    d TEXT;
BEGIN
    FOR acct, d IN
        SELECT DISTINCT a, x FROM (VALUES
            (CASE WHEN TG_OP <> 'DELETE' THEN NEW.account_id END,
             CASE WHEN TG_OP <> 'DELETE' THEN to_char(NEW.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') END),
            (CASE WHEN TG_OP <> 'INSERT' THEN OLD.account_id END,
             CASE WHEN TG_OP <> 'INSERT' THEN to_char(OLD.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') END)
        ) AS days (a, x)
        WHERE x IS NOT NULL AND x < today
    LOOP
        INSERT INTO payment_day_versions (account_id, day, version) VALUES (acct, d, 1)
        ON CONFLICT (account_id, day) DO UPDATE SET version = payment_day_versions.version + 1;
    END LOOP;
    RETURN NULL;
END
$$;
CREATE TRIGGER payments_day_changed
    AFTER INSERT OR DELETE OR UPDATE OF status, amount, currency, created_at ON payments
    FOR EACH ROW EXECUTE FUNCTION payments_day_changed();
