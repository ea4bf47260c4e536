//! The durable job runner: every piece of background work obol does after a
//! request has been answered (retrying an authorization release, resubmitting
//! a refund, the recurring reconciliation pass) is a row in `jobs`.
//!
//! What lives here: the job kinds and their one retry-schedule table
//! (`JobKind::retry_delays`), the job state machine (`transition`, pure and
//! property-tested), the runner loop that claims due jobs with a lease and
//! records every attempt in `job_runs`, and one file per kind with its
//! handler. Handlers are idempotent: a job may run again after a worker died
//! mid-attempt (its lease expires and another worker claims it), so each one
//! carries its own Stripe idempotency key or checks the current state first.
//!
//! What must not: SQL (it is in `storage/jobs.rs`) and business rules (the
//! handlers call `ops/`, which the API calls too).
//!
//! The ordering rule: a job moves only by `transition`; the storage writes
//! after a claim are guarded by `status = 'running' AND locked_by = worker`,
//! so a worker that lost its lease cannot overwrite a newer attempt. A
//! handler's timeout (three quarters of the lease: 45 s of the default
//! 60 s) is shorter than the lease: a slow attempt is abandoned before
//! another worker may claim the job, so two attempts of one job never run
//! at once.

pub mod accounting;
pub mod acp;
pub mod billing_notice;
pub mod card_update_notice;
pub mod charge_run;
pub mod charge_run_notice;
pub mod email;
pub mod invoice_sweep;
pub mod payout_transactions;
pub mod reconcile;
pub mod refund_resubmit;
pub mod release;

use std::time::Duration;
use tracing::Instrument;

use serde::Serialize;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::context::{AccountId, Ctx};
use crate::error::Result;
use crate::storage::jobs::{JobRow, NewJobRow};
use crate::storage::{self, Conn};

/// Jobs one worker claims at a time; they run concurrently, each within
/// its own timeout, so a batch never outlives its lease.
const CLAIM_BATCH: i64 = 8;

/// Wakes the runners of this process when a job is queued, so a job queued
/// by a request starts at once instead of at the next poll. Process-wide
/// because jobs are queued from `ops/`, which has no handle on the runners;
/// other processes find the job on their next poll.
static WAKE: Notify = Notify::const_new();

/// Tells this process's runners a job is waiting.
pub fn wake() {
    WAKE.notify_one();
}

/// The kinds of job. Matched exhaustively: a new kind must say its retry
/// schedule and its handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    /// Cancel an authorization Stripe could not be reached for.
    ReleaseAuthorization,
    /// Send a refund Stripe has not accepted yet, with its original key.
    ResubmitRefund,
    /// One reconciliation pass; queues the next when it ends.
    Reconcile,
    /// An invoice was paid: queue one accounting sync per target.
    InvoicePaid,
    /// Send one invoice payment to one accounting target.
    AccountingSync,
    /// Settle invoice intents left incomplete; queues the next when it ends.
    InvoiceSweep,
    /// One worker pass over a running charge run; queues the next while
    /// the run has items left.
    ChargeRun,
    /// Send one member e-mail from the outbox.
    SendEmail,
    /// Ask a member whose charge failed (or who has no card) to update it.
    ChargeRunNotice,
    /// Ask a member whose Stripe invoice (a renewal, a scheduled payment)
    /// failed to update their card.
    BillingInvoiceNotice,
    /// Fetch and store the balance transactions a paid payout settles.
    PayoutTransactions,
    /// Send one ACP order event to the agent platform (`acp.webhook_url`).
    AcpOrderEvent,
    /// Delete ACP Idempotency-Key records past their 24 hours; recurring.
    AcpIdempotencySweep,
}

