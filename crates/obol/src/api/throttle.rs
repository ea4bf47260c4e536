//! Throttling of failed authentication, so API keys and customer tokens
//! cannot be guessed (or the token table hammered) at network speed.
//!
//! Rules, and why:
//! - Budgets are per (client address, credential kind: secret key,
//!   customer token, guest token): a browser polling
//!   with an expired customer token spends the customer-token budget of
//!   its address, never the secret key's.
//! - Only failures are counted and a valid credential is never refused
//!   for other callers' failures: the secret key is checked first (a hash
//!   and a constant-time comparison, cheaper than the throttle itself); a
//!   customer or guest token that authenticated recently is remembered here, so it
//!   is looked up even while its address is throttled.
//! - A failed attempt from a throttled (address, kind), and an unknown
//!   customer token from one, answers 429 before the token table is read.
//! - The client address is the TCP peer, or, when the peer is one of
//!   `http.trusted_proxies`, the right-most `X-Forwarded-For` address that
//!   is not a trusted proxy: everything left of it was written by the
//!   client and could name any address.
//!
//! Nothing here knows a secret: tokens are kept as their SHA-256 hashes.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use ipnet::IpNet;

use crate::ids::TokenHash;

/// Which kind of credential failed; each has its own budget per address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CredentialKind {
    /// `obol_sk_…`, and anything without a known prefix.
    SecretKey,
    /// `obol_ct_…`.
    CustomerToken,
    /// `obol_gt_…` in `X-Guest-Token` or `?guest_token=`: a wrong one is
    /// a 404 from the use case, counted by `auth::throttle_guest_tokens`.
    GuestToken,
    /// A payment link's token in the URL: an unknown one (404) counts.
    LinkToken,
}

/// How long a customer or guest token that authenticated is let past a throttled
/// address. Only the lookup is let through, never the token: a revoked or
/// expired one still fails there, and counts.
const REMEMBER_GOOD: Duration = Duration::from_secs(3600);

/// Tables are pruned beyond this many entries, so a flood of addresses or
/// tokens cannot grow memory without bound.
const MAX_ENTRIES: usize = 10_000;

type Key = (IpAddr, CredentialKind);

pub struct AuthThrottle {
    failures: DefaultKeyedRateLimiter<Key>,
    blocked: Mutex<HashMap<Key, Instant>>,
    /// Hashes of customer and guest tokens that authenticated, until when.
    known_good: Mutex<HashMap<String, Instant>>,
    trusted_proxies: Vec<IpNet>,
    /// Every request to a public (capability-token) route, per address.
    public: DefaultKeyedRateLimiter<IpAddr>,
}

impl AuthThrottle {
    /// Allows `per_minute` failures per (address, kind) per minute, in
    /// bursts of at most that many.
    /// Public routes (payment links) take `public_per_minute` requests
    /// per address per minute, whatever their outcome.
    pub fn new(per_minute: u32, public_per_minute: u32, trusted_proxies: Vec<IpNet>) -> Self {
        let n = NonZeroU32::new(per_minute.max(1)).unwrap_or(NonZeroU32::MIN);
        let p = NonZeroU32::new(public_per_minute.max(1)).unwrap_or(NonZeroU32::MIN);
        Self {
            public: RateLimiter::keyed(Quota::per_minute(p)),
            failures: RateLimiter::keyed(Quota::per_minute(n)),
            blocked: Mutex::new(HashMap::new()),
            known_good: Mutex::new(HashMap::new()),
            trusted_proxies,
        }
    }

