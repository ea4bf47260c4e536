//! The request budget towards Stripe: `stripe.rate_limit_per_second` for
//! the whole deployment, however many obol processes share it.
//!
//! How the budget is shared: **each instance takes its share**, learnt
//! through the database. Every process that calls Stripe for long (`obol
//! serve`, `obol reconcile`) keeps a row in `instances`, renewed each
//! second with its *demand*: the most requests that were queued at its
//! pacer during the last second. A process's share is a floor (`FLOOR` of
//! the rate, split evenly, so an idle process can still answer a
//! checkout at once) plus the rest in proportion to its demand; with no
//! demand anywhere, equal shares. So a charge run worked by one process
//! gets nearly the whole rate, and two processes working it split it by
//! how many requests each has waiting. Shares computed from rows read at
//! different moments need not add up, so each process also publishes a
//! *claim*, and a raise is a reservation: a process lowers its pace at
//! once (and its claim with it); to raise, it first publishes the higher
//! claim, waits `JOIN_HOLD` (two heartbeats, so every other process has
//! read it), then takes at most what the others' claims leave. A process
//! that joins does the same from nothing. One that dies is dropped after
//! `TTL`, and the
//! others take its share back. Why not one shared bucket in the
//! database: it would put a database write in front of every Stripe
//! request (a hot row at 100 requests a second on PostgreSQL, the SQLite
//! writer lock), so the database's latency would become Stripe's pace; a
//! share costs one write a second per process and nothing per request.
//! The price: for a `TTL` after a crash, and for `JOIN_HOLD` after the
//! work moves, the budget is under-used, which is the safe side.
//!
//! Connected accounts (Stripe Connect): Stripe limits requests per
//! account, so each connected account obol acts for gets a pacer of its
//! own (`RateLimit::following`), created when first needed. It does not
//! take part in the sharing above by itself: it *follows* the process's
//! pacer, moving at that pacer's current share. So the per-process share
//! the instances agreed on applies to each account separately (two
//! processes each send an account at most their share of
//! `rate_limit_per_second`, together at most the whole rate), one busy
//! account never slows another or the platform, and a 429 for one
//! account pauses only that account. A follower's queue counts as demand
//! of the process it runs in, so a process working one organisation's
//! charge run still gets the larger share. Not exact: shares follow the
//! busiest account's demand, not each account's own; an account busy in
//! one process and idle in the other is paced as if both wanted it.
//!
//! Why the pacing is hand-written rather than `governor` (which obol uses
//! for its own endpoints): a governor quota is fixed when the limiter is
//! built, and this one changes pace as instances come and go and pauses
//! the whole process when Stripe answers 429, without giving a burst back
//! at the change.

use std::sync::{Arc, Mutex, Weak};
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
/// The part of the rate kept as floors, split evenly among the processes.
pub const FLOOR: f64 = 0.2;

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
    /// Wakes the sleeping head when the pace changes (a raise may move
    /// its slot much sooner).
    changed: tokio::sync::Notify,
    /// A connected account's pacer: the process's pacer whose share it
    /// moves at.
    leader: Option<RateLimit>,
    /// The process's pacer: the connected accounts' pacers following it,
    /// whose queues count as its demand.
    followers: Mutex<Vec<Weak<Pacer>>>,
}

/// How often a follower's sleeping head looks at its leader's share again.
const FOLLOW_RECHECK: Duration = Duration::from_millis(250);

#[derive(Debug)]
struct Pace {
    /// Live instances sharing `per_second` (this one included).
    instances: u32,
    /// This process's share, requests per second.
    share: f64,
    interval: Duration,
    tolerance: Duration,
    /// GCRA's theoretical arrival time of the next request.
    tat: Instant,
    /// No request before this (a 429, or a join hold).
    paused_until: Instant,
    granted: u64,
    /// Requests waiting now, and the most since the last heartbeat.
    waiting: u64,
    peak_waiting: u64,
    /// What this process last published as its claim (≥ `share`).
    claim: f64,
    /// Since when a higher claim has been published, waiting to be used.
    raising_since: Option<Instant>,
}

impl Pace {
    fn new(per_second: f64) -> Pace {
        let now = Instant::now();
        let mut p = Pace {
            instances: 1,
            share: 0.0,
            interval: Duration::ZERO,
            tolerance: Duration::ZERO,
            tat: now,
            paused_until: now,
            granted: 0,
            waiting: 0,
            peak_waiting: 0,
            claim: 0.0,
            raising_since: None,
        };
        p.set(per_second);
        p.tat = now;
        p
    }

