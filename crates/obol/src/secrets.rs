//! Secrets at rest: values obol must read back (a connected account's
//! OAuth tokens), stored encrypted with `secrets.encryption_key`.
//!
//! - Cipher: XChaCha20-Poly1305 (RustCrypto's `chacha20poly1305`), a
//!   fresh random 24-byte nonce per value. The nonce is long enough that
//!   random ones never collide in practice, so no counter has to be kept
//!   (and shared between obol processes).
//! - Stored form: `v1:<fingerprint>:<base64url(nonce ‖ ciphertext ‖ tag)>`.
//!   The fingerprint (16 hex digits of a SHA-256 over the key, which says
//!   nothing about the key) names the key that wrote the value, so after
//!   a rotation the old key (`secrets.previous_keys`) still opens values
//!   it wrote while every new write uses the current key.
//! - Associated data: each value is bound to where it lives (`context`,
//!   e.g. `organizations.stripe_access_token:org_…`): a ciphertext copied
//!   into another row or column does not open there.
//!
//! - Keys in force (`load`): `secrets.encryption_key` (and
//!   `secrets.previous_keys`); in sandbox mode without one, a key obol
//!   generated once and keeps in the database (`generated_keys`), like the
//!   development API key; with real Stripe keys none is ever generated.
//! - `rotate`: re-encrypts every stored value with the current key
//!   (organisations' tokens, the signing secrets of the Stripe webhook
//!   endpoints obol registered).
//!
//! Plaintexts go in and come out as `SecretString`; nothing here logs a
//! value or a key, and `Debug` of a key shows its fingerprint only.
//! Hashes of bearer tokens (API keys, customer tokens, links) are not
//! secrets at rest in this sense: obol never needs them back, so they
//! stay hashed (`ids::TokenHash`).

use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

/// The version tag of the stored form.
const VERSION: &str = "v1";
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
pub const KEY_LEN: usize = 32;

/// Why a key or a stored value was refused. None of them carries the
/// value or the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretsError {
    #[error("an encryption key is 32 random bytes in base64 (generate one with `openssl rand -base64 32`); this one {0}")]
    BadKey(&'static str),
    #[error("the stored value is not in obol's encrypted form (v1:<key>:<data>)")]
    Malformed,
    #[error("the stored value was encrypted with key {fingerprint}, which is neither secrets.encryption_key nor one of secrets.previous_keys")]
    UnknownKey { fingerprint: String },
    #[error("the value is too long to encrypt")]
    TooLong,
    #[error("the stored value does not decrypt with key {fingerprint}: it was altered, moved to another row, or the key is not the one that wrote it")]
    Tampered { fingerprint: String },
}

/// One 256-bit key and its fingerprint.
#[derive(Clone)]
pub struct EncryptionKey {
    key: Key,
    fingerprint: String,
}

impl std::fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EncryptionKey({})", self.fingerprint)
    }
}

impl EncryptionKey {
    /// Parses a configured key: exactly 32 bytes, in standard or URL-safe
    /// base64, padded or not.
    pub fn from_base64(text: &str) -> Result<Self, SecretsError> {
        use base64::engine::general_purpose::{
            STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD,
        };
        let text = text.trim();
        if text.is_empty() {
            return Err(SecretsError::BadKey("is empty"));
        }
        let bytes = [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
            .iter()
            .find_map(|engine| engine.decode(text).ok())
            .ok_or(SecretsError::BadKey("is not base64"))?;
        let bytes: [u8; KEY_LEN] = bytes
            .try_into()
            .map_err(|_| SecretsError::BadKey("does not decode to 32 bytes"))?;
        Ok(Self::from_bytes(bytes))
    }

    fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        let digest = Sha256::new()
            .chain_update(b"obol secrets key fingerprint v1\0")
            .chain_update(bytes)
            .finalize();
        let fingerprint = hex::encode(&digest[..8]);
        EncryptionKey {
            key: Key::from(bytes),
            fingerprint,
        }
    }

    /// A new random key and its base64 text (the form configuration takes).
    pub fn generate() -> (Self, SecretString) {
        let mut bytes = [0u8; KEY_LEN];
        // ThreadRng is a CSPRNG seeded and reseeded from the OS.
        rand::rng().fill_bytes(&mut bytes);
        let text = base64::engine::general_purpose::STANDARD.encode(bytes);
        (Self::from_bytes(bytes), SecretString::from(text))
    }

    /// Names the key in stored values, logs and `obol secrets rotate`.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }
}

/// The keys in force: the current one encrypts; it and the previous ones
/// decrypt.
#[derive(Clone, Debug)]
pub struct Secrets {
    current: EncryptionKey,
    previous: Vec<EncryptionKey>,
}

impl Secrets {
    pub fn new(current: EncryptionKey, previous: Vec<EncryptionKey>) -> Self {
        Secrets { current, previous }
    }

