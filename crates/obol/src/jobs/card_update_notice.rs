//! The `card_update_requested` e-mail both notices send (a charge run's
//! failed item, a Stripe invoice's failed renewal): a fresh card-update
//! link for the member, and the e-mail carrying it, queued under a name
//! that makes it one e-mail per failure however often the job runs.

use super::JobError;
use crate::context::{AccountId, Actor};
use crate::storage;

/// How long the e-mailed card-update link works: a week.
pub const LINK_TTL_SECONDS: u64 = 7 * 24 * 3600;

/// What one notice asks of one member.
pub struct CardUpdateNotice<'a> {
    pub account: &'a AccountId,
    pub customer_id: &'a str,
    pub email: &'a str,
    /// "your card was declined", …
    pub reason: &'a str,
    /// Minor units and currency of the payment that failed.
    pub amount: (i64, String),
    pub description: String,
    /// The e-mail's name, unique per failure (`…:card_update`).
    pub name: String,
}

fn retry(e: crate::error::Error) -> JobError {
    JobError::Retry(e.to_string())
}

/// Mints the link and queues its e-mail (an address the mailer refuses is
/// permanent: retrying cannot fix it).
pub async fn send(ctx: &super::JobCtx, n: CardUpdateNotice<'_>) -> Result<(), JobError> {
    let actor = Actor::Secret {
        account: n.account.clone(),
    };
    let link = crate::ops::card_updates::create_card_update_link(
        &ctx.ctx,
        &actor,
        n.customer_id,
        Some(LINK_TTL_SECONDS),
    )
    .await
    .map_err(retry)?;
    let template = crate::email::Template::CardUpdateRequested {
        business: ctx.ctx.settings().email_business_name.clone(),
        reason: n.reason.to_string(),
        amount: Some(n.amount),
        description: n.description,
        update_url: link.url,
        expires_at: link.expires_at,
    };
    let mut tx = ctx.ctx.store().begin().await.map_err(retry)?;
    crate::email::enqueue(
        &mut tx.conn(),
        n.account,
        Some(n.customer_id),
        n.email,
        &template,
        &n.name,
        storage::now(),
    )
    .await
    .map_err(|e| match e {
        crate::error::Error::InvalidBody(m) => JobError::Permanent(m),
        e => retry(e),
    })?;
    tx.commit().await.map_err(retry)?;
    Ok(())
}
