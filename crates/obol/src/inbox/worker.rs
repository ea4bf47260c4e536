//! The applier: claims stored events and applies them, oldest Stripe event
//! first. Several workers (and several obol instances) may run at once:
//! claims are exclusive, expire after `LOCK`, and every handler is guarded.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::apply::{self, Outcome};
use crate::error::{Error, Result};
use crate::ledger::inbox_event::{self, InboxInput};
use crate::storage::webhook_events::WebhookEventRow;
use crate::storage::{self, Store};

/// How long a claim holds before another worker may take the event: a
/// batch applies in well under a second, and a worker killed mid-batch
/// delays its events by at most this much.
const LOCK: Duration = Duration::from_secs(15);
/// Delay before retry n of a failed application (the last one repeats).
pub const RETRY_SCHEDULE: [Duration; 7] = [
    Duration::from_secs(1),
    Duration::from_secs(5),
    Duration::from_secs(30),
    Duration::from_secs(120),
    Duration::from_secs(600),
    Duration::from_secs(3600),
    Duration::from_secs(6 * 3600),
];
const BATCH: i64 = 64;

/// Runs until `stop`; `wake` is notified when a new event is stored.
pub async fn run(store: Store, live: bool, wake: Arc<Notify>, stop: CancellationToken) {
    tracing::debug!("inbox worker started");
    loop {
        let worked = match run_once(&store, live).await {
            Ok(n) => n,
            Err(e) => {
                tracing::error!(error = %e, "inbox worker could not claim events");
                0
            }
        };
        if worked > 0 {
            continue;
        }
        tokio::select! {
            () = stop.cancelled() => break,
            () = wake.notified() => {},
            () = tokio::time::sleep(Duration::from_millis(500)) => {},
        }
    }
    tracing::debug!("inbox worker stopped");
}

/// Claims one batch and applies it; returns how many events it handled.
pub async fn run_once(store: &Store, live: bool) -> Result<usize> {
    let now = storage::now();
    let lock_until = now + chrono::Duration::from_std(LOCK).unwrap_or_default();
    let events = {
        let mut tx = store.begin().await?;
        let events = tx
            .conn()
            .claim_due_webhook_events(now, lock_until, BATCH)
            .await?;
        tx.commit().await?;
        events
    };
    let n = events.len();
    for event in events {
        // Every line about this event carries its ids and organisation.
        let span = tracing::info_span!(
            "inbox_event",
            event_id = %event.stripe_event_id,
            inbox_id = %event.id,
            event_type = %event.event_type,
            account_id = %event.account_id,
            attempt = event.attempts,
        );
        apply_one(store, &event, live).instrument(span).await;
    }
    Ok(n)
}

/// Whether an application error may heal on a later attempt: the
/// database, a race with a concurrent writer, an object obol has not seen
/// yet (all `Internal`, `Database` or a conflict with current state). An
/// error about the request itself (money, a malformed body) comes from
/// the stored payload and fails the same way every time.
fn may_heal(e: &Error) -> bool {
    match e {
        Error::Database(_) | Error::Internal(_) | Error::RateLimited { .. } => true,
        Error::Stripe(s) => matches!(s.as_ref(), crate::stripe::StripeError::Unavailable { .. }),
        // Money that does not match never matches later, though it answers
        // 409 (a conflict with what Stripe holds).
        Error::Rule {
            code: crate::error::RuleCode::AmountMismatch,
            ..
        } => false,
        // A conflict with the object's state (409) may clear; a broken rule
        // (422) will not.
        Error::Rule { code, .. } => code.status() == axum::http::StatusCode::CONFLICT,
        Error::NotFound(_) => true,
        Error::MalformedJson(_)
        | Error::InvalidBody(_)
        | Error::InvalidQuery(_)
        | Error::InvalidId(_)
        | Error::Money(_) => false,
        Error::Unauthenticated
        | Error::InvalidApiKey
        | Error::InvalidCustomerToken
        | Error::InvalidMetricsToken
        | Error::SecretKeyRequired
        | Error::InvalidSignature(_)
        | Error::AdminSignInFailed
        | Error::AdminSessionExpired
        | Error::CsrfTokenInvalid
        | Error::RouteNotFound { .. }
        | Error::HostNotAllowed { .. }
        | Error::MethodNotAllowed
        | Error::NotAcceptable
        | Error::BodyTooLarge
        | Error::UnsupportedMediaType
        | Error::UriTooLong { .. }
        | Error::HeadersTooLarge { .. }
        | Error::RequestTimeout
        | Error::CustomerExists { .. }
        | Error::OrganizationExists { .. } => false,
    }
}

