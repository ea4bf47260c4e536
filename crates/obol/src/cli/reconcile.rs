//! `obol reconcile`: one reconciliation pass, then exit.

use std::process::ExitCode;

use secrecy::SecretString;

use crate::config::{Config, StripeMode, STRIPE_API_BASE};
use crate::context::{Actor, Ctx, Settings};
use crate::ops::reconciliation;
use crate::storage::Store;
use crate::stripe::{RateLimit, StripeClient, StripeInfo};

pub async fn run(config: Config) -> anyhow::Result<ExitCode> {
    crate::telemetry::init(config.log_format, &config.log);
    let (api_base, key) = match (config.stripe_mode(), &config.stripe.secret_key) {
        (StripeMode::Sandbox, _) | (_, None) => {
            // The sandbox lives inside the running `obol serve`; ask it where.
            let health: serde_json::Value =
                reqwest::get(format!("http://{}/health", config.listen))
                    .await?
                    .json()
                    .await?;
            let base = health["stripe"]["api_base"].as_str().ok_or_else(|| {
                anyhow::anyhow!("no running obol at {} to find its sandbox", config.listen)
            })?;
            (
                base.to_string(),
                SecretString::from("sk_test_obol_reconcile"),
            )
        }
        (_, Some(key)) => (
            config
                .stripe
                .api_base
                .clone()
                .unwrap_or_else(|| STRIPE_API_BASE.to_string()),
            key.clone(),
        ),
    };
    let limit = RateLimit::per_second(config.stripe_rate_limit());
    let client = StripeClient::new(&api_base, key, limit.clone(), config.stripe_retry_policy())?;
    let store = Store::connect(&config).await?;
    store.migrate().await?;
    // A pass may make many Stripe calls: it takes its share of the budget
    // like any running obol.
    let stop = tokio_util::sync::CancellationToken::new();
    let budget = crate::stripe::budget::join(store.clone(), limit, stop.clone()).await?;
    let mode = config.stripe_mode();
    let publishable = config.stripe.publishable_key.clone().unwrap_or_default();
    let ctx = Ctx::new(
        store.clone(),
        StripeInfo::new(mode, publishable, client),
        Settings::from_config(&config)?,
        Default::default(),
    );
    let report = reconciliation::run(&ctx, &Actor::platform_secret()).await;
    stop.cancel();
    let _ = budget.await;
    let report = report?;
    println!("{}", serde_json::to_string(&report)?);
    store.close().await;
    Ok(ExitCode::SUCCESS)
}
