//! The request budget towards Stripe: `stripe.rate_limit_per_second` for
//! the whole deployment, however many obol processes share it.
//!
//! How the budget is shared: **each instance takes its share**, learnt
//! through the database. Every process that calls Stripe for long (`obol
//! serve`, `obol reconcile`) keeps a row in `instances` with a heartbeat
//! each second; a process paces itself at `rate ÷ live instances`, where
//! live means a heartbeat within the last `TTL`. A process that joins
//! holds its Stripe calls for `JOIN_HOLD` (two heartbeats), so the others
//! have lowered their pace before it sends anything; one that dies is
//! dropped after `TTL` and the others take its share back. Why not one
//! shared bucket in the database: it would put a database write in front
//! of every Stripe request (a hot row at 100 requests a second on
//! PostgreSQL, and the SQLite writer lock), so the database's latency
//! would become Stripe's pace; a share costs one write a second per
//! process and nothing per request. The price: for a `TTL` after a crash
//! the survivors under-use the budget, which is the safe side.
//!
//! Why the pacing is hand-written rather than `governor` (which obol uses
//! for its own endpoints): a governor quota is fixed when the limiter is
//! built, and this one changes pace as instances come and go and pauses
//! the whole process when Stripe answers 429, without giving a burst back
//! at the change.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::storage::{self, Store};

/// How often a process renews its row and re-reads the others.
pub const HEARTBEAT: Duration = Duration::from_secs(1);
/// A row older than this is a process that is gone.
pub const TTL: Duration = Duration::from_secs(5);
/// How long a joining process waits before its first Stripe call, when
/// others are live: every live process has re-read the table by then.
pub const JOIN_HOLD: Duration = Duration::from_secs(2);

/// One pacer per process, shared by every Stripe caller of the process
/// (cheap to clone). Requests are spaced `1 / share` apart (GCRA), with a
/// tolerance of 20 ms worth of requests so the timer's millisecond
/// granularity does not cost a fast pace most of its rate; no one-second
/// window carries more than the share plus that tolerance.
#[derive(Clone)]
pub struct RateLimit(Arc<Pacer>);

struct Pacer {
    /// The deployment's budget, requests per second.
    per_second: u32,
    state: Mutex<Pace>,
    /// Waiters queue here in order (tokio's mutex is fair); the head
    /// sleeps until its time, so one timer serves all of them.
    turn: tokio::sync::Mutex<()>,
}

#[derive(Debug)]
struct Pace {
    /// Live instances sharing `per_second` (this one included).
    instances: u32,
    interval: Duration,
    tolerance: Duration,
    /// GCRA's theoretical arrival time of the next request.
    tat: Instant,
    /// No request before this (a 429, or a join hold).
    paused_until: Instant,
    granted: u64,
}

impl Pace {
    fn new(per_second: u32, instances: u32) -> Pace {
        let now = Instant::now();
        let mut p = Pace {
            instances: 1,
            interval: Duration::ZERO,
            tolerance: Duration::ZERO,
            tat: now,
            paused_until: now,
            granted: 0,
        };
        p.share(per_second, instances);
        p
    }

    fn share(&mut self, per_second: u32, instances: u32) {
        let instances = instances.max(1);
        self.instances = instances;
        // Nanoseconds per request at this instance's share: the share may
        // be fractional (25/s over 2 instances is 12.5/s each).
        let nanos = 1_000_000_000u64 * u64::from(instances) / u64::from(per_second.max(1));
        self.interval = Duration::from_nanos(nanos.max(1));
        let burst = (u64::from(per_second) / u64::from(instances) / 50).max(1);
        self.tolerance = self.interval * u32::try_from(burst - 1).unwrap_or(0);
    }

    /// `None`: granted now. `Some(t)`: ask again at `t`.
    fn grant(&mut self, now: Instant) -> Option<Instant> {
        let earliest = self
            .tat
            .checked_sub(self.tolerance)
            .unwrap_or(self.tat)
            .max(self.paused_until);
        if now < earliest {
            return Some(earliest);
        }
        self.tat = self.tat.max(now) + self.interval;
        self.granted += 1;
        None
    }
}

impl RateLimit {
    /// `per_second` for this process alone (until `join` says otherwise).
    pub fn per_second(per_second: u32) -> Self {
        let per_second = per_second.max(1);
        Self(Arc::new(Pacer {
            per_second,
            state: Mutex::new(Pace::new(per_second, 1)),
            turn: tokio::sync::Mutex::new(()),
        }))
    }

    /// Waits for this process's next request slot.
    pub async fn wait(&self) {
        let _turn = self.0.turn.lock().await;
        loop {
            let next = self.pace().grant(Instant::now());
            match next {
                None => return,
                Some(at) => tokio::time::sleep_until(at).await,
            }
        }
    }

    /// Stripe answered 429: no request from this process for `pause`.
    pub fn back_off(&self, pause: Duration) {
        let mut p = self.pace();
        p.paused_until = p.paused_until.max(Instant::now() + pause);
    }

    /// Shares the budget among `instances` live processes.
    pub fn set_instances(&self, instances: u32) {
        let per_second = self.0.per_second;
        self.pace().share(per_second, instances);
    }

