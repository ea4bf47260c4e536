//! The ACP jobs: `acp_order_event` sends one order event queued by
//! `acp::webhook` to `acp.webhook_url`, signed with `Merchant-Signature`
//! at each attempt (a fresh timestamp, so the receiver's replay window
//! holds); a non-2xx answer or no answer is retried on the kind's
//! schedule. `acp_idempotency_sweep` deletes Idempotency-Key records past
//! their 24 hours, recurring hourly.

use std::sync::OnceLock;
use std::time::Duration;

use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{JobCtx, JobError, JobKind, NewJob};
use crate::context::AccountId;
use crate::error::Result;
use crate::storage::jobs::JobRow;
use crate::storage::{self, Conn, Store};

const SWEEP_DEDUPE_KEY: &str = "acp_idempotency_sweep";
const SWEEP_EVERY: chrono::Duration = chrono::Duration::hours(1);

#[derive(Debug, Deserialize)]
struct Payload {
    event: String,
    order_id: String,
    body: Value,
}

fn client() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .user_agent(concat!("obol-acp/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default()
    })
}

pub async fn send_order_event(ctx: &JobCtx, job: &JobRow) -> std::result::Result<(), JobError> {
    let p: Payload = super::payload(job)?;
    let acp = &ctx.ctx.settings().acp;
    let (Some(url), Some(secret)) = (&acp.webhook_url, &acp.webhook_secret) else {
        tracing::debug!(order = %p.order_id, event = %p.event, "no acp.webhook_url: ACP order event not sent");
        return Ok(());
    };
    let mut body = p.body;
    let number = body["data"]["order_number"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    body["data"]["permalink_url"] = json!(acp.permalink(&p.order_id, &number));
    let text = body.to_string();
    let timestamp = chrono::Utc::now().timestamp();
    let signature = crate::acp::merchant_signature(secret.expose_secret(), timestamp, &text);
    let sent = client()
        .post(url)
        .header("content-type", "application/json")
        .header("merchant-signature", signature)
        .header("request-id", &job.id)
        .header("timestamp", chrono::Utc::now().to_rfc3339())
        .body(text)
        .send()
        .await;
    match sent {
        Ok(r) if r.status().is_success() => {
            tracing::info!(order = %p.order_id, event = %p.event, "ACP order event delivered");
            Ok(())
        }
        Ok(r) => Err(JobError::Retry(format!(
            "the agent platform answered {}",
            r.status().as_u16()
        ))),
        Err(e) => Err(JobError::Retry(format!(
            "the agent platform could not be reached: {}",
            e.without_url()
        ))),
    }
}

pub async fn schedule_first_sweep(store: &Store) -> Result<()> {
    let mut h = store.acquire().await?;
    schedule_next_sweep(&mut h.conn(), storage::now()).await
}

pub async fn schedule_next_sweep(
    conn: &mut Conn<'_>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<()> {
    let job = NewJob {
        kind: JobKind::AcpIdempotencySweep,
        payload: json!({}),
        account_id: AccountId::platform(),
        dedupe_key: Some(SWEEP_DEDUPE_KEY.to_string()),
        run_at: now + SWEEP_EVERY,
    };
    super::enqueue(conn, &job).await?;
    Ok(())
}

pub async fn sweep(ctx: &JobCtx, _job: &JobRow) -> std::result::Result<(), JobError> {
    match crate::ops::acp::sweep_idempotency_keys(&ctx.ctx).await {
        Ok(n) => {
            if n > 0 {
                tracing::info!(deleted = n, "expired ACP idempotency keys swept");
            }
            Ok(())
        }
        Err(e) => Err(JobError::Retry(e.to_string())),
    }
}
