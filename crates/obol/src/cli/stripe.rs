//! `obol stripe register-webhook`: points a Stripe account's deliveries at
//! obol, once, and reports the endpoints delivering to obol: two platform
//! endpoints, or two Connect endpoints, with obol's URL would each deliver
//! every event again (exit 1).

use std::process::ExitCode;

use clap::Subcommand;
use serde::Deserialize;

use crate::config::{Config, STRIPE_API_BASE};
use crate::inbox::apply::{connect_event_types, platform_event_types};
use crate::ops::connect_webhooks::{
    duplicate_message, list_endpoints, webhook_url, EndpointKind, ObolEndpoints,
};
use crate::stripe::{IdempotencyKey, Params, RateLimit, StripeClient};

#[derive(Debug, Subcommand)]
pub enum StripeCommand {
    /// Register `OBOL_PUBLIC_URL/webhooks/stripe` for the event types obol
    /// handles, unless an endpoint for that URL exists already (a second
    /// one would deliver every event twice). Prints the signing secret.
    /// Reports the Connect endpoint (obol registers it itself) and any
    /// duplicate, platform or Connect (exit 1).
    RegisterWebhook,
}

/// Stripe's answer to creating an endpoint: the secret is in it, once.
#[derive(Deserialize)]
struct Created {
    id: String,
    secret: Option<String>,
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
    let url = webhook_url(&public);
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
    let endpoints = list_endpoints(&client).await?;
    let ours = ObolEndpoints::of(&endpoints, &url);
    let missing_of = |id: &str, wanted: Vec<&'static str>| -> Vec<&'static str> {
        endpoints
            .iter()
            .find(|e| e.id == id)
            .map(|e| e.missing(wanted.into_iter()))
            .unwrap_or_default()
    };
    let mut ok = true;
    let wanted: Vec<&str> = platform_event_types().collect();
    match ours.platform.as_slice() {
        [] => {
            let mut params = Params::new()
                .set("url", &url)
                .set("description", "obol")
                .set("metadata[obol_managed]", "true");
            for t in &wanted {
                params = params.set("enabled_events[]", t);
            }
            let created: Created = client
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
        }
        [one] => {
            println!("already registered: {one} at {url}; not adding a second endpoint");
            let missing = missing_of(one, wanted);
            if !missing.is_empty() {
                ok = false;
                println!(
                    "it does not send {} event types obol handles: {}",
                    missing.len(),
                    missing.join(", ")
                );
            }
        }
        several => {
            ok = false;
            if let Some(m) = duplicate_message(EndpointKind::Platform, several, &url) {
                println!("{m}");
            }
        }
    }
    // The Connect endpoint is obol's own to register (on the first
    // organisation's connection); this reports it.
    match ours.connect.as_slice() {
        [] => println!(
            "no Connect endpoint at {url} yet: obol registers one when the first organisation connects"
        ),
        [one] => {
            println!("Connect endpoint: {one} at {url}");
            let missing = missing_of(one, connect_event_types().collect());
            if !missing.is_empty() {
                ok = false;
                println!(
                    "it does not send {} event types obol handles: {}",
                    missing.len(),
                    missing.join(", ")
                );
            }
        }
        several => {
            ok = false;
            if let Some(m) = duplicate_message(EndpointKind::Connect, several, &url) {
                println!("{m}");
            }
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