impl JobKind {
    pub const ALL: [JobKind; 13] = [
        JobKind::ReleaseAuthorization,
        JobKind::ResubmitRefund,
        JobKind::Reconcile,
        JobKind::InvoicePaid,
        JobKind::AccountingSync,
        JobKind::InvoiceSweep,
        JobKind::ChargeRun,
        JobKind::SendEmail,
        JobKind::ChargeRunNotice,
        JobKind::BillingInvoiceNotice,
        JobKind::PayoutTransactions,
        JobKind::AcpOrderEvent,
        JobKind::AcpIdempotencySweep,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::ReleaseAuthorization => "release_authorization",
            JobKind::ResubmitRefund => "resubmit_refund",
            JobKind::Reconcile => "reconcile",
            JobKind::InvoicePaid => "invoice_paid",
            JobKind::AccountingSync => "accounting_sync",
            JobKind::InvoiceSweep => "invoice_sweep",
            JobKind::ChargeRun => "charge_run",
            JobKind::SendEmail => "send_email",
            JobKind::ChargeRunNotice => "charge_run_notice",
            JobKind::BillingInvoiceNotice => "billing_invoice_notice",
            JobKind::PayoutTransactions => "payout_transactions",
            JobKind::AcpOrderEvent => "acp_order_event",
            JobKind::AcpIdempotencySweep => "acp_idempotency_sweep",
        }
    }

    pub fn parse(s: &str) -> Option<JobKind> {
        JobKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// THE retry-schedule table: the delays between attempts, in units of
    /// `jobs.retry_unit_ms` (default one second). A job has one attempt
    /// more than it has delays; after the last it is `dead`.
    pub const fn retry_delays(self) -> &'static [u64] {
        match self {
            // 5 s, 30 s, 2 min, 10 min, 30 min, 1 h, 2 h, 4 h, 8 h, 12 h:
            // about 28 hours, well inside the 7 days an authorization lives.
            JobKind::ReleaseAuthorization => {
                &[5, 30, 120, 600, 1800, 3600, 7200, 14400, 28800, 43200]
            }
            // 1 min, 5 min, 15 min, 1 h, 2 h, 6 h, 12 h, 24 h: about two
            // days; a refund Stripe never accepts needs a person.
            JobKind::ResubmitRefund => &[60, 300, 900, 3600, 7200, 21600, 43200, 86400],
            // 30 s, 1 min, 2 min: a failed pass is retried a little, then
            // the next scheduled pass takes over.
            JobKind::Reconcile => &[30, 60, 120],
            // Local work only (a database write): retried quickly, for a day.
            JobKind::InvoicePaid => &[5, 30, 120, 600, 3600, 21600, 86400],
            // 10 s, 1 min, 5 min, 15 min, 1 h, 2 h, 6 h, 12 h, 24 h, 24 h:
            // about three days, for an accounting API's outage or an
            // expired token someone renews; then `sync_job.failed`.
            JobKind::AccountingSync => &[10, 60, 300, 900, 3600, 7200, 21600, 43200, 86400, 86400],
            // Like reconcile: the next scheduled sweep takes over.
            JobKind::InvoiceSweep => &[30, 60, 120],
            // A pass failed (the database): retried soon; items are safe in
            // their claims meanwhile.
            JobKind::ChargeRun => &[1, 5, 15, 60, 300, 900],
            // 30 s, 2 min, 10 min, 30 min, 1 h, 3 h, 6 h, 12 h: about a day
            // for a mail server's outage or a full queue (4xx); a 5xx
            // answer fails the e-mail at once.
            JobKind::SendEmail => &[30, 120, 600, 1800, 3600, 10800, 21600, 43200],
            // Stripe (the member's Stripe customer, the link) and the
            // database: like an e-mail, about a day.
            JobKind::ChargeRunNotice => &[30, 120, 600, 1800, 3600, 10800, 21600, 43200],
            // The same calls as a charge run's notice.
            JobKind::BillingInvoiceNotice => &[30, 120, 600, 1800, 3600, 10800, 21600, 43200],
            // 5 s, 30 s, 2 min, 10 min, 30 min, 1 h, 3 h, 6 h, 12 h, 24 h:
            // Stripe's outage, or a payout it is still reconciling, for
            // about two days; then an operator retries the dead job.
            JobKind::PayoutTransactions => {
                &[5, 30, 120, 600, 1800, 3600, 10800, 21600, 43200, 86400]
            }
            // The notification outbox's schedule, shortened: 5 s, 30 s,
            // 2 min, 10 min, 30 min, 1 h, 2 h, 4 h, 8 h, 12 h, 12 h, 12 h:
            // about two days of an agent platform's outage.
            JobKind::AcpOrderEvent => &[
                5, 30, 120, 600, 1800, 3600, 7200, 14400, 28800, 43200, 43200, 43200,
            ],
            // Like reconcile: the next scheduled sweep takes over.
            JobKind::AcpIdempotencySweep => &[30, 60, 120],
        }
    }

    pub fn max_attempts(self) -> i32 {
        i32::try_from(self.retry_delays().len() + 1).unwrap_or(i32::MAX)
    }
}

// The job state machine is pure and lives with the others in `ledger/`.
pub use crate::ledger::job::{transition, JobInput, JobState, JobStatus, Refusal};

/// The delay before the attempt after `attempts` failed ones, or `None`
/// when the schedule is spent.
pub fn retry_delay(kind: JobKind, attempts: i32, unit: Duration) -> Option<Duration> {
    let index = usize::try_from(attempts.checked_sub(1)?).ok()?;
    let units = kind.retry_delays().get(index)?;
    Some(unit.saturating_mul(u32::try_from(*units).unwrap_or(u32::MAX)))
}

