//! Reconciliation: recovers what Stripe's deliveries lost.
//!
//! Two passes, both safe while deliveries keep arriving:
//! 1. list Stripe's events of the handled types since the last run (with an
//!    overlap) and store them in the inbox like deliveries: the inbox's
//!    uniqueness drops the ones already there, the workers apply the rest;
//! 2. retrieve the intents of payments Stripe may still move and apply
//!    each as an observation made *now*, newer than every event, so the
//!    payment converges to Stripe's state even if events were lost for
//!    good;
//!    likewise the payouts Stripe may still move (pending, in transit,
//!    or paid within `PAYOUT_RECHECK_DAYS`: a bank may still return one),
//!    through the payout writer;
//! 3. make queued release and refund jobs due now (the job runner in
//!    `jobs/` performs them);
//! 4. retrieve the mirrored subscriptions and Stripe invoices Stripe may
//!    still move (not canceled or expired; draft, open or uncollectible)
//!    and apply each as an observation made now (`crate::billing`), so a
//!    lost `customer.subscription.*` or `invoice.*` delivery heals; a
//!    subscription obol never got Stripe's answer for is submitted again
//!    with its idempotency key.
//!
//! Both passes cover the platform and every active organisation (Stripe
//! Connect: with its `Stripe-Account`, from `Ctx::stripe_of`): events are
//! listed with a cursor per account, and an organisation's open payments
//! are retrieved in its connected account. A pass also refreshes the duplicate-endpoint
//! check `/health` shows (`connect_webhooks::refresh_check`).
//!
//! `obol serve` runs a pass as the recurring `reconcile` job
//! (`jobs/reconcile.rs`); `obol reconcile` and `POST /v1/reconciliations`
//! run one at once.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::context::{AccountId, Actor, Ctx};
use crate::error::{Error, Result};
use crate::inbox::Envelope;
use crate::payments::{self, Cause, Outcome};
use crate::stripe::{Params, StripeError};

const CURSOR: &str = "reconcile.events_created";
/// Events are listed from this long before the last one seen: Stripe's
/// `created` has one-second resolution and events of one second may be
/// listed over two runs.
const OVERLAP_SECONDS: i64 = 300;
/// On the first run, how far back to look (Stripe retries deliveries for
/// three days).
const FIRST_LOOKBACK_SECONDS: i64 = 3 * 24 * 3600;
const PAYMENTS_PER_RUN: i64 = 200;
const ORGANIZATIONS_PER_PAGE: i64 = 100;
const PAYOUTS_PER_RUN: i64 = 100;
/// A paid payout is retrieved again for this long after its arrival
/// date: banks return failed payouts within a few business days.
const PAYOUT_RECHECK_DAYS: i64 = 10;

/// What one reconciliation pass found and recovered.
#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Report {
    /// Stripe events listed since the last pass.
    pub events_listed: usize,
    /// Of those, events the inbox did not have (lost deliveries), now stored.
    pub events_new: usize,
    /// Open payments compared with their PaymentIntent.
    pub payments_checked: usize,
    /// Payments whose state moved to match Stripe.
    pub payments_moved: usize,
    /// Mirrored payouts Stripe may still move, retrieved.
    pub payouts_checked: usize,
    /// Of those, payouts whose mirror changed to match Stripe.
    pub payouts_moved: usize,
    /// `resubmit_refund` jobs this pass made due now (queuing one for a
    /// refund left unsubmitted without one); the job runner sends them.
    pub refunds_resubmitted: usize,
    /// `release_authorization` jobs this pass made due now; the job runner
    /// releases them within moments.
    pub releases_retried: usize,
    /// Mirrored subscriptions read again from Stripe and applied.
    pub subscriptions_checked: usize,
    /// Mirrored Stripe invoices read again and applied.
    pub billing_invoices_checked: usize,
}

#[derive(Deserialize)]
struct EventList {
    data: Vec<Value>,
    has_more: bool,
}

/// `POST /v1/reconciliations` (secret key): one pass now.
pub async fn run(ctx: &Ctx, actor: &Actor) -> Result<Report> {
    actor.require_secret()?;
    let report = run_once(ctx).await?;
    if report.events_new > 0 {
        ctx.wake_inbox();
    }
    Ok(report)
}

pub async fn run_once(ctx: &Ctx) -> Result<Report> {
    let mut report = Report::default();
    recover_events(ctx, &mut report).await?;
    // Duplicate webhook endpoints, for `/health`: a look at Stripe per
    // pass, not per health request.
    if let Err(e) = super::connect_webhooks::refresh_check(ctx).await {
        tracing::warn!(error = %e, "could not check Stripe's webhook endpoints");
    }
    recheck_payments(ctx, &mut report).await?;
    recheck_payouts(ctx, &mut report).await?;
    report.refunds_resubmitted = super::refunds::resubmit_stale(ctx).await?;
    report.releases_retried = super::checkout::retry_releases(ctx).await?;
    recheck_billing(ctx, &mut report).await?;
    Ok(report)
}

