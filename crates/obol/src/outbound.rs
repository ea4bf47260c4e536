//! The rule for outbound URLs an API caller supplies (today: host
//! notification endpoints), written once.
//!
//! Whoever holds the secret key can make obol send requests; without this
//! rule it could aim them at obol's own network (loopback, a cloud metadata
//! service on 169.254.169.254, private and unique-local ranges) and read the
//! delivery log as a port scanner. The rule is checked twice:
//!
//! - at creation (`OutboundPolicy::check_url`): scheme, `https` in live
//!   mode, no userinfo (reqwest would forward it as Basic auth), no IP
//!   literal in a forbidden range, no `localhost` name;
//! - at every connection (`PolicyResolver`, the dispatcher's DNS resolver):
//!   the addresses a name resolves to are filtered, and reqwest connects
//!   only to those that pass, so a name that rebinds to a private address
//!   after creation is still refused. IP literals skip DNS in reqwest, so
//!   the dispatcher checks them (`check_target`) before each send.
//!
//! URLs the operator configures (the Stripe API base, `public_url`) are
//! trusted and never pass through here.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use url::{Host, Url};

use crate::error::{Error, RuleCode};

/// Where obol may send requests whose URL a caller chose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboundPolicy {
    /// Loopback, private and other reserved targets are allowed (sandbox
    /// mode by default, or `notifications.allow_private_targets: true`).
    pub allow_private: bool,
    /// Only `https` URLs (live mode).
    pub require_https: bool,
}

/// Why a URL is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlRefusal {
    #[error("url must be an absolute http(s) URL")]
    Invalid,
    #[error("url must use https in live mode")]
    NotHttps,
    #[error("url must not carry a user name or password: obol would send them as Basic auth")]
    Userinfo,
    #[error("url points at {0}, a loopback, private, link-local or reserved address obol does not send to (see notifications.allow_private_targets)")]
    ForbiddenAddress(IpAddr),
    #[error("url names localhost, which obol does not send to (see notifications.allow_private_targets)")]
    Localhost,
}

impl From<UrlRefusal> for Error {
    fn from(r: UrlRefusal) -> Self {
        let code = match r {
            UrlRefusal::Invalid => RuleCode::InvalidUrl,
            UrlRefusal::NotHttps
            | UrlRefusal::Userinfo
            | UrlRefusal::ForbiddenAddress(_)
            | UrlRefusal::Localhost => RuleCode::UrlNotAllowed,
        };
        Error::rule(code, r.to_string())
    }
}

/// A name whose every address is one obol does not send to. The
/// dispatcher finds it in a failed send's error chain and fails the
/// delivery at once: retrying would resolve the same way.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{host} resolves only to addresses obol does not send to ({addrs}); see notifications.allow_private_targets")]
pub struct ForbiddenTarget {
    pub host: String,
    pub addrs: String,
}

impl OutboundPolicy {
    /// The rule for a URL given at creation: everything below, plus the
    /// `localhost` names (they resolve to loopback by RFC 6761; other names
    /// are checked when they are resolved, at every connection).
    pub fn check_url(&self, raw: &str) -> Result<Url, UrlRefusal> {
        let url = self.check_target(raw)?;
        if !self.allow_private {
            if let Some(Host::Domain(d)) = url.host() {
                let d = d.trim_end_matches('.').to_ascii_lowercase();
                if d == "localhost" || d.ends_with(".localhost") {
                    return Err(UrlRefusal::Localhost);
                }
            }
        }
        Ok(url)
    }