/// Why an attempt failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobError {
    /// Worth trying again on the schedule (Stripe unreachable, a timeout).
    Retry(String),
    /// Retrying cannot help: the job goes dead at once.
    Permanent(String),
}

impl JobError {
    fn message(&self) -> &str {
        match self {
            JobError::Retry(m) | JobError::Permanent(m) => m,
        }
    }
}

/// A job to queue.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub kind: JobKind,
    pub payload: serde_json::Value,
    pub account_id: AccountId,
    /// Names the logical job ("release_authorization:pay_X"): while one
    /// with this key is queued or running, queuing it again does nothing.
    pub dedupe_key: Option<String>,
    pub run_at: chrono::DateTime<chrono::Utc>,
}

/// Queues a job in the caller's connection or transaction; `None` when the
/// same logical job is already queued or running. The caller calls `wake`
/// after committing (or lets the next poll find it).
pub async fn enqueue(conn: &mut Conn<'_>, job: &NewJob) -> Result<Option<JobRow>> {
    let payload = job.payload.to_string();
    conn.insert_job(&NewJobRow {
        kind: job.kind.as_str(),
        payload: &payload,
        account_id: job.account_id.as_str(),
        dedupe_key: job.dedupe_key.as_deref(),
        max_attempts: job.kind.max_attempts(),
        run_at: job.run_at,
        now: storage::now(),
    })
    .await
}

/// Runner settings, from `jobs.*` and `reconcile.interval_seconds`.
#[derive(Debug, Clone)]
pub struct JobSettings {
    pub workers: usize,
    pub poll_interval: Duration,
    pub retry_unit: Duration,
    /// How long a claim holds a job (`jobs.lease_seconds`): how soon a job
    /// whose worker died is taken over.
    pub lease: Duration,
    /// Zero: reconciliation passes are not scheduled.
    pub reconcile_interval: Duration,
    /// Zero: stale invoice intents are not swept.
    pub invoice_sweep_interval: Duration,
}

impl JobSettings {
    /// How long one attempt may take: below the lease, so an attempt is
    /// abandoned before the job can be claimed again.
    pub fn handler_timeout(&self) -> Duration {
        self.lease.saturating_mul(3) / 4
    }

    pub fn from_config(config: &Config) -> JobSettings {
        JobSettings {
            workers: config.jobs.workers,
            poll_interval: Duration::from_millis(config.jobs.poll_interval_ms),
            retry_unit: Duration::from_millis(config.jobs.retry_unit_ms),
            lease: Duration::from_secs(config.jobs.lease_seconds),
            reconcile_interval: Duration::from_secs(config.reconcile.interval_seconds),
            invoice_sweep_interval: Duration::from_secs(config.invoices.sweep_interval_seconds),
        }
    }
}

/// What handlers get: the context every use case runs with, and the
/// runner's settings.
#[derive(Clone)]
pub struct JobCtx {
    pub ctx: Ctx,
    pub settings: JobSettings,
    /// The configured accounting targets.
    pub accounting: std::sync::Arc<crate::accounting::Accounting>,
    /// The SMTP server member e-mails go through (none: they are logged).
    pub email: std::sync::Arc<crate::email::Mailer>,
}

/// One worker: claims due jobs, runs them, records every attempt.
pub struct Runner {
    ctx: JobCtx,
    worker: String,
}

impl Runner {
    /// `worker` names this worker in `locked_by` and `job_runs`; unique per
    /// task across processes (process id and a ULID).
    pub fn new(ctx: JobCtx, worker: String) -> Runner {
        Runner { ctx, worker }
    }

    pub fn worker_id() -> String {
        format!(
            "{}-{}",
            std::process::id(),
            ulid::Ulid::new().to_string().to_ascii_lowercase()
        )
    }

    pub async fn run(self, stop: CancellationToken) {
        tracing::debug!(worker = %self.worker, poll_ms = self.ctx.settings.poll_interval.as_millis() as u64, "job runner started");
        loop {
            if stop.is_cancelled() {
                break;
            }
            let ran = match self.run_once().await {
                Ok(n) => n,
                Err(e) => {
                    tracing::error!(error = %e, "job runner could not claim jobs");
                    0
                }
            };
            if ran > 0 {
                continue;
            }
            tokio::select! {
                () = stop.cancelled() => break,
                () = WAKE.notified() => {}
                () = tokio::time::sleep(self.ctx.settings.poll_interval) => {}
            }
        }
    }

