//! Throttling of failed authentication per client IP address, so API keys
//! and customer tokens cannot be guessed at network speed. A client that
//! fails too often is refused with 429 before its credentials are even
//! checked, so the answer does not tell a right guess from a wrong one.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

pub struct AuthThrottle {
    failures: DefaultKeyedRateLimiter<IpAddr>,
    blocked: Mutex<HashMap<IpAddr, Instant>>,
}

impl AuthThrottle {
    /// Allows `per_minute` failures per address per minute, in bursts of
    /// at most that many.
    pub fn new(per_minute: u32) -> Self {
        let n = NonZeroU32::new(per_minute.max(1)).unwrap_or(NonZeroU32::MIN);
        Self {
            failures: RateLimiter::keyed(Quota::per_minute(n)),
            blocked: Mutex::new(HashMap::new()),
        }
    }

    /// `Some(retry_after)` while `ip` is blocked.
    pub fn blocked(&self, ip: IpAddr) -> Option<Duration> {
        let blocked = self.blocked.lock().ok()?;
        let until = *blocked.get(&ip)?;
        until.checked_duration_since(Instant::now())
    }

    /// Records a failed attempt; blocks the address once over budget.
    pub fn record_failure(&self, ip: IpAddr) {
        if let Err(not_until) = self.failures.check_key(&ip) {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            if let Ok(mut blocked) = self.blocked.lock() {
                let now = Instant::now();
                if blocked.len() > 10_000 {
                    blocked.retain(|_, until| *until > now);
                    self.failures.retain_recent();
                }
                blocked.insert(ip, now + wait.max(Duration::from_secs(1)));
            }
            tracing::warn!(%ip, "too many failed authentications; address throttled");
        }
    }
}