    /// The client's address: `peer`, or what trusted proxies say of it.
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        client_ip(peer, headers, &self.trusted_proxies)
    }

    /// A request to a public route from `ip`: `Err(retry_after)` over budget.
    pub fn public_request(&self, ip: IpAddr) -> Result<(), Duration> {
        match self.public.check_key(&ip) {
            Ok(()) => {
                if self.public.len() > MAX_ENTRIES {
                    self.public.retain_recent();
                }
                Ok(())
            }
            Err(not_until) => Err(not_until
                .wait_time_from(DefaultClock::default().now())
                .max(Duration::from_secs(1))),
        }
    }

    /// `Some(retry_after)` while `(ip, kind)` is blocked.
    pub fn blocked(&self, ip: IpAddr, kind: CredentialKind) -> Option<Duration> {
        let blocked = self.blocked.lock().ok()?;
        let until = *blocked.get(&(ip, kind))?;
        until.checked_duration_since(Instant::now())
    }

    /// Records a failed attempt; blocks `(ip, kind)` once over budget.
    pub fn record_failure(&self, ip: IpAddr, kind: CredentialKind) {
        if let Err(not_until) = self.failures.check_key(&(ip, kind)) {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            if let Ok(mut blocked) = self.blocked.lock() {
                let now = Instant::now();
                if blocked.len() > MAX_ENTRIES {
                    blocked.retain(|_, until| *until > now);
                    self.failures.retain_recent();
                }
                blocked.insert((ip, kind), now + wait.max(Duration::from_secs(1)));
            }
            tracing::warn!(%ip, ?kind, "too many failed authentications; address throttled for this credential kind");
        }
    }

    /// A customer or guest token authenticated: let its lookups past a throttle.
    pub fn remember_good(&self, token: &TokenHash) {
        if let Ok(mut good) = self.known_good.lock() {
            let now = Instant::now();
            if good.len() > MAX_ENTRIES {
                good.retain(|_, until| *until > now);
                // Still full of live entries: forget them all rather than
                // grow; a forgotten token is only throttled, not refused.
                if good.len() > MAX_ENTRIES {
                    good.clear();
                }
            }
            good.insert(token.as_str().to_string(), now + REMEMBER_GOOD);
        }
    }

    /// Whether this customer token authenticated recently. A hash-table
    /// lookup of a SHA-256 hash tells a timing observer nothing useful
    /// about the 256-bit token behind it.
    pub fn is_known_good(&self, token: &TokenHash) -> bool {
        self.known_good
            .lock()
            .ok()
            .and_then(|good| good.get(token.as_str()).copied())
            .is_some_and(|until| until > Instant::now())
    }
}

fn is_trusted(ip: IpAddr, trusted: &[IpNet]) -> bool {
    trusted.iter().any(|net| net.contains(&ip))
}

/// The right-most `X-Forwarded-For` address that is not a trusted proxy,
/// when `peer` is one; otherwise `peer`. Every header line counts, in
/// order. An entry that is not an address (`unknown`, a port) stops the
/// walk at the last trusted hop, which is then the client as far as obol
/// can tell.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let peer = peer.to_canonical();
    if !is_trusted(peer, trusted) {
        return peer;
    }
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        let Ok(ip) = hop.parse::<IpAddr>() else {
            break;
        };
        client = ip.to_canonical();
        if !is_trusted(client, trusted) {
            break;
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(xff: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in xff {
            h.append("x-forwarded-for", v.parse().unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn forwarded_for_counts_only_from_trusted_proxies() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let peer = ip("10.0.0.1");
        // An untrusted peer's header is ignored.
        assert_eq!(
            client_ip(ip("192.0.2.1"), &headers(&["203.0.113.9"]), &trusted),
            ip("192.0.2.1")
        );
        // The right-most untrusted address wins; the client's own claims
        // to its left are not read.
        assert_eq!(
            client_ip(
                peer,
                &headers(&["1.1.1.1, 203.0.113.9, 10.0.0.2"]),
                &trusted
            ),
            ip("203.0.113.9")
        );
        // Several header lines are one list.
        assert_eq!(
            client_ip(peer, &headers(&["1.1.1.1", "203.0.113.9"]), &trusted),
            ip("203.0.113.9")
        );
        // No header, all trusted, or garbage: the last trusted hop.
        assert_eq!(client_ip(peer, &headers(&[]), &trusted), peer);
        assert_eq!(
            client_ip(peer, &headers(&["10.0.0.3"]), &trusted),
            ip("10.0.0.3")
        );
        assert_eq!(
            client_ip(peer, &headers(&["203.0.113.9, unknown"]), &trusted),
            peer
        );
        // IPv4-mapped IPv6 peers match IPv4 ranges.
        assert_eq!(
            client_ip(ip("::ffff:10.0.0.1"), &headers(&["203.0.113.9"]), &trusted),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn budgets_are_per_address_and_kind() {
        let t = AuthThrottle::new(2, 120, Vec::new());
        let a = ip("192.0.2.1");
        for _ in 0..3 {
            t.record_failure(a, CredentialKind::CustomerToken);
        }
        assert!(t.blocked(a, CredentialKind::CustomerToken).is_some());
        assert!(t.blocked(a, CredentialKind::SecretKey).is_none());
        assert!(t
            .blocked(ip("192.0.2.2"), CredentialKind::CustomerToken)
            .is_none());
        let good = TokenHash::of("obol_ct_x");
        assert!(!t.is_known_good(&good));
        t.remember_good(&good);
        assert!(t.is_known_good(&good));
    }
}
