-- What Stripe captured of each payment (the intent's amount_received, the
-- charge's amount_captured): refunds are bounded by it, not by the
-- authorized amount. Expand only: rows written before this (or by an older
-- binary during a rolling upgrade) hold 0, which obol reads as "captured
-- in full" for a captured payment, so no backfill rewrites the table.
ALTER TABLE payments ADD COLUMN amount_captured BIGINT NOT NULL DEFAULT 0;