    /// Claims one batch of due jobs and runs it; returns how many ran.
    pub async fn run_once(&self) -> Result<usize> {
        let now = storage::now();
        let lock_until =
            now + chrono::Duration::from_std(self.ctx.settings.lease).unwrap_or_default();
        let claimed = {
            let mut tx = self.ctx.ctx.store().begin().await?;
            let mut conn = tx.conn();
            for dead in conn.bury_expired_jobs(now).await? {
                tracing::error!(job = %dead.id, kind = %dead.kind, attempts = dead.attempts,
                    "job is dead: its worker stopped answering during the last attempt");
                if let Some(kind) = JobKind::parse(&dead.kind) {
                    schedule_successor(&mut conn, &self.ctx.settings, kind, &dead, now).await?;
                }
            }
            let claimed = conn
                .claim_due_jobs(&self.worker, now, lock_until, CLAIM_BATCH)
                .await?;
            tx.commit().await?;
            claimed
        };
        let n = claimed.len();
        tracing::trace!(worker = %self.worker, claimed = n, "claimed jobs");
        let runs = claimed.into_iter().map(|job| {
            let span = job_span(&job);
            self.run_job(job).instrument(span)
        });
        for result in futures::future::join_all(runs).await {
            if let Err(e) = result {
                tracing::error!(error = %e, "could not record a job attempt");
            }
        }
        Ok(n)
    }

    async fn run_job(&self, job: JobRow) -> Result<()> {
        let run_id = {
            let mut h = self.ctx.ctx.store().acquire().await?;
            h.conn()
                .insert_job_run(&job.id, job.attempts, &self.worker, storage::now())
                .await?
        };
        let kind = JobKind::parse(&job.kind);
        let timeout = self.ctx.settings.handler_timeout();
        let outcome = match kind {
            Some(kind) => {
                match tokio::time::timeout(timeout, dispatch(kind, &self.ctx, &job)).await {
                    Ok(outcome) => outcome,
                    Err(_) => Err(JobError::Retry(format!(
                        "timed out after {} s",
                        timeout.as_secs()
                    ))),
                }
            }
            // A kind a newer obol queued during a rolling upgrade: leave it
            // to a process that knows it.
            None => Err(JobError::Retry(format!(
                "this obol does not know job kind {:?}",
                job.kind
            ))),
        };
        self.record(&job, kind, &run_id, outcome).await
    }

    /// Writes the attempt's outcome as `transition` decides it, guarded by
    /// this worker's lease, in one transaction with the run record and (for
    /// recurring kinds) the next run.
    async fn record(
        &self,
        job: &JobRow,
        kind: Option<JobKind>,
        run_id: &str,
        outcome: std::result::Result<(), JobError>,
    ) -> Result<()> {
        let state = JobState {
            status: JobStatus::Running,
            attempts: job.attempts,
            max_attempts: job.max_attempts,
        };
        let input = match &outcome {
            Ok(()) => JobInput::Succeed,
            Err(JobError::Retry(_)) => JobInput::Fail { permanent: false },
            Err(JobError::Permanent(_)) => JobInput::Fail { permanent: true },
        };
        let next = transition(state, input)
            .map_err(|r| crate::error::Error::internal(format!("job transition refused: {r:?}")))?;
        let error = outcome.as_ref().err().map(JobError::message);
        let now = storage::now();
        let mut tx = self.ctx.ctx.store().begin().await?;
        let mut conn = tx.conn();
        let (wrote, run_outcome) = match next.status {
            JobStatus::Succeeded => (
                conn.finish_job(&job.id, &self.worker, now).await?,
                "succeeded",
            ),
            JobStatus::Queued => {
                let delay = kind
                    .and_then(|k| retry_delay(k, job.attempts, self.ctx.settings.retry_unit))
                    .unwrap_or(self.ctx.settings.poll_interval);
                let at = now + chrono::Duration::from_std(delay).unwrap_or_default();
                let message = error.unwrap_or("failed");
                tracing::info!(job = %job.id, kind = %job.kind, attempt = job.attempts, error = %message,
                    retry_in_ms = delay.as_millis() as u64, "job attempt failed; will retry");
                (
                    conn.retry_job_later(&job.id, &self.worker, at, message, now)
                        .await?,
                    "retry",
                )
            }
            JobStatus::Dead => {
                let message = error.unwrap_or("failed");
                tracing::error!(job = %job.id, kind = %job.kind, attempts = job.attempts, error = %message,
                    "job is dead: an operator can retry it with POST /v1/jobs/{{id}}/retry");
                (
                    conn.mark_job_dead(&job.id, &self.worker, message, now)
                        .await?,
                    "dead",
                )
            }
            JobStatus::Running => {
                return Err(crate::error::Error::internal(
                    "a finished attempt cannot leave a job running",
                ))
            }
        };
        if !wrote {
            // Our lease passed to another worker; its attempt is the one
            // that counts.
            tracing::warn!(job = %job.id, worker = %self.worker, "job lease lost before the attempt finished");
            conn.finish_job_run(run_id, "lease_lost", error, now)
                .await?;
            return tx.commit().await;
        }
        conn.finish_job_run(run_id, run_outcome, error, now).await?;
        let terminal = matches!(next.status, JobStatus::Succeeded | JobStatus::Dead);
        if let (true, Some(kind)) = (terminal, kind) {
            schedule_successor(&mut conn, &self.ctx.settings, kind, job, now).await?;
        }
        tx.commit().await?;
        if matches!(next.status, JobStatus::Succeeded) {
            tracing::debug!(job = %job.id, kind = %job.kind, attempt = job.attempts, "job succeeded");
        }
        Ok(())
    }
}