    /// From configuration text: `secrets.encryption_key` and
    /// `secrets.previous_keys`.
    pub fn from_config(
        current: &SecretString,
        previous: &[SecretString],
    ) -> Result<Self, SecretsError> {
        let current = EncryptionKey::from_base64(current.expose_secret())?;
        let previous = previous
            .iter()
            .map(|k| EncryptionKey::from_base64(k.expose_secret()))
            .collect::<Result<_, _>>()?;
        Ok(Secrets::new(current, previous))
    }

    pub fn current(&self) -> &EncryptionKey {
        &self.current
    }

    /// `plaintext` sealed with the current key, bound to `context`.
    /// Fails only for a value beyond the cipher's limit (about 256 GiB).
    pub fn encrypt(&self, plaintext: &SecretString, context: &str) -> Result<String, SecretsError> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let cipher = XChaCha20Poly1305::new(&self.current.key);
        let sealed = cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext.expose_secret().as_bytes(),
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| SecretsError::TooLong)?;
        let mut data = Vec::with_capacity(NONCE_LEN + sealed.len());
        data.extend_from_slice(&nonce);
        data.extend_from_slice(&sealed);
        Ok(format!(
            "{VERSION}:{}:{}",
            self.current.fingerprint,
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
        ))
    }

    /// Opens a stored value with the key its fingerprint names, checking
    /// that it was sealed for `context`.
    pub fn decrypt(&self, stored: &str, context: &str) -> Result<SecretString, SecretsError> {
        let (fingerprint, data) = split(stored)?;
        let key = self
            .keys()
            .find(|k| k.fingerprint == fingerprint)
            .ok_or_else(|| SecretsError::UnknownKey {
                fingerprint: fingerprint.to_string(),
            })?;
        let tampered = || SecretsError::Tampered {
            fingerprint: fingerprint.to_string(),
        };
        if data.len() < NONCE_LEN + TAG_LEN {
            return Err(tampered());
        }
        let (nonce, sealed) = data.split_at(NONCE_LEN);
        let plain = XChaCha20Poly1305::new(&key.key)
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| tampered())?;
        String::from_utf8(plain)
            .map(SecretString::from)
            .map_err(|_| tampered())
    }

    /// Whether `stored` was written with another key than the current
    /// one (what `obol secrets rotate` re-encrypts).
    pub fn is_stale(&self, stored: &str) -> bool {
        split(stored).map_or(true, |(fp, _)| fp != self.current.fingerprint)
    }

    /// The value re-sealed with the current key, or `None` when it is
    /// sealed with it already.
    pub fn reencrypt(&self, stored: &str, context: &str) -> Result<Option<String>, SecretsError> {
        if !self.is_stale(stored) {
            return Ok(None);
        }
        let plain = self.decrypt(stored, context)?;
        self.encrypt(&plain, context).map(Some)
    }

    fn keys(&self) -> impl Iterator<Item = &EncryptionKey> {
        std::iter::once(&self.current).chain(self.previous.iter())
    }
}

/// `v1:<fingerprint>:<data>` into the fingerprint and the decoded data.
fn split(stored: &str) -> Result<(&str, Vec<u8>), SecretsError> {
    let mut parts = stored.splitn(3, ':');
    let (Some(VERSION), Some(fingerprint), Some(data)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(SecretsError::Malformed);
    };
    if fingerprint.len() != 16 || !fingerprint.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(SecretsError::Malformed);
    }
    let data = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(data)
        .map_err(|_| SecretsError::Malformed)?;
    Ok((fingerprint, data))
}

/// The id of the key obol generates for itself in sandbox mode.
const SANDBOX_KEY_ID: &str = "sandbox";

