-- Customers mirrored from Stripe, and the charge details of a payment.
--
-- `source`: `obol` (created through obol's API) or `stripe` (adopted from
-- a Stripe customer obol did not create, from its `customer.*` events).
-- `stripe_observed`: the event time (unix seconds) of the newest Stripe
-- observation of the e-mail and name applied; an older one changes
-- nothing. `stripe_deleted_at`: when Stripe's `customer.deleted` was
-- applied; the Stripe link is kept (payments name it) but is dead.
ALTER TABLE customers ADD COLUMN source TEXT NOT NULL DEFAULT 'obol';
ALTER TABLE customers ADD COLUMN stripe_observed INTEGER NOT NULL DEFAULT 0;
ALTER TABLE customers ADD COLUMN stripe_deleted_at TEXT;
-- One obol customer per Stripe customer: a concurrent adoption of the
-- same `cus_…` loses on this index and reads the winner.
CREATE UNIQUE INDEX customers_account_stripe_customer ON customers (account_id, stripe_customer_id);

-- The payment's latest charge as Stripe's `charge.*` events show it.
-- `charge_observed`: the event time of the newest charge observation
-- applied (see crate::payments::observe_charge for the tie rule).
ALTER TABLE payments ADD COLUMN stripe_charge_id TEXT;
ALTER TABLE payments ADD COLUMN charge_status TEXT;
ALTER TABLE payments ADD COLUMN card_brand TEXT;
ALTER TABLE payments ADD COLUMN card_last4 TEXT;
ALTER TABLE payments ADD COLUMN receipt_url TEXT;
ALTER TABLE payments ADD COLUMN failure_code TEXT;
ALTER TABLE payments ADD COLUMN decline_code TEXT;
ALTER TABLE payments ADD COLUMN failure_message TEXT;
ALTER TABLE payments ADD COLUMN charge_observed INTEGER NOT NULL DEFAULT 0;