/// The accounts a pass looks at: the platform's, then every active
/// organisation's with its connected `acct_…`.
async fn accounts(ctx: &Ctx) -> Result<Vec<(AccountId, Option<String>)>> {
    let mut out = vec![(AccountId::platform(), None)];
    let mut after: Option<String> = None;
    loop {
        let orgs = {
            let mut h = ctx.store().acquire().await?;
            h.conn()
                .list_active_organizations(after.as_deref(), ORGANIZATIONS_PER_PAGE)
                .await?
        };
        let Some(last) = orgs.last() else { break };
        after = Some(last.id.clone());
        for org in orgs {
            if let Some(acct) = org.stripe_account_id {
                out.push((AccountId::from_db(org.id), Some(acct)));
            }
        }
    }
    Ok(out)
}

/// Lists the events of the platform account, then of every active
/// organisation (with its `Stripe-Account`, through `Ctx::stripe_of`). An
/// organisation Stripe cannot be asked for is logged and skipped, so one
/// revoked account does not stop the others' recovery.
async fn recover_events(ctx: &Ctx, report: &mut Report) -> Result<()> {
    let platform: Vec<&'static str> = crate::inbox::apply::platform_event_types().collect();
    let connect: Vec<&'static str> = crate::inbox::apply::connect_event_types().collect();
    for (account, acct) in accounts(ctx).await? {
        match acct.as_deref() {
            None => recover_events_of(ctx, &account, None, &platform, report).await?,
            Some(acct) => {
                if let Err(e) = recover_events_of(ctx, &account, Some(acct), &connect, report).await
                {
                    tracing::warn!(organization_id = %account, error = %e, "could not list an organisation's Stripe events; skipped in this pass");
                }
            }
        }
    }
    Ok(())
}

