//! `obol stripe register-webhook`: points a Stripe account's deliveries at
//! obol, once.

use std::process::ExitCode;

use clap::Subcommand;
use serde::Deserialize;

use crate::config::{Config, STRIPE_API_BASE};
use crate::inbox::apply::handled_event_types;
use crate::stripe::{IdempotencyKey, Params, RateLimit, StripeClient};

#[derive(Debug, Subcommand)]
pub enum StripeCommand {
    /// Register `OBOL_PUBLIC_URL/webhooks/stripe` for the event types obol
    /// handles, unless an endpoint for that URL exists already (a second
    /// one would deliver every event twice). Prints the signing secret.
    RegisterWebhook,
}

#[derive(Deserialize)]
struct Endpoint {
    id: String,
    url: String,
    #[serde(default)]
    enabled_events: Vec<String>,
    secret: Option<String>,
}

#[derive(Deserialize)]
struct List {
    data: Vec<Endpoint>,
    has_more: bool,
}

pub async fn run(config: Config, command: StripeCommand) -> anyhow::Result<ExitCode> {
    match command {
        StripeCommand::RegisterWebhook => register_webhook(config).await,
    }
}

async fn register_webhook(config: Config) -> anyhow::Result<ExitCode> {
    let Some(key) = config.stripe.secret_key.clone() else {
        anyhow::bail!("stripe.secret_key is not set: the built-in sandbox registers obol itself");
    };
    let Some(public) = config.public_url.clone() else {
        anyhow::bail!(
            "public_url (OBOL_PUBLIC_URL) is not set: Stripe needs to know where obol is"
        );
    };
    let url = format!("{}/webhooks/stripe", public.trim_end_matches('/'));
    let base = config
        .stripe
        .api_base
        .clone()
        .unwrap_or_else(|| STRIPE_API_BASE.to_string());
    let client = StripeClient::new(
        &base,
        key,
        RateLimit::per_second(config.stripe_rate_limit()),
        config.stripe_retry_policy(),
    )?;
    let mut endpoints = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page: List = client
            .get(
                "/v1/webhook_endpoints",
                &Params::new()
                    .set("limit", 100)
                    .set_opt("starting_after", after.as_deref()),
            )
            .await?;
        after = page.data.last().map(|e| e.id.clone());
        endpoints.extend(page.data);
        if !page.has_more || after.is_none() {
            break;
        }
    }
    let ours: Vec<&Endpoint> = endpoints.iter().filter(|e| e.url == url).collect();
    let wanted: Vec<&str> = handled_event_types().collect();
    match ours.as_slice() {
        [] => {
            let mut params = Params::new()
                .set("url", &url)
                .set("description", "obol")
                .set("metadata[obol_managed]", "true");
            for t in &wanted {
                params = params.set("enabled_events[]", t);
            }
            let created: Endpoint = client
                .post(
                    "/v1/webhook_endpoints",
                    &params,
                    &IdempotencyKey::for_op("register-webhook", &[&url]),
                )
                .await?;
            println!(
                "registered {} for {} event types at {url}",
                created.id,
                wanted.len()
            );
            match created.secret {
                Some(secret) => println!(
                    "signing secret (shown once by Stripe): {secret}\n\
                     add it to stripe.webhook_secrets (OBOL_STRIPE__WEBHOOK_SECRETS) and restart obol"
                ),
                None => println!("Stripe returned no signing secret; copy it from the dashboard"),
            }
            Ok(ExitCode::SUCCESS)
        }
        [one] => {
            let missing: Vec<&&str> = wanted
                .iter()
                .filter(|t| !one.enabled_events.iter().any(|e| e == "*" || e == *t))
                .collect();
            println!(
                "already registered: {} at {url}; not adding a second endpoint",
                one.id
            );
            if missing.is_empty() {
                Ok(ExitCode::SUCCESS)
            } else {
                let names: Vec<&str> = missing.iter().map(|s| **s).collect();
                println!(
                    "it does not send {} event types obol handles: {}",
                    names.len(),
                    names.join(", ")
                );
                Ok(ExitCode::from(1))
            }
        }
        several => {
            let ids: Vec<&str> = several.iter().map(|e| e.id.as_str()).collect();
            println!(
                "{} endpoints deliver to {url} ({}): every event arrives {} times. \
                 Delete all but one in Stripe's dashboard.",
                several.len(),
                ids.join(", "),
                several.len()
            );
            Ok(ExitCode::from(1))
        }
    }
}