/// The keys obol runs with. Configured keys win. Without any: in sandbox
/// mode the key generated on first start (stored in the database so every
/// process on it, and PostgreSQL setups with no file beside the database,
/// share it; it guards sandbox tokens only); with real Stripe keys none,
/// and start-up is refused if organisations exist, whose tokens could
/// then be neither read nor written.
pub async fn load(
    config: &crate::config::Config,
    store: &crate::storage::Store,
) -> anyhow::Result<Option<Secrets>> {
    if let Some(key) = &config.secrets.encryption_key {
        let secrets = Secrets::from_config(key, &config.secrets.previous_keys)?;
        tracing::info!(
            key = secrets.current().fingerprint(),
            previous = config.secrets.previous_keys.len(),
            "secrets at rest are encrypted with the configured key"
        );
        return Ok(Some(secrets));
    }
    let mut handle = store.acquire().await?;
    if config.stripe_mode() != crate::config::StripeMode::Sandbox {
        let organizations = handle.conn().count_organizations().await?;
        if organizations > 0 {
            anyhow::bail!(
                "secrets.encryption_key: {organizations} organisation(s) exist, whose Stripe tokens are stored encrypted; set OBOL_SECRETS__ENCRYPTION_KEY (32 random bytes in base64, `openssl rand -base64 32`) to the key they were written with"
            );
        }
        tracing::info!(
            "no secrets.encryption_key: organisations cannot be created until one is set"
        );
        return Ok(None);
    }
    if handle
        .conn()
        .get_generated_key(SANDBOX_KEY_ID)
        .await?
        .is_none()
    {
        let (key, text) = EncryptionKey::generate();
        handle
            .conn()
            .insert_generated_key(
                SANDBOX_KEY_ID,
                text.expose_secret(),
                key.fingerprint(),
                crate::storage::now(),
            )
            .await?;
    }
    // Read back: another process starting at the same time may have won.
    let (text, _) = handle
        .conn()
        .get_generated_key(SANDBOX_KEY_ID)
        .await?
        .ok_or_else(|| anyhow::anyhow!("the generated encryption key was not stored"))?;
    let key = EncryptionKey::from_base64(&text)?;
    tracing::warn!(
        key = key.fingerprint(),
        "sandbox mode: secrets at rest use a key obol generated and keeps in its database; set secrets.encryption_key before using real Stripe keys"
    );
    Ok(Some(Secrets::new(key, Vec::new())))
}

/// What `rotate` did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RotateReport {
    /// Values found.
    pub checked: usize,
    /// Values re-encrypted with the current key.
    pub rewritten: usize,
    /// Values changed by someone else meanwhile (already current).
    pub skipped: usize,
}