/// The span every line of one job attempt is logged in: the job, its
/// organisation, and the objects its payload names.
fn job_span(job: &JobRow) -> tracing::Span {
    let span = tracing::info_span!(
        "job",
        job_id = %job.id,
        job_kind = %job.kind,
        account_id = %job.account_id,
        attempt = job.attempts,
        payment_id = tracing::field::Empty,
        refund_id = tracing::field::Empty,
        email_id = tracing::field::Empty,
        run_id = tracing::field::Empty,
        payout_id = tracing::field::Empty,
    );
    if let Ok(serde_json::Value::Object(p)) = serde_json::from_str(&job.payload) {
        for field in ["payment_id", "refund_id", "email_id", "run_id", "payout_id"] {
            if let Some(id) = p.get(field).and_then(serde_json::Value::as_str) {
                span.record(field, id);
            }
        }
    }
    span
}

async fn dispatch(kind: JobKind, ctx: &JobCtx, job: &JobRow) -> std::result::Result<(), JobError> {
    match kind {
        JobKind::ReleaseAuthorization => release::run(ctx, job).await,
        JobKind::ResubmitRefund => refund_resubmit::run(ctx, job).await,
        JobKind::Reconcile => reconcile::run(ctx, job).await,
        JobKind::InvoicePaid => accounting::fanout(ctx, job).await,
        JobKind::AccountingSync => accounting::sync(ctx, job).await,
        JobKind::InvoiceSweep => invoice_sweep::run(ctx, job).await,
        JobKind::ChargeRun => charge_run::run(ctx, job).await,
        JobKind::SendEmail => email::run(ctx, job).await,
        JobKind::ChargeRunNotice => charge_run_notice::run(ctx, job).await,
        JobKind::BillingInvoiceNotice => billing_notice::run(ctx, job).await,
        JobKind::PayoutTransactions => payout_transactions::run(ctx, job).await,
        JobKind::AcpOrderEvent => acp::send_order_event(ctx, job).await,
        JobKind::AcpIdempotencySweep => acp::sweep(ctx, job).await,
    }
}

/// Recurring kinds queue their next run when one ends (succeeded or dead).
async fn schedule_successor(
    conn: &mut Conn<'_>,
    settings: &JobSettings,
    kind: JobKind,
    finished: &JobRow,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<()> {
    let account = &AccountId::from_db(finished.account_id.clone());
    match kind {
        JobKind::Reconcile => reconcile::schedule_next(conn, settings, account, now).await,
        JobKind::InvoiceSweep => invoice_sweep::schedule_next(conn, settings, account, now).await,
        JobKind::ChargeRun => charge_run::schedule_next(conn, finished, now).await,
        JobKind::AcpIdempotencySweep => acp::schedule_next_sweep(conn, now).await,
        JobKind::ReleaseAuthorization
        | JobKind::ResubmitRefund
        | JobKind::InvoicePaid
        | JobKind::AccountingSync
        | JobKind::SendEmail
        | JobKind::ChargeRunNotice
        | JobKind::BillingInvoiceNotice
        | JobKind::PayoutTransactions
        | JobKind::AcpOrderEvent => Ok(()),
    }
}

/// Parses a job's payload into the kind's payload type.
fn payload<T: serde::de::DeserializeOwned>(job: &JobRow) -> std::result::Result<T, JobError> {
    serde_json::from_str(&job.payload)
        .map_err(|e| JobError::Permanent(format!("the job's payload is unreadable: {e}")))
}

#[cfg(test)]
mod tests;
