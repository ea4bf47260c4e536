-- The inbox backlog `/metrics` and `/health` read at every scrape (count
-- and oldest `received_at` of waiting events): an index over the waiting
-- rows only, so the query costs the backlog's size, not the inbox's.
CREATE INDEX webhook_events_waiting ON webhook_events (status, received_at)
    WHERE status IN ('received', 'failed');