    /// The processes the budget is currently shared by.
    pub fn instances(&self) -> u32 {
        self.pace().instances
    }

    /// Requests per second this process may send now.
    pub fn share_per_second(&self) -> f64 {
        1.0 / self.pace().interval.as_secs_f64()
    }

    /// Requests granted since start.
    pub fn granted(&self) -> u64 {
        self.pace().granted
    }

    fn pace(&self) -> std::sync::MutexGuard<'_, Pace> {
        // A panic while holding this lock cannot leave the pace invalid:
        // every write is a plain assignment.
        self.0.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// This process's row in `instances`, renewed until `stop`; the row is
/// removed when the task ends. Call before the first Stripe request.
pub async fn join(
    store: Store,
    limit: RateLimit,
    stop: CancellationToken,
) -> crate::error::Result<tokio::task::JoinHandle<()>> {
    let id = format!(
        "{}-{}",
        std::process::id(),
        ulid::Ulid::new().to_string().to_ascii_lowercase()
    );
    let live = beat(&store, &id, &limit, true).await?;
    if live > 1 {
        tracing::info!(
            instances = live,
            hold_ms = JOIN_HOLD.as_millis() as u64,
            "other obol processes share the Stripe budget: holding Stripe calls while they make room"
        );
    }
    Ok(tokio::spawn(async move {
        let mut tick = tokio::time::interval(HEARTBEAT);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                _ = tick.tick() => {}
            }
            if let Err(e) = beat(&store, &id, &limit, false).await {
                tracing::warn!(error = %e, "could not renew this process's share of the Stripe budget");
            }
        }
        if let Ok(mut h) = store.acquire().await {
            let _ = h.conn().remove_instance(&id).await;
        }
    }))
}

/// Renews (or, the first time or after the row was dropped, inserts) this
/// process's row, and paces by the live count. Returns that count.
async fn beat(
    store: &Store,
    id: &str,
    limit: &RateLimit,
    first: bool,
) -> crate::error::Result<u32> {
    let now = storage::now();
    let mut h = store.acquire().await?;
    let mut conn = h.conn();
    let renewed = !first && conn.renew_instance(id, now).await?;
    if !renewed {
        // A new row: others do not count this process yet.
        conn.insert_instance(id, now).await?;
        conn.remove_instances_older_than(stale(now) - chrono::Duration::hours(1))
            .await?;
    }
    let live = u32::try_from(conn.count_live_instances(stale(now)).await?)
        .unwrap_or(u32::MAX)
        .max(1);
    if !renewed && live > 1 {
        limit.back_off(JOIN_HOLD);
    }
    if live != limit.instances() {
        tracing::info!(
            instances = live,
            share_per_second = 1.0 / (f64::from(live) / f64::from(limit.0.per_second)),
            "the Stripe budget is shared anew"
        );
    }
    limit.set_instances(live);
    Ok(live)
}

fn stale(now: DateTime<Utc>) -> DateTime<Utc> {
    now - chrono::Duration::from_std(TTL).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_spaced_by_the_share() {
        let mut p = Pace::new(25, 1);
        let t0 = Instant::now();
        assert_eq!(p.grant(t0), None);
        assert_eq!(p.grant(t0), Some(t0 + Duration::from_millis(40)));
        p.share(25, 2);
        // The next slot keeps the old spacing; the one after, the new.
        let t1 = t0 + Duration::from_millis(40);
        assert_eq!(p.grant(t1), None);
        assert_eq!(p.grant(t1), Some(t1 + Duration::from_millis(80)));
    }

    #[test]
    fn no_second_carries_more_than_the_share_and_its_tolerance() {
        for (rate, instances) in [(25u32, 1u32), (100, 1), (1000, 1), (1000, 3), (25, 2)] {
            let mut p = Pace::new(rate, instances);
            let t0 = Instant::now();
            // Ask every 100 µs for three seconds; count grants per window.
            let mut grants = Vec::new();
            let mut t = t0;
            while t < t0 + Duration::from_secs(3) {
                if p.grant(t).is_none() {
                    grants.push(t);
                }
                t += Duration::from_micros(100);
            }
            let share = f64::from(rate) / f64::from(instances);
            let burst = (rate / instances / 50).max(1);
            let most = grants
                .iter()
                .map(|s| {
                    grants
                        .iter()
                        .filter(|g| **g >= *s && **g < *s + Duration::from_secs(1))
                        .count()
                })
                .max()
                .unwrap();
            assert!(
                most as f64 <= share.ceil() + f64::from(burst),
                "{rate}/s over {instances}: {most} in one second"
            );
            assert!(
                most as f64 >= share.floor(),
                "{rate}/s over {instances}: only {most}"
            );
        }
    }

    #[test]
    fn a_back_off_pauses_every_request() {
        let mut p = Pace::new(100, 1);
        let t0 = Instant::now();
        assert_eq!(p.grant(t0), None);
        p.paused_until = t0 + Duration::from_secs(1);
        assert_eq!(
            p.grant(t0 + Duration::from_millis(500)),
            Some(t0 + Duration::from_secs(1))
        );
        assert_eq!(p.grant(t0 + Duration::from_secs(1)), None);
    }
}
