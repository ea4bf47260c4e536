-- Tenancy: every row that belongs to a Stripe account says which, so
-- Stripe Connect (one connected account per organisation) adds accounts
-- without a rewrite. 'default' is the platform's own account, which every
-- existing row belongs to. Expand only: old binaries ignore the column and
-- its default keeps their inserts valid.
--
-- api_keys stay without one: they are obol's own credentials, and a
-- request names its organisation with a header.

ALTER TABLE customer_tokens ADD COLUMN account_id TEXT NOT NULL DEFAULT 'default';
ALTER TABLE payment_timeline ADD COLUMN account_id TEXT NOT NULL DEFAULT 'default';
ALTER TABLE sync_state ADD COLUMN account_id TEXT NOT NULL DEFAULT 'default';
ALTER TABLE refunds ADD COLUMN account_id TEXT NOT NULL DEFAULT 'default';
ALTER TABLE disputes ADD COLUMN account_id TEXT NOT NULL DEFAULT 'default';
ALTER TABLE dispute_timeline ADD COLUMN account_id TEXT NOT NULL DEFAULT 'default';
ALTER TABLE tasks ADD COLUMN account_id TEXT NOT NULL DEFAULT 'default';
ALTER TABLE webhook_endpoints ADD COLUMN account_id TEXT NOT NULL DEFAULT 'default';
ALTER TABLE notifications ADD COLUMN account_id TEXT NOT NULL DEFAULT 'default';
ALTER TABLE notification_deliveries ADD COLUMN account_id TEXT NOT NULL DEFAULT 'default';
ALTER TABLE order_line_items ADD COLUMN account_id TEXT NOT NULL DEFAULT 'default';
ALTER TABLE pending_cancellations ADD COLUMN account_id TEXT NOT NULL DEFAULT 'default';

CREATE INDEX disputes_account_created ON disputes (account_id, created_at, id);
CREATE INDEX tasks_account_created ON tasks (account_id, created_at, id);
CREATE INDEX webhook_endpoints_account ON webhook_endpoints (account_id);