    /// The rule checked again before each send: scheme, https, userinfo
    /// and IP literals (reqwest does not resolve those, so the resolver
    /// never sees them). Names are left to `PolicyResolver`.
    pub fn check_target(&self, raw: &str) -> Result<Url, UrlRefusal> {
        let url = Url::parse(raw).map_err(|_| UrlRefusal::Invalid)?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(UrlRefusal::Invalid);
        }
        if self.require_https && url.scheme() != "https" {
            return Err(UrlRefusal::NotHttps);
        }
        // Refused whatever the mode: a secret in a URL ends up in logs and
        // listings, and reqwest turns it into an Authorization header.
        if !url.username().is_empty() || url.password().is_some() {
            return Err(UrlRefusal::Userinfo);
        }
        if !self.allow_private {
            let ip = match url.host() {
                Some(Host::Ipv4(v4)) => Some(IpAddr::V4(v4)),
                Some(Host::Ipv6(v6)) => Some(IpAddr::V6(v6)),
                Some(Host::Domain(_)) | None => None,
            };
            if let Some(ip) = ip.filter(|ip| is_forbidden_ip(*ip)) {
                return Err(UrlRefusal::ForbiddenAddress(ip));
            }
        }
        Ok(url)
    }

    /// The addresses of `host` obol may connect to; an error when none is.
    pub fn filter_resolved(
        &self,
        host: &str,
        addrs: Vec<SocketAddr>,
    ) -> Result<Vec<SocketAddr>, ForbiddenTarget> {
        if self.allow_private {
            return Ok(addrs);
        }
        let (allowed, refused): (Vec<_>, Vec<_>) =
            addrs.into_iter().partition(|a| !is_forbidden_ip(a.ip()));
        if allowed.is_empty() {
            return Err(ForbiddenTarget {
                host: host.to_string(),
                addrs: refused
                    .iter()
                    .map(|a| a.ip().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        Ok(allowed)
    }
}

/// reqwest's DNS resolver for caller-supplied URLs: the system resolver,
/// then `OutboundPolicy::filter_resolved`. reqwest connects only to the
/// addresses returned here, so the check and the connection see the same
/// answer (no second lookup a rebinding name could change).
pub struct PolicyResolver {
    policy: OutboundPolicy,
}

impl PolicyResolver {
    pub fn new(policy: OutboundPolicy) -> Self {
        Self { policy }
    }
}

impl reqwest::dns::Resolve for PolicyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy;
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed = policy.filter_resolved(&host, addrs)?;
            let addrs: reqwest::dns::Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

/// Finds a `ForbiddenTarget` in an error's source chain (reqwest wraps
/// the resolver's error in its own connect errors).
pub fn forbidden_target_in<'a>(
    e: &'a (dyn std::error::Error + 'static),
) -> Option<&'a ForbiddenTarget> {
    let mut current = Some(e);
    while let Some(err) = current {
        if let Some(found) = err.downcast_ref::<ForbiddenTarget>() {
            return Some(found);
        }
        current = err.source();
    }
    None
}

/// Addresses obol never sends caller-chosen requests to: anything not
/// globally routable unicast (loopback, unspecified, private, shared
/// CGNAT, link-local, multicast, broadcast, reserved, documentation and
/// benchmarking ranges), and IPv6 forms that embed such an IPv4 address.
pub fn is_forbidden_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_forbidden_v4(v4),
        IpAddr::V6(v6) => is_forbidden_v6(v6),
    }
}

fn is_forbidden_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    ip.is_unspecified()
        || a == 0 // 0.0.0.0/8, "this network": Linux connects 0.x to loopback
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_documentation()
        || (a == 100 && (b & 0xc0) == 64) // 100.64.0.0/10, shared (CGNAT)
        || (a == 192 && b == 0 && c == 0) // 192.0.0.0/24, IETF assignments
        || (a == 198 && (b & 0xfe) == 18) // 198.18.0.0/15, benchmarking
        || a >= 240 // 240.0.0.0/4, reserved
}