async fn apply_one(store: &Store, event: &WebhookEventRow, live: bool) {
    let result = async {
        let mut tx = store.begin().await?;
        let outcome = apply::apply(&mut tx.conn(), event, live).await?;
        let (input, reason) = match &outcome {
            Outcome::Applied => (InboxInput::Applied, None),
            Outcome::Ignored(reason) => (InboxInput::Ignored, Some(reason.as_str())),
        };
        let read = event.status;
        // The machine decides; the write is guarded by the status read.
        let Some(status) = inbox_event::transition(read, input) else {
            return Ok(None);
        };
        if !tx
            .conn()
            .finish_webhook_event(event, status, reason, storage::now())
            .await?
        {
            // The claim lapsed and another worker owns the event now: roll
            // back (dropping `tx`) rather than overwrite its outcome.
            return Ok(None);
        }
        tx.commit().await?;
        Ok::<_, crate::error::Error>(Some(outcome))
    }
    .await;
    match result {
        Ok(None) => {
            tracing::info!(event = %event.stripe_event_id, kind = %event.event_type, "claim lapsed while applying; another worker owns the event")
        }
        Ok(Some(Outcome::Applied)) => {
            crate::metrics::record(|m| m.webhook_processed(&event.event_type, "applied"));
            tracing::debug!(event = %event.stripe_event_id, kind = %event.event_type, "event applied")
        }
        Ok(Some(Outcome::Ignored(reason))) => {
            crate::metrics::record(|m| m.webhook_processed(&event.event_type, "ignored"));
            tracing::debug!(event = %event.stripe_event_id, kind = %event.event_type, %reason, "event ignored")
        }
        Err(e) if !may_heal(&e) => {
            // Retrying the same stored bytes cannot help: recorded as
            // ignored with the reason, like an unreadable payload.
            let reason = format!("never applicable: {e}");
            crate::metrics::record(|m| m.webhook_processed(&event.event_type, "ignored"));
            tracing::warn!(event = %event.stripe_event_id, kind = %event.event_type, %reason, "event can never apply; ignored");
            // The machine decides, as for any outcome; the write is
            // guarded by the status and attempt claimed.
            let Some(status) = inbox_event::transition(event.status, InboxInput::Ignored) else {
                return;
            };
            if let Ok(mut h) = store.acquire().await {
                if let Err(e) = h
                    .conn()
                    .finish_webhook_event(event, status, Some(&reason), storage::now())
                    .await
                {
                    tracing::error!(error = %e, "could not record an ignored event; its claim will expire");
                }
            }
        }
        Err(e) => {
            let retry = usize::try_from(event.attempts.max(1) - 1)
                .ok()
                .and_then(|i| RETRY_SCHEDULE.get(i))
                .copied()
                .unwrap_or(RETRY_SCHEDULE[RETRY_SCHEDULE.len() - 1]);
            crate::metrics::record(|m| m.webhook_processed(&event.event_type, "failed"));
            tracing::warn!(event = %event.stripe_event_id, kind = %event.event_type, attempts = event.attempts, error = %e, retry_in_s = retry.as_secs(), "event application failed");
            let next = storage::now() + chrono::Duration::from_std(retry).unwrap_or_default();
            let reason = match &e {
                crate::error::Error::Database(_) => "database error (see the log)".to_string(),
                crate::error::Error::Internal(detail) => detail.clone(),
                other => other.to_string(),
            };
            if let Ok(mut h) = store.acquire().await {
                match h.conn().fail_webhook_event(event, &reason, next).await {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::info!(event = %event.stripe_event_id, "claim lapsed; another worker owns the event")
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "could not record a failed event; its claim will expire")
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::RuleCode;
    use crate::money::MoneyError;

    #[test]
    fn only_errors_that_may_heal_are_retried() {
        assert!(may_heal(&Error::Database(sqlx::Error::RowNotFound)));
        assert!(may_heal(&Error::internal(
            "no payment for pi_x yet; retrying"
        )));
        assert!(may_heal(&Error::rule(RuleCode::OrderChanged, "raced")));
        assert!(!may_heal(&Error::Money(MoneyError::Negative { got: -1 })));
        assert!(!may_heal(&Error::rule(RuleCode::AmountMismatch, "x")));
        assert!(!may_heal(&Error::InvalidBody("x".into())));
    }
}
