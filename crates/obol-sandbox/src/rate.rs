//! The optional request rate limit of `/v1/*`, as Stripe's global limiter:
//! a token bucket holding one second of requests (capacity N, refilled at
//! N per second). A request over it answers 429 `rate_limit` before any
//! work. Also counts what the API received, so a client (obol's charge
//! runs) can be measured against the limit: `GET /_sandbox/rate`.

use std::collections::VecDeque;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use serde_json::{json, Value};

/// Per-second counts kept for `accepted_per_second`.
const SECONDS_KEPT: usize = 600;

pub(crate) struct RateGate {
    limit: Option<NonZeroU32>,
    limiter: Option<DefaultDirectRateLimiter>,
    stats: Mutex<RateStats>,
}

struct RateStats {
    since: Instant,
    requests: u64,
    accepted: u64,
    rate_limited: u64,
    chaos_rate_limited: u64,
    /// Accept instants within the last second, oldest first.
    window: VecDeque<Instant>,
    max_in_any_second: u64,
    /// Accepted requests per whole second since `since`: (second, count),
    /// the last `SECONDS_KEPT` seconds that had any.
    seconds: VecDeque<(u64, u64)>,
    busy_seconds: u64,
    first_accept: Option<Instant>,
    last_accept: Option<Instant>,
}

impl RateStats {
    fn new() -> Self {
        RateStats {
            since: Instant::now(),
            requests: 0,
            accepted: 0,
            rate_limited: 0,
            chaos_rate_limited: 0,
            window: VecDeque::new(),
            max_in_any_second: 0,
            seconds: VecDeque::new(),
            busy_seconds: 0,
            first_accept: None,
            last_accept: None,
        }
    }

    fn accept(&mut self, now: Instant) {
        self.accepted += 1;
        self.window.push_back(now);
        while self
            .window
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1))
        {
            self.window.pop_front();
        }
        self.max_in_any_second = self.max_in_any_second.max(self.window.len() as u64);
        let second = now.duration_since(self.since).as_secs();
        match self.seconds.back_mut() {
            Some((s, n)) if *s == second => *n += 1,
            _ => {
                self.seconds.push_back((second, 1));
                self.busy_seconds += 1;
                if self.seconds.len() > SECONDS_KEPT {
                    self.seconds.pop_front();
                }
            }
        }
        self.first_accept.get_or_insert(now);
        self.last_accept = Some(now);
    }
}

impl RateGate {
    /// `None`: no limit (requests are still counted).
    pub fn new(per_second: Option<u32>) -> Self {
        let limit = per_second.and_then(NonZeroU32::new);
        RateGate {
            limit,
            limiter: limit.map(|n| RateLimiter::direct(Quota::per_second(n))),
            stats: Mutex::new(RateStats::new()),
        }
    }

    /// Counts one API request; `false` when the limit refuses it.
    pub fn admit(&self) -> bool {
        let now = Instant::now();
        let allowed = self.limiter.as_ref().is_none_or(|l| l.check().is_ok());
        if let Ok(mut s) = self.stats.lock() {
            s.requests += 1;
            if allowed {
                s.accept(now);
            } else {
                s.rate_limited += 1;
            }
        }
        allowed
    }

    /// A 429 that chaos injected (counted apart from the limit's own).
    pub fn chaos_refused(&self) {
        if let Ok(mut s) = self.stats.lock() {
            s.chaos_rate_limited += 1;
        }
    }

    /// Starts the counts afresh (the bucket itself is left as it is).
    pub fn reset(&self) {
        if let Ok(mut s) = self.stats.lock() {
            *s = RateStats::new();
        }
    }

    pub fn report(&self) -> Value {
        let Ok(s) = self.stats.lock() else {
            return json!({});
        };
        let now = Instant::now();
        let elapsed = now.duration_since(s.since);
        // Whole seconds from the oldest kept one to the current one, zeros included.
        let current = elapsed.as_secs();
        let first = s.seconds.front().map(|(sec, _)| *sec).unwrap_or(current);
        let mut per_second = Vec::new();
        let mut kept = s.seconds.iter().peekable();
        for sec in first.max(current.saturating_sub(SECONDS_KEPT as u64 - 1))..=current {
            while kept.peek().is_some_and(|(k, _)| *k < sec) {
                kept.next();
            }
            match kept.peek() {
                Some((k, n)) if *k == sec => per_second.push(*n),
                _ => per_second.push(0),
            }
        }
        let active = match (s.first_accept, s.last_accept) {
            (Some(a), Some(b)) => b.duration_since(a).as_secs_f64(),
            _ => 0.0,
        };
        let mean_per_busy_second = if s.busy_seconds == 0 {
            0.0
        } else {
            s.accepted as f64 / s.busy_seconds as f64
        };
        json!({
            "limit_per_second": self.limit.map(NonZeroU32::get),
            "elapsed_seconds": round3(elapsed.as_secs_f64()),
            "requests": s.requests,
            "accepted": s.accepted,
            "rate_limited": s.rate_limited,
            "chaos_rate_limited": s.chaos_rate_limited,
            "max_in_any_second": s.max_in_any_second,
            "busy_seconds": s.busy_seconds,
            "mean_per_busy_second": round3(mean_per_busy_second),
            "first_to_last_accept_seconds": round3(active),
            "accepted_per_second": per_second,
        })
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_bucket_allows_one_second_then_refuses() {
        let gate = RateGate::new(Some(10));
        let allowed = (0..25).filter(|_| gate.admit()).count();
        assert_eq!(allowed, 10);
        let r = gate.report();
        assert_eq!(r["requests"], 25);
        assert_eq!(r["accepted"], 10);
        assert_eq!(r["rate_limited"], 15);
        assert_eq!(r["max_in_any_second"], 10);
        assert_eq!(r["busy_seconds"], 1);
        assert_eq!(r["accepted_per_second"], json!([10]));
    }

    #[test]
    fn no_limit_counts_everything() {
        let gate = RateGate::new(None);
        assert!((0..1000).all(|_| gate.admit()));
        let r = gate.report();
        assert_eq!(r["limit_per_second"], Value::Null);
        assert_eq!(r["accepted"], 1000);
        gate.reset();
        assert_eq!(gate.report()["requests"], 0);
    }

    #[test]
    fn the_sliding_window_forgets_accepts_older_than_a_second() {
        let mut s = RateStats::new();
        let t0 = s.since;
        for i in 0..5 {
            s.accept(t0 + Duration::from_millis(i * 100));
        }
        // At 1.35 s only the accept at 0.4 s is within the last second.
        s.accept(t0 + Duration::from_millis(1_350));
        assert_eq!(s.window.len(), 2);
        assert_eq!(s.max_in_any_second, 5);
        assert_eq!(s.busy_seconds, 2);
    }
}