fn is_forbidden_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_forbidden_v4(v4);
    }
    // ::a.b.c.d (deprecated IPv4-compatible) and 64:ff9b::/96 (NAT64)
    // reach the embedded IPv4 address on many networks.
    let embedded = Ipv4Addr::new(
        (s[6] >> 8) as u8,
        (s[6] & 0xff) as u8,
        (s[7] >> 8) as u8,
        (s[7] & 0xff) as u8,
    );
    if s[..6] == [0, 0, 0, 0, 0, 0] && !ip.is_unspecified() && !ip.is_loopback() {
        return is_forbidden_v4(embedded);
    }
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return is_forbidden_v4(embedded);
    }
    ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (s[0] & 0xfe00) == 0xfc00 // fc00::/7, unique local
        || (s[0] & 0xffc0) == 0xfe80 // fe80::/10, link-local
        || (s[0] & 0xffc0) == 0xfec0 // fec0::/10, deprecated site-local
        || (s[0] == 0x2001 && s[1] == 0x0db8) // 2001:db8::/32, documentation
        || (s[0] == 0x0100 && s[1..4] == [0, 0, 0]) // 100::/64, discard
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const STRICT: OutboundPolicy = OutboundPolicy {
        allow_private: false,
        require_https: false,
    };

    #[test]
    fn forbidden_targets_are_refused_at_creation() {
        for url in [
            "http://127.0.0.1/hooks",
            "http://127.1.2.3:8080/",
            "http://localhost/hooks",
            "http://LOCALHOST./hooks",
            "http://api.localhost/hooks",
            "http://169.254.169.254/latest/meta-data/",
            "http://10.0.0.1/",
            "http://172.16.5.4/",
            "http://192.168.1.1/",
            "http://100.64.0.1/",
            "http://0.0.0.0/",
            "http://[::1]/",
            "http://[::]/",
            "http://[fd00::1]/",
            "http://[fe80::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::ffff:169.254.169.254]/",
            "http://2130706433/",
            "http://0x7f.1/",
            "http://user:pass@example.com/",
            "http://user@example.com/",
        ] {
            let refused = STRICT.check_url(url);
            assert!(
                matches!(
                    refused,
                    Err(UrlRefusal::ForbiddenAddress(_)
                        | UrlRefusal::Localhost
                        | UrlRefusal::Userinfo)
                ),
                "{url}: {refused:?}"
            );
            assert_eq!(Error::from(refused.unwrap_err()).code(), "url_not_allowed");
        }
        for url in [
            "https://shop.example.com/hooks",
            "http://93.184.216.34/",
            "http://[2606:4700::1]/",
        ] {
            assert!(STRICT.check_url(url).is_ok(), "{url}");
        }
        assert_eq!(STRICT.check_url("ftp://x"), Err(UrlRefusal::Invalid));
    }

    #[test]
    fn live_mode_needs_https_and_userinfo_is_refused_even_when_private_is_allowed() {
        let live = OutboundPolicy {
            allow_private: false,
            require_https: true,
        };
        assert_eq!(
            live.check_url("http://shop.example.com/"),
            Err(UrlRefusal::NotHttps)
        );
        assert!(live.check_url("https://shop.example.com/").is_ok());
        let open = OutboundPolicy {
            allow_private: true,
            require_https: false,
        };
        assert!(open.check_url("http://127.0.0.1:9/hooks").is_ok());
        assert!(open.check_url("http://localhost:9/hooks").is_ok());
        assert_eq!(
            open.check_url("http://a:b@127.0.0.1/"),
            Err(UrlRefusal::Userinfo)
        );
    }

    #[test]
    fn a_rebinding_name_keeps_only_its_public_addresses() {
        let addr = |s: &str| SocketAddr::new(s.parse().unwrap(), 0);
        let e = STRICT
            .filter_resolved("rebind.example", vec![addr("10.0.0.1"), addr("::1")])
            .unwrap_err();
        assert!(e.to_string().contains("rebind.example"), "{e}");
        assert_eq!(
            STRICT
                .filter_resolved(
                    "mixed.example",
                    vec![addr("127.0.0.1"), addr("93.184.216.34")]
                )
                .unwrap(),
            vec![addr("93.184.216.34")]
        );
        // Found again inside the error chain reqwest wraps it in.
        let boxed: Box<dyn std::error::Error + Send + Sync> = Box::new(e);
        assert!(forbidden_target_in(boxed.as_ref()).is_some());
    }

    fn expected_v4(ip: Ipv4Addr) -> bool {
        let [a, b, c, _] = ip.octets();
        ip.is_loopback()
            || ip.is_private()
            || ip.is_link_local()
            || ip.is_multicast()
            || ip.is_broadcast()
            || ip.is_documentation()
            || ip.is_unspecified()
            || a == 0
            || (a == 100 && (64..128).contains(&b))
            || (a == 192 && b == 0 && c == 0)
            || (a == 198 && (b == 18 || b == 19))
            || a >= 240
    }

    proptest! {
        #[test]
        fn ipv4_classification_matches_std_plus_the_extra_ranges(bits in any::<u32>()) {
            let ip = Ipv4Addr::from(bits);
            prop_assert_eq!(is_forbidden_ip(IpAddr::V4(ip)), expected_v4(ip));
            // The IPv4-mapped IPv6 form classifies like the address itself.
            prop_assert_eq!(is_forbidden_ip(IpAddr::V6(ip.to_ipv6_mapped())), expected_v4(ip));
        }

        #[test]
        fn ipv6_classification_matches_std_plus_the_extra_ranges(bits in any::<u128>()) {
            let ip = Ipv6Addr::from(bits);
            let s = ip.segments();
            let expected = match ip.to_ipv4_mapped() {
                Some(v4) => expected_v4(v4),
                None if s[..6] == [0; 6] && bits > 1 => expected_v4(Ipv4Addr::from(bits as u32)),
                None if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] => expected_v4(Ipv4Addr::from(bits as u32)),
                None => ip.is_loopback()
                    || ip.is_unspecified()
                    || ip.is_multicast()
                    || (s[0] >> 9) == (0xfc00 >> 9)
                    || (s[0] >> 6) == (0xfe80 >> 6)
                    || (s[0] >> 6) == (0xfec0 >> 6)
                    || (s[0], s[1]) == (0x2001, 0x0db8)
                    || (s[0], s[1], s[2], s[3]) == (0x0100, 0, 0, 0),
            };
            prop_assert_eq!(is_forbidden_ip(IpAddr::V6(ip)), expected);
        }

        #[test]
        fn private_targets_pass_when_allowed(bits in any::<u32>()) {
            let open = OutboundPolicy { allow_private: true, require_https: false };
            let url = format!("http://{}/hooks", Ipv4Addr::from(bits));
            prop_assert!(open.check_url(&url).is_ok());
        }
    }
}