/// Re-encrypts every stored value that another key wrote with the current
/// one, each guarded by its old value so a concurrent write wins. A value
/// no configured key opens stops the rotation with its error (and its
/// row, never the value): every previous key must still be configured.
pub async fn rotate(
    store: &crate::storage::Store,
    secrets: &Secrets,
) -> anyhow::Result<RotateReport> {
    use crate::storage::organizations::SecretColumn;
    let mut report = RotateReport::default();
    let mut after: Option<String> = None;
    loop {
        let mut handle = store.acquire().await?;
        let rows = handle
            .conn()
            .list_organization_secrets(after.as_deref(), 100)
            .await?;
        let Some(last) = rows.last() else {
            break;
        };
        after = Some(last.id.clone());
        for row in rows {
            for column in SecretColumn::ALL {
                let stored = match column {
                    SecretColumn::StripeAccessToken => row.stripe_access_token_enc.as_deref(),
                    SecretColumn::StripeRefreshToken => row.stripe_refresh_token_enc.as_deref(),
                };
                let Some(stored) = stored else { continue };
                report.checked += 1;
                let context = column.context(&row.id);
                let fresh = secrets.reencrypt(stored, &context).map_err(|e| {
                    anyhow::anyhow!("organisation {}, {}: {e}", row.id, column.column())
                })?;
                let Some(fresh) = fresh else { continue };
                if handle
                    .conn()
                    .replace_organization_secret(
                        &row.id,
                        column,
                        stored,
                        &fresh,
                        crate::storage::now(),
                    )
                    .await?
                {
                    report.rewritten += 1;
                } else {
                    report.skipped += 1;
                }
            }
        }
    }
    // The signing secrets of the Stripe webhook endpoints obol registered.
    let mut handle = store.acquire().await?;
    for row in handle.conn().list_stripe_endpoints().await? {
        report.checked += 1;
        let context = crate::storage::stripe_webhook_endpoints::secret_context(&row.id);
        let fresh = secrets
            .reencrypt(&row.secret_enc, &context)
            .map_err(|e| anyhow::anyhow!("stripe webhook endpoint {}: {e}", row.id))?;
        let Some(fresh) = fresh else { continue };
        if handle
            .conn()
            .replace_stripe_endpoint_secret(&row.id, &row.secret_enc, &fresh)
            .await?
        {
            report.rewritten += 1;
        } else {
            report.skipped += 1;
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONTEXT: &str = "organizations.stripe_access_token:org_01";

    fn secret(s: &str) -> SecretString {
        SecretString::from(s.to_string())
    }

    fn keys() -> Secrets {
        Secrets::new(EncryptionKey::generate().0, Vec::new())
    }

    #[test]
    fn a_value_round_trips_and_never_appears_in_the_stored_form() {
        let s = keys();
        let stored = s.encrypt(&secret("sk_live_TOKEN_123"), CONTEXT).unwrap();
        assert!(stored.starts_with(&format!("v1:{}:", s.current().fingerprint())));
        assert!(!stored.contains("TOKEN"), "{stored}");
        assert_eq!(
            s.decrypt(&stored, CONTEXT).unwrap().expose_secret(),
            "sk_live_TOKEN_123"
        );
        // A fresh nonce each time: the same value never looks the same.
        assert_ne!(
            stored,
            s.encrypt(&secret("sk_live_TOKEN_123"), CONTEXT).unwrap()
        );
        assert_eq!(
            s.decrypt(&s.encrypt(&secret(""), CONTEXT).unwrap(), CONTEXT)
                .unwrap()
                .expose_secret(),
            ""
        );
    }

    #[test]
    fn any_altered_byte_is_detected() {
        let s = keys();
        let stored = s.encrypt(&secret("rt_refresh"), CONTEXT).unwrap();
        let (head, data) = stored.rsplit_once(':').unwrap();
        let mut bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(data)
            .unwrap();
        for i in 0..bytes.len() {
            bytes[i] ^= 0x01;
            let altered = format!(
                "{head}:{}",
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&bytes)
            );
            assert!(
                matches!(
                    s.decrypt(&altered, CONTEXT),
                    Err(SecretsError::Tampered { .. })
                ),
                "byte {i}"
            );
            bytes[i] ^= 0x01;
        }
        // Truncated, and moved to another row or column.
        assert!(s.decrypt(&stored[..stored.len() - 4], CONTEXT).is_err());
        assert!(matches!(
            s.decrypt(&stored, "organizations.stripe_refresh_token:org_01"),
            Err(SecretsError::Tampered { .. })
        ));
        for garbage in [
            "",
            "plain",
            "v2:0123456789abcdef:AAAA",
            "v1:xyz:AAAA",
            "v1:0123456789abcdef:!!",
        ] {
            assert_eq!(
                s.decrypt(garbage, CONTEXT).unwrap_err(),
                SecretsError::Malformed,
                "{garbage}"
            );
        }
    }

    #[test]
    fn another_key_is_refused() {
        let stored = keys().encrypt(&secret("token"), CONTEXT).unwrap();
        let other = keys();
        assert!(matches!(
            other.decrypt(&stored, CONTEXT),
            Err(SecretsError::UnknownKey { .. })
        ));
        // A forged fingerprint naming the other key still fails to open.
        let forged = format!(
            "v1:{}:{}",
            other.current().fingerprint(),
            stored.rsplit_once(':').unwrap().1
        );
        assert!(matches!(
            other.decrypt(&forged, CONTEXT),
            Err(SecretsError::Tampered { .. })
        ));
    }

    #[test]
    fn after_a_rotation_old_values_open_and_new_ones_use_the_new_key() {
        let (old, old_text) = EncryptionKey::generate();
        let (new, new_text) = EncryptionKey::generate();
        let before = Secrets::new(old.clone(), Vec::new());
        let stored = before.encrypt(&secret("tok_old"), CONTEXT).unwrap();

        let after = Secrets::from_config(&new_text, std::slice::from_ref(&old_text)).unwrap();
        assert_eq!(after.current().fingerprint(), new.fingerprint());
        assert_eq!(
            after.decrypt(&stored, CONTEXT).unwrap().expose_secret(),
            "tok_old"
        );
        assert!(after.is_stale(&stored));
        let rewritten = after.reencrypt(&stored, CONTEXT).unwrap().unwrap();
        assert!(!after.is_stale(&rewritten));
        assert_eq!(after.reencrypt(&rewritten, CONTEXT).unwrap(), None);

        // Once the old key is dropped, only rewritten values open.
        let only_new = Secrets::from_config(&new_text, &[]).unwrap();
        assert_eq!(
            only_new
                .decrypt(&rewritten, CONTEXT)
                .unwrap()
                .expose_secret(),
            "tok_old"
        );
        assert!(matches!(
            only_new.decrypt(&stored, CONTEXT),
            Err(SecretsError::UnknownKey { .. })
        ));
    }

    #[test]
    fn configured_keys_must_be_32_bytes_of_base64() {
        let b64 = |n: usize| base64::engine::general_purpose::STANDARD.encode(vec![7u8; n]);
        assert!(EncryptionKey::from_base64(&b64(32)).is_ok());
        let url_safe = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([0xfbu8; 32]);
        assert!(EncryptionKey::from_base64(&url_safe).is_ok());
        for bad in [String::new(), b64(16), b64(33), "not base64 at all!".into()] {
            assert!(
                matches!(
                    EncryptionKey::from_base64(&bad),
                    Err(SecretsError::BadKey(_))
                ),
                "{bad}"
            );
        }
        // The same bytes give the same fingerprint, whatever the spelling.
        let a = EncryptionKey::from_base64(&b64(32)).unwrap();
        let b = EncryptionKey::from_base64(b64(32).trim_end_matches('=')).unwrap();
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert_eq!(
            format!("{a:?}"),
            format!("EncryptionKey({})", a.fingerprint())
        );
    }
}
