-- The overview's payments-per-day plot keeps each closed day's totals
-- (payment_day_totals, with a payment_days_cached row per day computed,
-- empty days included) instead of summing every payment of 30 days on
-- every load. A day's totals hold while its version is the one they were
-- computed at: every write to a payment of a day before today moves that
-- day's version (these triggers), so no code path can forget to. Today's
-- payments move no version (today is always summed live), so the hot path
-- of new payments writes nothing more.
CREATE TABLE payment_day_versions (
    account_id TEXT NOT NULL,
    day TEXT NOT NULL,
    version INTEGER NOT NULL,
    PRIMARY KEY (account_id, day)
);
CREATE TABLE payment_days_cached (
    account_id TEXT NOT NULL,
    day TEXT NOT NULL,
    version INTEGER NOT NULL,
    PRIMARY KEY (account_id, day)
);
CREATE TABLE payment_day_totals (
    account_id TEXT NOT NULL,
    day TEXT NOT NULL,
    status TEXT NOT NULL,
    currency TEXT NOT NULL,
    payments INTEGER NOT NULL,
    amount INTEGER NOT NULL,
    PRIMARY KEY (account_id, day, status, currency)
);
CREATE TRIGGER payments_day_inserted AFTER INSERT ON payments
WHEN substr(NEW.created_at, 1, 10) < strftime('%Y-%m-%d', 'now')
BEGIN
    INSERT INTO payment_day_versions (account_id, day, version)
    VALUES (NEW.account_id, substr(NEW.created_at, 1, 10), 1)
    ON CONFLICT (account_id, day) DO UPDATE SET version = version + 1;
END;
CREATE TRIGGER payments_day_updated AFTER UPDATE OF status, amount, currency, created_at ON payments
WHEN substr(OLD.created_at, 1, 10) < strftime('%Y-%m-%d', 'now')
BEGIN
    INSERT INTO payment_day_versions (account_id, day, version)
    VALUES (OLD.account_id, substr(OLD.created_at, 1, 10), 1)
    ON CONFLICT (account_id, day) DO UPDATE SET version = version + 1;
END;
CREATE TRIGGER payments_day_deleted AFTER DELETE ON payments
WHEN substr(OLD.created_at, 1, 10) < strftime('%Y-%m-%d', 'now')
BEGIN
    INSERT INTO payment_day_versions (account_id, day, version)
    VALUES (OLD.account_id, substr(OLD.created_at, 1, 10), 1)
    ON CONFLICT (account_id, day) DO UPDATE SET version = version + 1;
END;
-- A payment whose creation time moves (no code path does) changes the day
-- it moves to as well.
CREATE TRIGGER payments_day_moved AFTER UPDATE OF created_at ON payments
WHEN substr(NEW.created_at, 1, 10) <> substr(OLD.created_at, 1, 10)
    AND substr(NEW.created_at, 1, 10) < strftime('%Y-%m-%d', 'now')
BEGIN
    INSERT INTO payment_day_versions (account_id, day, version)
    VALUES (NEW.account_id, substr(NEW.created_at, 1, 10), 1)
    ON CONFLICT (account_id, day) DO UPDATE SET version = version + 1;
END;
