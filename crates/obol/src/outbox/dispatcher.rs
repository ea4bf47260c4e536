//! Sends queued notifications. Each attempt is signed afresh (new
//! timestamp, same `webhook-id`, so receivers deduplicate). Non-2xx answers
//! and timeouts are retried on `RETRY_SCHEDULE` (about four days in all),
//! after which the delivery is marked `failed` and stays visible for replay.
//!
//! Endpoint URLs come from API callers, so every send goes through
//! `OutboundPolicy` (outbound.rs): IP literals are checked before the send,
//! names by the client's DNS resolver. A refused target fails the delivery
//! at once; retrying would only be refused again.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::error::Result;
use crate::ledger::delivery::{self, DeliveryInput, DeliveryStatus};
use crate::outbound::{forbidden_target_in, OutboundPolicy, PolicyResolver};
use crate::storage::notifications::DueDelivery;
use crate::storage::{self, Store};

/// Delays before retry n, in units (`notifications.retry_unit_ms`, default
/// one second): 5 s, 30 s, 2 min, 10 min, 30 min, 1 h, 2 h, 4 h, 8 h, then
/// 12 h seven times — 99.7 hours after the first attempt.
pub const RETRY_SCHEDULE: [u64; 16] = [
    5, 30, 120, 600, 1800, 3600, 7200, 14400, 28800, 43200, 43200, 43200, 43200, 43200, 43200,
    43200,
];
const TIMEOUT: Duration = Duration::from_secs(10);
const LOCK: Duration = Duration::from_secs(60);

pub struct Dispatcher {
    store: Store,
    http: reqwest::Client,
    unit: Duration,
    policy: OutboundPolicy,
}

