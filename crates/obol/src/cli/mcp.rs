//! `obol mcp`: the MCP server on stdin/stdout, acting for the credential
//! in `OBOL_MCP_TOKEN` (a secret key or a customer token), in the
//! organisation `OBOL_MCP_ORGANIZATION` names, if any (what the
//! `Obol-Organization` header is to the HTTP API and `/mcp`). The tools run
//! in this process against the configured database and Stripe; with no
//! Stripe keys the sandbox is the one inside the running `obol serve`
//! (found through its `/health`, as `obol reconcile` does). stdout is the
//! MCP channel: logs go to stderr.

use std::process::ExitCode;

use anyhow::Context;
use secrecy::{ExposeSecret, SecretString};

use crate::config::{Config, StripeMode, STRIPE_API_BASE};
use crate::context::{Ctx, Settings};
use crate::ids::TokenHash;
use crate::mcp::{self, StdioError};
use crate::storage::Store;
use crate::stripe::{RateLimit, StripeClient, StripeInfo};

pub const TOKEN_VARIABLE: &str = "OBOL_MCP_TOKEN";
pub const ORGANIZATION_VARIABLE: &str = "OBOL_MCP_ORGANIZATION";

pub async fn run(config: Config) -> anyhow::Result<ExitCode> {
    crate::telemetry::init(config.log_format, &config.log);
    let token = match std::env::var(TOKEN_VARIABLE) {
        Ok(t) if !t.trim().is_empty() => SecretString::from(t.trim().to_string()),
        _ => {
            eprintln!(
                "obol: {TOKEN_VARIABLE} is not set: give it a secret key (obol_sk_…) or a customer token (obol_ct_…)"
            );
            return Ok(ExitCode::from(2));
        }
    };
    let organization = std::env::var(ORGANIZATION_VARIABLE)
        .ok()
        .map(|o| o.trim().to_string())
        .filter(|o| !o.is_empty());
    let stripe = stripe_info(&config).await?;
    let store = Store::connect(&config)
        .await
        .context("connecting to the database")?;
    store.migrate().await.context("applying migrations")?;
    let secret_key_hashes = secret_key_hashes(&config, &store).await?;
    let ctx = Ctx::new(
        store.clone(),
        stripe,
        Settings::from_config(&config)?,
        Default::default(),
    );
    let result = mcp::serve_stdio(ctx, token, secret_key_hashes, organization).await;
    store.close().await;
    match result {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e @ StdioError::Credential(_)) => {
            eprintln!("obol: {e}");
            Ok(ExitCode::FAILURE)
        }
        Err(e) => Err(e.into()),
    }
}

/// The secret keys obol accepts: the configured ones or, with none
/// configured (sandbox mode), the development key `obol serve` generated
/// and stored hashed.
async fn secret_key_hashes(config: &Config, store: &Store) -> anyhow::Result<Vec<TokenHash>> {
    if !config.api_keys.is_empty() {
        return Ok(config
            .api_keys
            .iter()
            .map(|k| TokenHash::of(k.expose_secret()))
            .collect());
    }
    let mut handle = store.acquire().await?;
    Ok(handle.conn().list_live_api_key_hashes().await?)
}

/// The configured Stripe, or the sandbox inside the running `obol serve`.
pub(super) async fn stripe_info(config: &Config) -> anyhow::Result<StripeInfo> {
    let mode = config.stripe_mode();
    let (api_base, key, publishable) = match (mode, &config.stripe.secret_key) {
        (StripeMode::Sandbox, _) | (_, None) => {
            let url = format!("http://{}/health", config.listen);
            let health: serde_json::Value = async { reqwest::get(&url).await?.json().await }
                .await
                .with_context(|| {
                    format!(
                        "no running obol at {} to find its Stripe sandbox (start `obol serve`, or set OBOL_LISTEN to its address)",
                        config.listen
                    )
                })?;
            let base = health["stripe"]["api_base"].as_str().ok_or_else(|| {
                anyhow::anyhow!("the obol at {} reports no sandbox", config.listen)
            })?;
            (
                base.to_string(),
                SecretString::from(crate::SANDBOX_SECRET_KEY),
                crate::SANDBOX_PUBLISHABLE_KEY.to_string(),
            )
        }
        (_, Some(key)) => (
            config
                .stripe
                .api_base
                .clone()
                .unwrap_or_else(|| STRIPE_API_BASE.to_string()),
            key.clone(),
            config.stripe.publishable_key.clone().unwrap_or_default(),
        ),
    };
    let client = StripeClient::new(
        &api_base,
        key,
        RateLimit::per_second(config.stripe_rate_limit()),
        config.stripe_retry_policy(),
    )?;
    Ok(StripeInfo::new(mode, publishable, client))
}