    fn set(&mut self, share: f64) {
        let share = share.max(0.01);
        let old = self.interval;
        self.share = share;
        self.interval = Duration::from_secs_f64(1.0 / share);
        // The next slot moves with the spacing: later when slower (so no
        // gap is shorter than the new spacing), sooner when faster.
        if self.interval >= old {
            self.tat += self.interval - old;
        } else {
            self.tat = self.tat.min(Instant::now() + self.interval);
        }
        // Up to 20 ms worth early, at least one request.
        let burst = (share / 50.0).floor().max(1.0) as u32;
        self.tolerance = self.interval * (burst - 1);
    }

    /// The heartbeat's decision, given this process's fair share and the
    /// sum of the other live processes' claims: a lower share at once; a
    /// higher one published as a claim first and used `JOIN_HOLD` later,
    /// as far as the others' claims leave room. Returns the claim to
    /// publish.
    fn decide(&mut self, per_second: f64, fair: f64, others: f64, now: Instant) -> f64 {
        if fair <= self.share {
            self.set(fair);
            self.raising_since = None;
            self.claim = fair;
            return fair;
        }
        match self.raising_since {
            Some(since) if now.duration_since(since) >= JOIN_HOLD => {
                let room = (per_second - others).max(0.0);
                self.set(fair.min(self.claim).min(room).max(self.share.min(room)));
                self.raising_since = (self.share < fair).then_some(now);
                self.claim = fair;
            }
            Some(_) => self.claim = self.claim.max(fair),
            None => {
                self.raising_since = Some(now);
                self.claim = fair;
            }
        }
        self.claim
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

/// This process's share of `per_second`: its floor, plus the rest by its
/// part of the demand (equal parts when nobody waits).
pub fn share_of(per_second: f64, mine: u64, demands: &[u64]) -> f64 {
    let n = demands.len().max(1) as f64;
    let total: u64 = demands.iter().sum();
    if total == 0 {
        return per_second / n;
    }
    per_second * (FLOOR / n + (1.0 - FLOOR) * mine as f64 / total as f64)
}

impl RateLimit {
    /// `per_second` for this process alone (until `join` says otherwise).
    pub fn per_second(per_second: u32) -> Self {
        let per_second = per_second.max(1);
        Self(Arc::new(Pacer {
            per_second,
            state: Mutex::new(Pace::new(f64::from(per_second))),
            turn: tokio::sync::Mutex::new(()),
            changed: tokio::sync::Notify::new(),
            leader: None,
            followers: Mutex::new(Vec::new()),
        }))
    }

    /// A pacer of its own for one connected account, moving at `leader`'s
    /// share (the process's pacer); its queue counts as `leader`'s demand.
    pub fn following(leader: &RateLimit) -> Self {
        let share = leader.share_per_second();
        let follower = Self(Arc::new(Pacer {
            per_second: leader.0.per_second,
            state: Mutex::new(Pace::new(share)),
            turn: tokio::sync::Mutex::new(()),
            changed: tokio::sync::Notify::new(),
            leader: Some(leader.clone()),
            followers: Mutex::new(Vec::new()),
        }));
        let mut list = leader.0.followers.lock().unwrap_or_else(|e| e.into_inner());
        list.retain(|w| w.strong_count() > 0);
        list.push(Arc::downgrade(&follower.0));
        drop(list);
        follower
    }

    /// Waits for this process's next request slot.
    pub async fn wait(&self) {
        struct Waiting<'a>(&'a RateLimit);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                let mut p = self.0.pace();
                p.waiting = p.waiting.saturating_sub(1);
            }
        }
        {
            let mut p = self.pace();
            p.waiting += 1;
            p.peak_waiting = p.peak_waiting.max(p.waiting);
        }
        let _waiting = Waiting(self);
        let _turn = self.0.turn.lock().await;
        loop {
            let next = {
                let mut p = self.pace();
                if let Some(leader) = &self.0.leader {
                    let share = leader.share_per_second();
                    if (share - p.share).abs() > 1e-9 {
                        p.set(share);
                    }
                }
                p.grant(Instant::now())
            };
            // A follower is not woken when its leader's share changes:
            // it looks again every `FOLLOW_RECHECK`.
            let next = match (&self.0.leader, next) {
                (Some(_), Some(at)) => Some(at.min(Instant::now() + FOLLOW_RECHECK)),
                (_, next) => next,
            };
            match next {
                None => return,
                Some(at) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(at) => {}
                        () = self.0.changed.notified() => {}
                    }
                }
            }
        }
    }

    /// Stripe answered 429: no request from this process for `pause`.
    pub fn back_off(&self, pause: Duration) {
        let mut p = self.pace();
        p.paused_until = p.paused_until.max(Instant::now() + pause);
    }

    /// The processes the budget is currently shared by.
    pub fn instances(&self) -> u32 {
        self.pace().instances
    }

    /// Requests per second this process may send now.
    pub fn share_per_second(&self) -> f64 {
        self.pace().share
    }

    /// Requests granted since start.
    pub fn granted(&self) -> u64 {
        self.pace().granted
    }

    /// The demand to report: the most requests waiting since the last
    /// call (and the count starts again from those waiting now).
    /// A process's pacer reports the largest of its own and its
    /// followers' (the connected accounts') demands.
    fn take_demand(&self) -> u64 {
        let own = {
            let mut p = self.pace();
            let peak = p.peak_waiting;
            p.peak_waiting = p.waiting;
            peak
        };
        let followers: Vec<RateLimit> = {
            let mut list = self.0.followers.lock().unwrap_or_else(|e| e.into_inner());
            list.retain(|w| w.strong_count() > 0);
            list.iter()
                .filter_map(Weak::upgrade)
                .map(RateLimit)
                .collect()
        };
        followers
            .iter()
            .map(RateLimit::take_demand)
            .fold(own, u64::max)
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
/// process's row with its demand, and paces by the live rows' demands.
/// Returns how many processes are live.
async fn beat(
    store: &Store,
    id: &str,
    limit: &RateLimit,
    first: bool,
) -> crate::error::Result<u32> {
    let now = storage::now();
    let demand = i64::try_from(limit.take_demand()).unwrap_or(i64::MAX);
    let mut h = store.acquire().await?;
    let mut conn = h.conn();
    // Whether the row is still there (a process stalled past `TTL` was
    // dropped, and joins again).
    let renewed = !first && conn.touch_instance(id, now).await?;
    if !renewed {
        conn.remove_instances_older_than(stale(now) - chrono::Duration::hours(1))
            .await?;
    }
    let rows = conn.live_instances(stale(now)).await?;
    let mut demands: Vec<u64> = rows
        .iter()
        .filter(|r| r.0 != id)
        .map(|r| u64::try_from(r.1).unwrap_or(0))
        .collect();
    demands.push(u64::try_from(demand).unwrap_or(0));
    let others: f64 = rows
        .iter()
        .filter(|r| r.0 != id)
        .map(|r| r.2 as f64 / 1000.0)
        .sum();
    let live = u32::try_from(demands.len()).unwrap_or(u32::MAX).max(1);
    let per_second = f64::from(limit.0.per_second);
    let fair = share_of(per_second, u64::try_from(demand).unwrap_or(0), &demands);
    let before = limit.instances();
    let claim = {
        let mut p = limit.pace();
        p.instances = live;
        if !renewed && live > 1 {
            // Joining: nothing until the others have read this claim.
            p.set(0.0);
            p.paused_until = p.paused_until.max(Instant::now() + JOIN_HOLD);
            p.raising_since = None;
        }
        p.decide(per_second, fair, others, Instant::now())
    };
    limit.0.changed.notify_waiters();
    let claim_milli = (claim * 1000.0).round() as i64;
    if renewed {
        conn.renew_instance(id, demand, claim_milli, now).await?;
    } else {
        conn.insert_instance(id, demand, claim_milli, now).await?;
    }
    drop(h);
    if live != before {
        tracing::info!(
            instances = live,
            share_per_second = limit.share_per_second(),
            "the Stripe budget is shared anew"
        );
    }
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
        let mut p = Pace::new(25.0);
        let t0 = Instant::now();
        assert_eq!(p.grant(t0), None);
        assert_eq!(p.grant(t0), Some(t0 + Duration::from_millis(40)));
        // Slower: the next slot moves out to the new spacing.
        p.set(12.5);
        assert_eq!(p.grant(t0), Some(t0 + Duration::from_millis(80)));
        let t1 = t0 + Duration::from_millis(80);
        assert_eq!(p.grant(t1), None);
        assert_eq!(p.grant(t1), Some(t1 + Duration::from_millis(80)));
    }

    #[test]
    fn no_second_carries_more_than_the_share_and_its_tolerance() {
        for share in [25.0, 12.5, 100.0, 1000.0, 333.3] {
            let mut p = Pace::new(share);
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
            let burst = (share / 50.0f64).floor().max(1.0);
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
                most as f64 <= share.ceil() + burst,
                "{share}/s: {most} in one second"
            );
            assert!(most as f64 >= share.floor(), "{share}/s: only {most}");
        }
    }

    #[tokio::test]
    async fn a_connected_accounts_pacer_moves_at_its_processs_share_and_reports_its_demand() {
        let platform = RateLimit::per_second(100);
        let account = RateLimit::following(&platform);
        assert_eq!(account.share_per_second(), 100.0);
        // The process's share halves (another process joined): the
        // account's pacer follows on its next request.
        platform.pace().set(50.0);
        account.wait().await;
        assert_eq!(account.share_per_second(), 50.0);
        // Its own back-off is its own.
        account.back_off(Duration::from_secs(60));
        let t0 = Instant::now();
        platform.wait().await;
        assert!(t0.elapsed() < Duration::from_secs(1));
        // Its queue counts as the process's demand.
        account.pace().peak_waiting = 7;
        assert_eq!(platform.take_demand(), 7);
        assert_eq!(platform.take_demand(), 0);
        drop(account);
        assert_eq!(platform.take_demand(), 0);
    }

    #[test]
    fn a_back_off_pauses_every_request() {
        let mut p = Pace::new(100.0);
        let t0 = Instant::now();
        assert_eq!(p.grant(t0), None);
        p.paused_until = t0 + Duration::from_secs(1);
        assert_eq!(
            p.grant(t0 + Duration::from_millis(500)),
            Some(t0 + Duration::from_secs(1))
        );
        assert_eq!(p.grant(t0 + Duration::from_secs(1)), None);
    }

    #[test]
    fn shares_follow_demand_above_even_floors_and_sum_to_the_rate() {
        assert_eq!(share_of(100.0, 0, &[0, 0]), 50.0);
        // One busy process, one idle: 90 and 10.
        assert!((share_of(100.0, 16, &[16, 0]) - 90.0).abs() < 1e-9);
        assert!((share_of(100.0, 0, &[16, 0]) - 10.0).abs() < 1e-9);
        // Busy alike: even.
        assert!((share_of(100.0, 8, &[8, 8]) - 50.0).abs() < 1e-9);
        for demands in [vec![3u64, 9, 0], vec![1, 1, 1, 1], vec![0, 0, 7]] {
            let sum: f64 = demands.iter().map(|d| share_of(25.0, *d, &demands)).sum();
            assert!((sum - 25.0).abs() < 1e-9, "{demands:?}: {sum}");
        }
    }

    #[test]
    fn a_raise_is_claimed_first_and_taken_as_far_as_the_others_leave_room() {
        let mut p = Pace::new(10.0);
        p.claim = 10.0;
        let t0 = Instant::now();
        assert_eq!(p.decide(100.0, 40.0, 60.0, t0), 40.0, "claimed");
        assert_eq!(p.share, 10.0, "not used yet");
        p.decide(100.0, 40.0, 60.0, t0 + Duration::from_secs(1));
        assert_eq!(p.share, 10.0);
        // The others still claim 75 when the hold ends: 25 is all there is.
        p.decide(100.0, 40.0, 75.0, t0 + JOIN_HOLD);
        assert_eq!(p.share, 25.0);
        // They made room; after another hold the rest.
        p.decide(100.0, 40.0, 60.0, t0 + JOIN_HOLD * 2);
        assert_eq!(p.share, 40.0);
        assert_eq!(p.decide(100.0, 5.0, 60.0, t0 + JOIN_HOLD * 2), 5.0);
        assert_eq!(p.share, 5.0, "lower at once");
    }

    #[test]
    fn shares_decided_from_rows_read_at_different_moments_never_add_up_past_the_rate() {
        // Two processes; every step one of them beats with the demands as
        // the table holds them, demands change as they please. Their
        // paces must never sum above the rate.
        let rate = 100.0;
        let mut paces = [Pace::new(rate), Pace::new(0.01)];
        paces[0].claim = rate;
        paces[1].claim = 0.0;
        paces[1].set(0.0);
        let mut claims = [rate, 0.0];
        let t0 = Instant::now();
        let script: [u64; 12] = [1, 0, 0, 8, 8, 0, 3, 16, 16, 0, 0, 5];
        for step in 0..240usize {
            let now = t0 + Duration::from_millis(500 * step as u64);
            let who = step % 2;
            let demands = [script[step % 12], script[(step / 3 + 5) % 12]];
            let fair = share_of(rate, demands[who], &demands);
            claims[who] = paces[who].decide(rate, fair, claims[1 - who], now);
            let sum = paces[0].share + paces[1].share;
            assert!(
                sum <= rate + 0.02,
                "step {step}: {} + {} = {sum}",
                paces[0].share,
                paces[1].share
            );
        }
    }
}