impl Dispatcher {
    pub fn new(store: Store, unit: Duration, policy: OutboundPolicy) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .user_agent(concat!("obol-webhooks/", env!("CARGO_PKG_VERSION")))
            // A redirect would lead to a URL nobody checked.
            .redirect(reqwest::redirect::Policy::none())
            // A proxy would resolve the name itself, past our resolver.
            .no_proxy()
            .dns_resolver(std::sync::Arc::new(PolicyResolver::new(policy)))
            .build()?;
        Ok(Self {
            store,
            http,
            unit,
            policy,
        })
    }

    pub async fn run(self, stop: CancellationToken) {
        loop {
            let sent = match self.run_once().await {
                Ok(n) => n,
                Err(e) => {
                    tracing::error!(error = %e, "notification dispatcher could not claim deliveries");
                    0
                }
            };
            if sent > 0 {
                continue;
            }
            tokio::select! {
                () = stop.cancelled() => break,
                () = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
        }
    }

    pub async fn run_once(&self) -> Result<usize> {
        let now = storage::now();
        let lock_until = now + chrono::Duration::from_std(LOCK).unwrap_or_default();
        let due = {
            let mut tx = self.store.begin().await?;
            let due = tx.conn().claim_due_deliveries(now, lock_until, 32).await?;
            tx.commit().await?;
            due
        };
        let n = due.len();
        // One batch's sends run concurrently: a slow endpoint does not hold
        // up the others.
        let sends = due.into_iter().map(|d| self.send(d));
        for result in futures::future::join_all(sends).await {
            if let Err(e) = result {
                tracing::error!(error = %e, "could not record a notification attempt");
            }
        }
        Ok(n)
    }

    async fn send(&self, d: DueDelivery) -> Result<()> {
        let timestamp = chrono::Utc::now().timestamp();
        let Some(signature) = super::sign(&d.secret, &d.notification_id, timestamp, &d.payload)
        else {
            return self
                .finish(
                    &d,
                    DeliveryInput::Refused {
                        retries_left: false,
                    },
                    None,
                    Some("the endpoint's secret is unusable"),
                )
                .await;
        };
        // Endpoints stored before the rule (or under another setting) are
        // held to it too.
        if let Err(refusal) = self.policy.check_target(&d.url) {
            tracing::warn!(delivery = %d.id, reason = %refusal, "notification target refused before connecting");
            return self
                .finish(
                    &d,
                    DeliveryInput::Refused {
                        retries_left: false,
                    },
                    None,
                    Some(&format!("refused before connecting: {refusal}")),
                )
                .await;
        }
        let outcome = self
            .http
            .post(&d.url)
            .header("content-type", "application/json")
            .header("webhook-id", &d.notification_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(d.payload.clone())
            .send()
            .await;
        match outcome {
            Ok(r) if r.status().is_success() => {
                tracing::debug!(delivery = %d.id, kind = %d.event_type, "notification delivered");
                self.finish(&d, DeliveryInput::Accepted, Some(r.status().as_u16()), None)
                    .await
            }
            Ok(r) => {
                let code = r.status().as_u16();
                self.retry_or_fail(&d, Some(code), &format!("answered {code}"))
                    .await
            }
            Err(e) => {
                if let Some(refused) = forbidden_target_in(&e) {
                    tracing::warn!(delivery = %d.id, reason = %refused, "notification target refused at connect");
                    let reason = format!("refused at connect: {refused}");
                    let input = DeliveryInput::Refused {
                        retries_left: false,
                    };
                    return self.finish(&d, input, None, Some(&reason)).await;
                }
                let reason = if e.is_timeout() {
                    "timed out".to_string()
                } else {
                    format!("{}", e.without_url())
                };
                self.retry_or_fail(&d, None, &reason).await
            }
        }
    }

    async fn retry_or_fail(&self, d: &DueDelivery, code: Option<u16>, reason: &str) -> Result<()> {
        let attempt = usize::try_from(d.attempts).unwrap_or(usize::MAX);
        match attempt.checked_sub(1).and_then(|i| RETRY_SCHEDULE.get(i)) {
            Some(units) => {
                let delay = self
                    .unit
                    .saturating_mul(u32::try_from(*units).unwrap_or(u32::MAX));
                tracing::info!(delivery = %d.id, attempt, reason, retry_in_ms = delay.as_millis() as u64, "notification not accepted; will retry");
                let next = storage::now() + chrono::Duration::from_std(delay).unwrap_or_default();
                let input = DeliveryInput::Refused { retries_left: true };
                self.record(d, input, code, Some(reason), next).await
            }
            None => {
                tracing::error!(delivery = %d.id, attempts = d.attempts, reason, "notification failed for good after the retry schedule");
                let input = DeliveryInput::Refused {
                    retries_left: false,
                };
                self.finish(d, input, code, Some(reason)).await
            }
        }
    }

    async fn finish(
        &self,
        d: &DueDelivery,
        input: DeliveryInput,
        code: Option<u16>,
        error: Option<&str>,
    ) -> Result<()> {
        self.record(d, input, code, error, storage::now()).await
    }

    /// Writes an attempt's outcome unless the delivery changed while the
    /// attempt was in flight (see `record_delivery_attempt`).
    async fn record(
        &self,
        d: &DueDelivery,
        input: DeliveryInput,
        code: Option<u16>,
        error: Option<&str>,
        next_attempt_at: chrono::DateTime<chrono::Utc>,
    ) -> Result<()> {
        // A claimed delivery is pending; the machine says what the attempt
        // makes of it, and the write is guarded by that pending status.
        let Some(status) = delivery::transition(DeliveryStatus::Pending, input) else {
            return Ok(());
        };
        let mut h = self.store.acquire().await?;
        let recorded = h
            .conn()
            .record_delivery_attempt(
                &d.id,
                d.attempts,
                status,
                code.map(i32::from),
                error,
                next_attempt_at,
                storage::now(),
            )
            .await?;
        if recorded {
            let outcome = match status {
                DeliveryStatus::Succeeded => "succeeded",
                DeliveryStatus::Pending => "retrying",
                DeliveryStatus::Failed => "failed",
                DeliveryStatus::Canceled => "canceled",
            };
            crate::metrics::record(|m| m.notification_delivery(outcome));
        } else {
            tracing::info!(delivery = %d.id, outcome = status.as_str(), "notification attempt not recorded: the delivery changed while it was in flight");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::RETRY_SCHEDULE;

    #[test]
    fn the_retry_schedule_spans_more_than_three_days() {
        let total: u64 = RETRY_SCHEDULE.iter().sum();
        assert!(total > 3 * 24 * 3600, "{total} s");
        assert!(RETRY_SCHEDULE.windows(2).all(|w| w[0] <= w[1]));
    }
}