/// Lists `account`'s events of `types` since its last pass and stores
/// them in the inbox. `GET /v1/events` takes at most 20 `types[]`, so the
/// types are listed in chunks, each paged on its own. `acct`: the
/// connected account, set on stored events Stripe listed without it, so
/// the inbox routes them to the organisation.
async fn recover_events_of(
    ctx: &Ctx,
    account: &AccountId,
    acct: Option<&str>,
    types: &[&'static str],
    report: &mut Report,
) -> Result<()> {
    let stripe = ctx.stripe_of(account).await?;
    let store = ctx.store();
    let now = ctx.now().timestamp();
    let since = {
        let mut h = store.acquire().await?;
        match h.conn().get_sync_state(account, CURSOR).await? {
            Some(v) => v.parse::<i64>().unwrap_or(now - FIRST_LOOKBACK_SECONDS) - OVERLAP_SECONDS,
            None => now - FIRST_LOOKBACK_SECONDS,
        }
    };
    let mut newest = since;
    for chunk in crate::inbox::apply::type_chunks(types) {
        let mut starting_after: Option<String> = None;
        loop {
            let mut params = Params::new().set("limit", 100).set("created[gte]", since);
            for t in &chunk {
                params = params.set("types[]", t);
            }
            let params = params.set_opt("starting_after", starting_after.as_deref());
            let page: EventList = stripe.get("/v1/events", &params).await?;
            for event in &page.data {
                let mut envelope: Envelope =
                    serde_json::from_value(event.clone()).map_err(|e| {
                        StripeError::Decode(format!("an event Stripe listed is malformed: {e}"))
                    })?;
                let mut event = event.clone();
                if let (Some(acct), None) = (acct, &envelope.account) {
                    envelope.account = Some(acct.to_string());
                    event["account"] = Value::String(acct.to_string());
                }
                newest = newest.max(envelope.created);
                let payload = serde_json::to_string(&event).map_err(Error::internal)?;
                report.events_listed += 1;
                if crate::inbox::store_event(store, &envelope, &payload, "reconcile")
                    .await?
                    .stored
                {
                    report.events_new += 1;
                }
            }
            match (
                page.has_more,
                page.data.last().and_then(|e| e["id"].as_str()),
            ) {
                (true, Some(last)) => starting_after = Some(last.to_string()),
                _ => break,
            }
        }
    }
    let mut h = store.acquire().await?;
    h.conn()
        .set_sync_state(account, CURSOR, &newest.to_string(), ctx.now())
        .await?;
    Ok(())
}

/// The billing mirror's open objects of every account, read again.
async fn recheck_billing(ctx: &Ctx, report: &mut Report) -> Result<()> {
    for (account, _) in accounts(ctx).await? {
        match super::subscriptions::recheck(ctx, &account, PAYMENTS_PER_RUN).await {
            Ok(n) => report.subscriptions_checked += n,
            Err(e) => {
                tracing::warn!(account = %account, error = %e, "could not recheck subscriptions; skipped in this pass")
            }
        }
        match super::billing_invoices::recheck(ctx, &account, PAYMENTS_PER_RUN).await {
            Ok(n) => report.billing_invoices_checked += n,
            Err(e) => {
                tracing::warn!(account = %account, error = %e, "could not recheck Stripe invoices; skipped in this pass")
            }
        }
    }
    Ok(())
}

/// Compares the open payments of the platform and of every active
/// organisation with their PaymentIntent, each retrieved in its own
/// account (`Ctx::stripe_of`: an organisation's intents live in its
/// connected account, where the platform's key finds them only with its
/// `Stripe-Account`). An organisation Stripe cannot be asked for is
/// logged and skipped.
async fn recheck_payments(ctx: &Ctx, report: &mut Report) -> Result<()> {
    for (account, _) in accounts(ctx).await? {
        let stripe = match ctx.stripe_of(&account).await {
            Ok(stripe) => stripe,
            Err(e) if !account.is_platform() => {
                tracing::warn!(organization_id = %account, error = %e, "could not recheck an organisation's payments; skipped in this pass");
                continue;
            }
            Err(e) => return Err(e),
        };
        recheck_payments_of(ctx, &account, stripe.as_ref(), report).await?;
    }
    Ok(())
}

/// Retrieves the payouts of the platform and of every active organisation
/// that Stripe may still move, each in its own account, and applies each
/// as a view made now (newer than any event), so a lost `payout.paid` or
/// `payout.failed` heals.
async fn recheck_payouts(ctx: &Ctx, report: &mut Report) -> Result<()> {
    for (account, _) in accounts(ctx).await? {
        let stripe = match ctx.stripe_of(&account).await {
            Ok(stripe) => stripe,
            Err(e) if !account.is_platform() => {
                tracing::warn!(organization_id = %account, error = %e, "could not recheck an organisation's payouts; skipped in this pass");
                continue;
            }
            Err(e) => return Err(e),
        };
        let store = ctx.store();
        let since = ctx.now().timestamp() - PAYOUT_RECHECK_DAYS * 86_400;
        let open = {
            let mut h = store.acquire().await?;
            h.conn()
                .list_unsettled_payouts(&account, since, PAYOUTS_PER_RUN)
                .await?
        };
        for payout in open {
            let path = format!("/v1/payouts/{}", payout.stripe_payout_id);
            let object: Value = match stripe.get(&path, &Params::new()).await {
                Ok(v) => v,
                Err(e) => {
                    tracing::warn!(payout = %payout.id, error = %e, "could not retrieve a payout to reconcile");
                    continue;
                }
            };
            let seen = match crate::payouts::read_payout(&object) {
                Ok(seen) => seen,
                Err(why) => {
                    tracing::warn!(payout = %payout.id, reason = %why, "Stripe's payout cannot be applied; skipped");
                    continue;
                }
            };
            report.payouts_checked += 1;
            let mut tx = store.begin().await?;
            let outcome = crate::payouts::observe_payout(
                &mut tx.conn(),
                &account,
                &seen,
                ctx.now().timestamp(),
                None,
            )
            .await?;
            tx.commit().await?;
            if outcome == Outcome::Applied && seen.status != payout.status {
                report.payouts_moved += 1;
            }
        }
    }
    Ok(())
}

async fn recheck_payments_of(
    ctx: &Ctx,
    account: &AccountId,
    stripe: &dyn crate::stripe::StripeApi,
    report: &mut Report,
) -> Result<()> {
    let store = ctx.store();
    let unsettled = {
        let mut h = store.acquire().await?;
        h.conn()
            .list_unsettled_payments(account, PAYMENTS_PER_RUN)
            .await?
    };
    for payment in unsettled {
        let path = format!("/v1/payment_intents/{}", payment.stripe_payment_intent_id);
        let intent: Value = match stripe
            .get(&path, &Params::new().set("expand[]", "latest_charge"))
            .await
        {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(payment = %payment.id, error = %e, "could not retrieve an intent to reconcile");
                continue;
            }
        };
        let seen = match payments::read_intent(&intent) {
            Ok(seen) => seen,
            Err(why) => {
                tracing::warn!(payment = %payment.id, reason = %why, "Stripe's intent cannot be applied; skipped");
                continue;
            }
        };
        report.payments_checked += 1;
        let at = ctx.now().timestamp();
        let cause = Cause {
            kind: "reconcile",
            reference: None,
            account_id: &payment.account_id,
        };
        let mut tx = store.begin().await?;
        let outcome = payments::observe_intent(&mut tx.conn(), &cause, &seen, at).await?;
        tx.conn()
            .mark_payment_reconciled(&payment.id, ctx.now())
            .await?;
        tx.commit().await?;
        let after = {
            let mut h = store.acquire().await?;
            h.conn()
                .get_payment(&payment.account(), &payment.id)
                .await?
        };
        if outcome == Outcome::Applied && after.is_some_and(|p| p.status != payment.status) {
            report.payments_moved += 1;
        }
    }
    Ok(())
}
