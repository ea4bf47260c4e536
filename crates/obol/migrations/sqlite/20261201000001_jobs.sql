-- One durable job runner for all background work: authorization release
-- retries, refund resubmission, the recurring reconciliation pass.
-- Several obol processes may share this table; a job is claimed with a
-- lease (locked_until, locked_by) and every write after the claim is
-- guarded by that lease.

CREATE TABLE jobs (
    id               TEXT PRIMARY KEY,
    -- release_authorization, resubmit_refund, reconcile
    kind             TEXT NOT NULL,
    -- JSON object, the kind's own payload
    payload          TEXT NOT NULL,
    -- the Stripe account the job belongs to ('default': the platform account)
    account_id       TEXT NOT NULL DEFAULT 'default',
    -- one logical job ("release pay_X") is queued or running at most once
    dedupe_key       TEXT,
    -- queued, running, succeeded, dead
    status           TEXT NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    -- from the kind's retry schedule when the job was queued
    max_attempts     INTEGER NOT NULL,
    next_attempt_at  TEXT NOT NULL,
    locked_until     TEXT,
    locked_by        TEXT,
    last_error       TEXT,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    finished_at      TEXT
);
CREATE UNIQUE INDEX jobs_dedupe_active ON jobs (dedupe_key) WHERE status IN ('queued', 'running');
CREATE INDEX jobs_due ON jobs (status, next_attempt_at);
CREATE INDEX jobs_created ON jobs (created_at, id);

-- Every attempt of every job, for operators and tests: who ran it, when,
-- and how it ended.
CREATE TABLE job_runs (
    id           TEXT PRIMARY KEY,
    job_id       TEXT NOT NULL REFERENCES jobs (id),
    attempt      INTEGER NOT NULL,
    worker       TEXT NOT NULL,
    started_at   TEXT NOT NULL,
    finished_at  TEXT,
    -- running, succeeded, retry, dead, lease_lost (the worker's lease had
    -- passed to another when it finished), lease_expired (the worker
    -- vanished; closed by the next claimant)
    outcome      TEXT NOT NULL,
    error        TEXT
);
CREATE INDEX job_runs_job ON job_runs (job_id, started_at);
