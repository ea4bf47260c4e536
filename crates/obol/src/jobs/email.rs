//! `send_email`: sends one e-mail of the outbox (`email::enqueue` queued
//! it with the e-mail, in the caller's transaction).
//!
//! Idempotent: an e-mail already `sent` or `logged` succeeds at once. A
//! crash between the SMTP server's answer and the status write sends it
//! again on the next attempt, with the same `Message-ID`. A 5xx answer
//! marks the e-mail `failed` and the job dead; anything else (4xx, the
//! server unreachable, a timeout) is retried on the schedule, and the
//! e-mail is `failed` when the last attempt fails too.

use serde::Deserialize;

use super::{JobCtx, JobError};
use crate::context::AccountId;
use crate::email::{Delivery, EmailStatus};
use crate::error::Error;
use crate::storage;
use crate::storage::jobs::JobRow;

#[derive(Debug, Deserialize)]
pub struct Payload {
    pub email_id: String,
}

pub async fn run(ctx: &JobCtx, job: &JobRow) -> std::result::Result<(), JobError> {
    let p: Payload = super::payload(job)?;
    let account = AccountId::from_db(job.account_id.clone());
    let email = {
        let mut h = ctx.ctx.store().acquire().await.map_err(retry)?;
        h.conn()
            .get_email(&account, &p.email_id)
            .await
            .map_err(retry)?
    }
    .ok_or_else(|| JobError::Permanent(format!("e-mail {} does not exist", p.email_id)))?;
    match EmailStatus::parse(&email.status) {
        Some(EmailStatus::Sent | EmailStatus::Logged) => return Ok(()),
        // `failed`: an operator retried the dead job; try again.
        Some(EmailStatus::Queued | EmailStatus::Failed) => {}
        None => {
            return Err(JobError::Permanent(format!(
                "e-mail {} has an unknown status {:?}",
                email.id, email.status
            )))
        }
    }
    let outcome = ctx.email.send(&email).await;
    let now = storage::now();
    let mut h = ctx.ctx.store().acquire().await.map_err(retry)?;
    let mut conn = h.conn();
    match outcome {
        Ok(Delivery::Sent) => {
            conn.mark_email_sent(&email.id, now).await.map_err(retry)?;
            crate::metrics::record(|m| m.email("sent"));
            tracing::debug!(email_id = %email.id, "e-mail sent");
            Ok(())
        }
        Ok(Delivery::Logged) => {
            conn.mark_email_logged(&email.id, now)
                .await
                .map_err(retry)?;
            crate::metrics::record(|m| m.email("logged"));
            Ok(())
        }
        Err(e) => {
            let last_attempt = job.attempts >= job.max_attempts;
            let failed = e.permanent || last_attempt;
            conn.record_email_failure(&email.id, &e.message, failed, now)
                .await
                .map_err(retry)?;
            crate::metrics::record(|m| m.email(if failed { "failed" } else { "retrying" }));
            tracing::warn!(email_id = %email.id, failed, reason = %e.message, "e-mail not sent");
            Err(if e.permanent {
                JobError::Permanent(e.message)
            } else {
                JobError::Retry(e.message)
            })
        }
    }
}

fn retry(e: Error) -> JobError {
    JobError::Retry(e.to_string())
}
