//! Health: liveness plus what a script needs to find its Stripe.

use serde_json::{json, Value};

use crate::context::Ctx;

/// `status` is `ok` when storage answers, else `degraded` (the second
/// value is false). `stripe.account` is null while Stripe cannot be reached.
pub async fn check(ctx: &Ctx) -> (bool, Value) {
    let storage_ok = ctx.store().ping().await.is_ok();
    let stripe = ctx.stripe_info();
    let account = stripe.account().await;
    let status = if storage_ok { "ok" } else { "degraded" };
    (
        storage_ok,
        json!({
            "status": status,
            "version": env!("CARGO_PKG_VERSION"),
            "publishable_key": stripe.publishable_key,
            "stripe": {
                "mode": stripe.mode,
                "api_base": stripe.api_base,
                "account": account,
            },
            "storage": { "backend": ctx.store().backend().as_str(), "ok": storage_ok },
            "checked_at": ctx.now(),
        }),
    )
}
