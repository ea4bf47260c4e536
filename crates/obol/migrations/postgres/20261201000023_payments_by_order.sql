-- An order's payments, and the dashboard's e-mail search (an order's
-- e-mail leads to its payments), read by order id: without this index
-- both scanned every payment of the account.
CREATE INDEX payments_order ON payments (order_id, created_at);
