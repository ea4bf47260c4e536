//! `GET /metrics`: the process's counters (`crate::metrics`) plus gauges
//! read from the database for this scrape: the inbox backlog and the job
//! queue, shared by every instance on the database.

use chrono::{DateTime, Utc};
use prometheus::{GaugeVec, IntGauge, IntGaugeVec, Opts, Registry};

use crate::context::Ctx;
use crate::error::Result;
use crate::jobs::JobKind;
use crate::storage::metrics::{InboxBacklog, JobQueue};

/// The statuses of an inbox event still waiting to be applied.
const WAITING: [&str; 2] = ["received", "failed"];

/// Seconds from `at` to `now`, never negative (a job due in the future
/// has waited 0 s).
fn age(now: DateTime<Utc>, at: Option<DateTime<Utc>>) -> f64 {
    at.map_or(0.0, |at| {
        (now - at).num_milliseconds().max(0) as f64 / 1000.0
    })
}

/// The inbox backlog, as `/health` and `/metrics` read it.
#[derive(Debug, Clone, Default)]
pub struct Backlog {
    /// (status, events, age in seconds of the oldest) for `received` and
    /// `failed`, both always present.
    pub by_status: Vec<(&'static str, i64, f64)>,
}

impl Backlog {
    fn of(rows: &[InboxBacklog], now: DateTime<Utc>) -> Self {
        Backlog {
            by_status: WAITING
                .iter()
                .map(|s| {
                    rows.iter()
                        .find(|r| r.status == *s)
                        .map_or((*s, 0, 0.0), |r| {
                            (*s, r.events, age(now, r.oldest_received_at))
                        })
                })
                .collect(),
        }
    }

    /// (events, oldest age) of one status.
    pub fn get(&self, status: &str) -> (i64, f64) {
        self.by_status
            .iter()
            .find(|(s, _, _)| *s == status)
            .map_or((0, 0.0), |(_, n, a)| (*n, *a))
    }
}

/// Reads the inbox backlog.
pub async fn backlog(ctx: &Ctx) -> Result<Backlog> {
    let mut h = ctx.store().acquire().await?;
    let rows = h.conn().inbox_backlog().await?;
    Ok(Backlog::of(&rows, crate::storage::now()))
}

/// The exposition text: every series of `crate::metrics` plus this
/// scrape's database gauges. A database that does not answer shows as
/// `obol_database_up 0`, and the other series still render.
pub async fn render(ctx: &Ctx) -> String {
    let scrape = Registry::new();
    let up = IntGauge::new(
        "obol_database_up",
        "1 when the scrape's database queries answered, else 0.",
    );
    let gauges = database_gauges(ctx, &scrape).await;
    if let Err(e) = &gauges {
        tracing::warn!(error = %e, "metrics: the database gauges could not be read");
    }
    if let Ok(up) = up {
        up.set(i64::from(gauges.is_ok()));
        let _ = scrape.register(Box::new(up));
    }
    crate::metrics::render(&scrape)
}

#[derive(Debug, thiserror::Error)]
enum GaugeError {
    #[error(transparent)]
    Store(#[from] crate::error::Error),
    #[error(transparent)]
    Prometheus(#[from] prometheus::Error),
}

async fn database_gauges(ctx: &Ctx, scrape: &Registry) -> std::result::Result<(), GaugeError> {
    let (inbox, jobs) = {
        let mut h = ctx.store().acquire().await?;
        let mut conn = h.conn();
        (conn.inbox_backlog().await?, conn.job_queue().await?)
    };
    let now = crate::storage::now();
    inbox_gauges(scrape, &Backlog::of(&inbox, now))?;
    job_gauges(scrape, &jobs, now)?;
    Ok(())
}

fn inbox_gauges(scrape: &Registry, backlog: &Backlog) -> prometheus::Result<()> {
    let events = IntGaugeVec::new(
        Opts::new(
            "obol_inbox_unapplied_events",
            "Stored Stripe events not applied yet, by status (received: waiting for the applier; failed: waiting for a retry).",
        ),
        &["status"],
    )?;
    let lag = GaugeVec::new(
        Opts::new(
            "obol_inbox_lag_seconds",
            "Age of the oldest stored Stripe event not applied yet, by status; 0 when there is none.",
        ),
        &["status"],
    )?;
    for (status, n, age) in &backlog.by_status {
        events.with_label_values(&[status]).set(*n);
        lag.with_label_values(&[status]).set(*age);
    }
    scrape.register(Box::new(events))?;
    scrape.register(Box::new(lag))?;
    Ok(())
}

fn job_gauges(scrape: &Registry, rows: &[JobQueue], now: DateTime<Utc>) -> prometheus::Result<()> {
    let jobs = IntGaugeVec::new(
        Opts::new(
            "obol_job_queue_jobs",
            "Jobs queued, running or dead, by kind and status.",
        ),
        &["kind", "status"],
    )?;
    let oldest = GaugeVec::new(
        Opts::new(
            "obol_job_queue_oldest_age_seconds",
            "queued: how long the most overdue job has been due (0 if none is due yet); running: since the oldest was claimed; dead: since the oldest died.",
        ),
        &["kind", "status"],
    )?;
    // Every kind and status is present (0 when empty), so an alert on a
    // series does not depend on a job of its kind having existed.
    for kind in JobKind::ALL {
        for status in ["queued", "running", "dead"] {
            jobs.with_label_values(&[kind.as_str(), status]).set(0);
            oldest.with_label_values(&[kind.as_str(), status]).set(0.0);
        }
    }
    for r in rows {
        // A kind only a newer obol knows (instances mid-upgrade).
        let kind = JobKind::parse(&r.kind).map_or("other", JobKind::as_str);
        let status = match r.status.as_str() {
            "queued" => "queued",
            "running" => "running",
            _ => "dead",
        };
        jobs.with_label_values(&[kind, status]).add(r.jobs);
        let a = age(now, r.oldest_at);
        let g = oldest.with_label_values(&[kind, status]);
        if a > g.get() {
            g.set(a);
        }
    }
    scrape.register(Box::new(jobs))?;
    scrape.register(Box::new(oldest))?;
    Ok(())
}
