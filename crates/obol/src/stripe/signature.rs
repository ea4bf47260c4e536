//! Verification of Stripe's `Stripe-Signature` header.
//!
//! Stripe signs `"{t}.{raw body}"` with HMAC-SHA256 under the endpoint's
//! `whsec_` secret and sends `t=<unix>,v1=<hex>[,v1=<hex>…][,v0=…]`. A
//! header may carry several `v1` signatures (during Stripe's own secret
//! rolls) and obol may hold several secrets (during ours): any pair that
//! matches accepts. Comparison is constant time (`Mac::verify_slice`); the
//! timestamp must be within the tolerance either way, so a captured request
//! cannot be replayed later.

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

/// Stripe's libraries default to five minutes.
pub const DEFAULT_TOLERANCE_SECONDS: i64 = 300;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("no Stripe-Signature header")]
    Missing,
    #[error("the Stripe-Signature header is malformed")]
    Malformed,
    #[error("the Stripe-Signature timestamp is outside the tolerance")]
    Expired,
    #[error("no signature matches any configured webhook secret")]
    Mismatch,
}

/// Checks `header` for `payload` against every secret, at time `now` (unix seconds).
pub fn verify(
    payload: &[u8],
    header: Option<&str>,
    secrets: &[SecretString],
    now: i64,
    tolerance_seconds: i64,
) -> Result<i64, SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let mut timestamp: Option<i64> = None;
    let mut signatures: Vec<Vec<u8>> = Vec::new();
    for part in header.split(',') {
        let Some((k, v)) = part.trim().split_once('=') else {
            continue;
        };
        match k {
            "t" => timestamp = Some(v.parse().map_err(|_| SignatureError::Malformed)?),
            "v1" => {
                if let Ok(sig) = hex::decode(v) {
                    signatures.push(sig);
                }
            }
            // v0 is Stripe's legacy test-mode scheme; other schemes are ignored.
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::Malformed)?;
    if signatures.is_empty() {
        return Err(SignatureError::Malformed);
    }
    if (now - timestamp).abs() > tolerance_seconds {
        return Err(SignatureError::Expired);
    }
    let prefix = format!("{timestamp}.");
    let mut matched = false;
    // Every (secret, signature) pair is checked, so timing does not reveal
    // which secret matched.
    for secret in secrets {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.expose_secret().as_bytes()) else {
            continue;
        };
        mac.update(prefix.as_bytes());
        mac.update(payload);
        for sig in &signatures {
            matched |= mac.clone().verify_slice(sig).is_ok();
        }
    }
    if matched {
        Ok(timestamp)
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// `t=…,v1=…` for `payload`, as Stripe would send it. For tests and for
/// the tools that replay stored events.
pub fn sign(payload: &[u8], secret: &SecretString, timestamp: i64) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.expose_secret().as_bytes()) {
        Ok(m) => m,
        // HMAC accepts keys of any length; this arm cannot be reached.
        Err(_) => return format!("t={timestamp}"),
    };
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(payload);
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(s: &str) -> SecretString {
        SecretString::from(s)
    }

    #[test]
    fn accepts_its_own_signature_and_any_configured_secret() {
        let body = br#"{"id":"evt_1","object":"event"}"#;
        let old = secret("whsec_old");
        let new = secret("whsec_new");
        let header = sign(body, &new, 1_700_000_000);
        let secrets = [old.clone(), new.clone()];
        assert_eq!(
            verify(body, Some(&header), &secrets, 1_700_000_010, 300),
            Ok(1_700_000_000)
        );
        assert_eq!(
            verify(body, Some(&header), &[old], 1_700_000_010, 300),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn refuses_tampering_staleness_and_garbage() {
        let body = b"{}";
        let s = secret("whsec_x");
        let header = sign(body, &s, 1_000);
        let secrets = [s];
        assert_eq!(
            verify(b"{ }", Some(&header), &secrets, 1_000, 300),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(body, Some(&header), &secrets, 1_301, 300),
            Err(SignatureError::Expired)
        );
        assert_eq!(
            verify(body, Some(&header), &secrets, 699, 300),
            Err(SignatureError::Expired)
        );
        assert_eq!(
            verify(body, None, &secrets, 1_000, 300),
            Err(SignatureError::Missing)
        );
        for bad in ["", "t=abc,v1=00", "v1=00", "t=1000", "t=1000,v1=zz"] {
            assert!(
                verify(body, Some(bad), &secrets, 1_000, 300).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_header_with_several_v1_signatures_matches_any() {
        let body = b"payload";
        let s = secret("whsec_x");
        let good = sign(body, &s, 5_000);
        let v1 = good.split("v1=").nth(1).unwrap();
        let header = format!("t=5000,v1={},v1={v1},v0=deadbeef", "00".repeat(32));
        assert!(verify(body, Some(&header), &[s], 5_000, 300).is_ok());
    }
}
