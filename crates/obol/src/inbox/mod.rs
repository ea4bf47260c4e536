//! The Stripe webhook inbox: verify, store, acknowledge; then apply.
//!
//! `receive` runs inside `POST /webhooks/stripe`: the signature is checked
//! on the raw body, the event is written (unique on Stripe's id), and only
//! after the commit does Stripe get its 2xx. Application happens later, in
//! `worker`, from the stored rows, so a crash between the two loses
//! nothing and a redelivery is acknowledged without being applied again.
//!
//! Once the signature holds, every delivery is stored and answered 200,
//! even one obol can never read (not JSON, nested past serde_json's
//! recursion limit of 128, not an event at all): Stripe retries any
//! non-2xx for days, and a refusal would only bring the same bytes back.
//! Such a delivery is stored `ignored` with the reason; one that is not
//! even an event is keyed by the SHA-256 of its body (`unreadable_…`), so
//! Stripe's retries of it are duplicates.
//!
//! Routing (Stripe Connect): an event carrying `account` (a connected
//! account's, delivered to the Connect endpoint) is stored for the
//! organisation holding that `acct_…`, whatever its status, so late
//! events of a disconnected organisation still land in its ledger. One no
//! organisation holds is stored `ignored` with the reason under its
//! `acct_…` (which owns no rows), and answered 200 like any signed
//! delivery: Stripe would retry a refusal for days, and the platform's
//! rows are never touched by it.

pub mod apply;
pub mod worker;

use secrecy::SecretString;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::storage::webhook_events::NewWebhookEvent;
use crate::storage::{self, Store};
use crate::stripe::signature::{self, SignatureError};

/// The fields of a Stripe event the inbox indexes; the rest stays in the
/// stored payload.
#[derive(Debug, Deserialize)]
pub struct Envelope {
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub created: i64,
    #[serde(default)]
    pub livemode: bool,
    /// Set on events of connected accounts (Stripe Connect).
    pub account: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Receipt {
    /// False when the event was already in the inbox (a redelivery).
    pub stored: bool,
}

/// Verifies and stores one delivery. Nothing is stored unless the
/// signature holds with one of `secrets` (the platform endpoint's and the
/// Connect endpoint's: each endpoint signs with its own).
pub async fn receive(
    store: &Store,
    secrets: &[SecretString],
    payload: &[u8],
    signature_header: Option<&str>,
) -> Result<Receipt> {
    let now = chrono::Utc::now().timestamp();
    signature::verify(
        payload,
        signature_header,
        secrets,
        now,
        signature::DEFAULT_TOLERANCE_SECONDS,
    )
    .map_err(|e| match e {
        SignatureError::Missing
        | SignatureError::Malformed
        | SignatureError::Expired
        | SignatureError::Mismatch => Error::InvalidSignature(e),
    })?;
    let text = String::from_utf8_lossy(payload);
    let (envelope, unreadable) = read_envelope(payload, now);
    if let Some(reason) = &unreadable {
        tracing::warn!(event = %envelope.id, %reason, "a signed delivery can never be applied; stored as ignored");
    }
    store_event_as(store, &envelope, &text, "webhook", unreadable.as_deref()).await
}

/// Stripe's ids and types are short; longer ones are not Stripe's and
/// would not fit a database index.
const MAX_ID_LEN: usize = 255;

/// The envelope of a signed delivery, and why it can never be applied if
/// it cannot: the whole payload is read once here (the worker reads all
/// of it), so an unreadable one is known before it is stored.
fn read_envelope(payload: &[u8], now: i64) -> (Envelope, Option<String>) {
    let envelope = serde_json::from_slice::<Envelope>(payload)
        .map_err(|e| format!("the delivery is not a readable Stripe event: {e}"))
        .and_then(|env| {
            if env.id.len() > MAX_ID_LEN || env.event_type.len() > MAX_ID_LEN {
                Err("the delivery's id or type is longer than Stripe's".to_string())
            } else {
                Ok(env)
            }
        });
    match envelope {
        Ok(envelope) => {
            let whole = std::str::from_utf8(payload)
                .map_err(|e| format!("the event is not UTF-8: {e}"))
                .and_then(|t| {
                    serde_json::from_str::<serde_json::Value>(t)
                        .map_err(|e| format!("the event's payload is not readable JSON: {e}"))
                });
            (envelope, whole.err())
        }
        // Keyed by the body, so Stripe's retries of it are duplicates.
        Err(reason) => {
            let digest = hex::encode(Sha256::digest(payload));
            let short: String = digest.chars().take(32).collect();
            let envelope = Envelope {
                id: format!("unreadable_{short}"),
                event_type: "unreadable".into(),
                created: now,
                livemode: false,
                account: None,
            };
            (envelope, Some(reason))
        }
    }
}

/// Stores an event obtained from Stripe (delivered or fetched).
pub async fn store_event(
    store: &Store,
    envelope: &Envelope,
    payload: &str,
    source: &str,
) -> Result<Receipt> {
    store_event_as(store, envelope, payload, source, None).await
}

/// Stores an event; with `ignored`, as never applicable for that reason.
async fn store_event_as(
    store: &Store,
    envelope: &Envelope,
    payload: &str,
    source: &str,
    ignored: Option<&str>,
) -> Result<Receipt> {
    let mut handle = store.acquire().await?;
    let mut conn = handle.conn();
    let (account_id, unknown) = match envelope.account.as_deref() {
        None => (crate::context::AccountId::PLATFORM.to_string(), None),
        Some(acct) => match conn.get_organization_by_stripe_account(acct).await? {
            Some(org) => (org.id, None),
            None => (acct.to_string(), Some(apply::unknown_account(acct))),
        },
    };
    let ignored = ignored.or(unknown.as_deref());
    let stored = conn
        .insert_webhook_event(&NewWebhookEvent {
            stripe_event_id: &envelope.id,
            account_id: &account_id,
            event_type: &envelope.event_type,
            stripe_created: envelope.created,
            livemode: envelope.livemode,
            payload,
            source,
            ignored,
            now: storage::now(),
        })
        .await?;
    crate::metrics::record(|m| m.webhook_received(&envelope.event_type, source, stored));
    tracing::debug!(event_id = %envelope.id, event_type = %envelope.event_type, %account_id, source, stored, "Stripe event stored");
    Ok(Receipt { stored })
}
