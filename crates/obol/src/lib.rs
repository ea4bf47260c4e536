//! obol: a self-hosted Stripe payments hub.
//!
//! `Application::build` connects storage, starts the built-in Stripe
//! sandbox when no Stripe keys are configured, and binds the listener;
//! `run_until_stopped` serves until the shutdown signal, then lets in-flight
//! requests finish.

pub mod accounting;
pub mod acp;
pub mod address;
pub mod admin;
pub mod api;
pub mod billing;
pub mod charge_runs;
pub mod cli;
pub mod config;
pub mod context;
pub mod customers;
pub mod email;
pub mod error;
pub mod http_server;
pub mod ids;
pub mod inbox;
pub mod invoices;
pub mod jobs;
pub mod ledger;
pub mod mcp;
pub mod metrics;
pub mod money;
pub mod openapi;
pub mod ops;
pub mod orders;
pub mod organizations;
pub mod outbound;
pub mod outbox;
pub mod pages;
pub mod payments;
pub mod payouts;
pub mod saved_cards;
pub mod secrets;
pub mod storage;
pub mod stripe;
pub mod telemetry;
pub mod validate;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use secrecy::{ExposeSecret, SecretString};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::api::auth::API_KEY_PREFIX;
use crate::config::{Config, StripeMode, STRIPE_API_BASE};
use crate::ids::{ApiKeyId, SecretToken, TokenHash};
use crate::storage::Store;
use crate::stripe::{IdempotencyKey, Params, RateLimit, StripeClient, StripeInfo};

/// Keys the in-process sandbox accepts: any well-formed test key works there.
pub(crate) const SANDBOX_SECRET_KEY: &str = "sk_test_obol_sandbox";
pub(crate) const SANDBOX_PUBLISHABLE_KEY: &str = "pk_test_obol_sandbox";
/// Concurrent appliers of the webhook inbox in one process.
const INBOX_WORKERS: usize = 2;

pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    store: Store,
    sandbox: Option<JoinHandle<()>>,
    background: Vec<JoinHandle<()>>,
    stop_background: CancellationToken,
    grace: Duration,
    limits: http_server::HttpLimits,
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Application> {
        let store = Store::connect(&config)
            .await
            .context("connecting to the database")?;
        let applied = store.migrate().await.context("applying migrations")?;
        tracing::info!(backend = store.backend().as_str(), applied, "storage ready");

        let stop_background = CancellationToken::new();
        let (stripe, sandbox) = start_stripe(&config, &stop_background).await?;
        // Before the first Stripe call: the budget is shared with the other
        // obol processes on this database.
        let budget = stripe::budget::join(
            store.clone(),
            stripe.client().rate_limit().clone(),
            stop_background.clone(),
        )
        .await
        .context("joining the other obol processes' Stripe budget")?;
        let api_key_hashes = api_key_hashes(&config, &store).await?;

        let addr = config.listen_addr()?;
        if config.metrics.token.is_none() && !addr.ip().is_loopback() {
            // Not refused: the series carry counts and route templates, no
            // ids or amounts, and many deployments scrape on a private
            // network; but whoever reaches the port reads them.
            tracing::warn!(listen = %addr, "GET /metrics is open on a non-loopback address; set metrics.token (OBOL_METRICS__TOKEN) to require a bearer token");
        }
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding {addr}"))?;
        let local = listener.local_addr()?;
        let inbox_wake = Arc::new(Notify::new());
        let mut settings = context::Settings::from_config(&config)?;
        if config.public_url.is_none() {
            // Port 0 picks a free port: links name the one bound.
            settings.public_base = format!("http://{local}");
            if config.acp.order_url.is_none() {
                settings.acp.order_url = format!("http://{local}/orders/{{id}}");
            }
        }
        if stripe.mode == StripeMode::Sandbox && config.stripe.connect.base.is_none() {
            // The sandbox serves Connect's OAuth endpoints beside its API.
            settings.connect_base = stripe.api_base.trim_end_matches('/').to_string();
        }
        let secrets = secrets::load(&config, &store)
            .await
            .context("loading the keys secrets at rest are encrypted with")?;
        let ctx = context::Ctx::new(store.clone(), stripe.clone(), settings, inbox_wake.clone())
            .with_secrets(secrets.map(Arc::new));
        let state = api::AppState::new(&config, ctx.clone(), api_key_hashes);
        if stripe.mode == StripeMode::Sandbox {
            let url = format!("http://{local}/webhooks/stripe");
            let secret = register_sandbox_webhook(&ctx, stripe.client(), &url)
                .await
                .context("registering obol's webhook endpoints with the sandbox")?;
            state.add_webhook_secret(secret);
        } else {
            // Which endpoints deliver to obol, for `/health`; Stripe may be
            // slow or down at start, so not in the way of serving.
            let ctx = ctx.clone();
            tokio::spawn(async move {
                if let Err(e) = ops::connect_webhooks::refresh_check(&ctx).await {
                    tracing::warn!(error = %e, "could not check Stripe's webhook endpoints");
                }
            });
        }
        let mut background = vec![budget];
        for _ in 0..INBOX_WORKERS {
            background.push(tokio::spawn(inbox::worker::run(
                store.clone(),
                stripe.mode == StripeMode::Live,
                inbox_wake.clone(),
                stop_background.clone(),
            )));
        }
        let dispatcher = outbox::dispatcher::Dispatcher::new(
            store.clone(),
            Duration::from_millis(config.notifications.retry_unit_ms),
            config.outbound_policy(),
        )?;
        background.push(tokio::spawn(dispatcher.run(stop_background.clone())));
        let job_ctx = jobs::JobCtx {
            ctx: ctx.clone(),
            settings: jobs::JobSettings::from_config(&config),
            accounting: Arc::new(accounting::Accounting::from_config(&config)?),
            email: Arc::new(email::Mailer::from_config(&config)?),
        };
        if !job_ctx.email.is_configured() {
            tracing::info!("no SMTP server configured (email.smtp_url): member e-mails are kept as logged, not sent");
        }
        jobs::reconcile::schedule_first(ctx.store(), &job_ctx.settings)
            .await
            .context("scheduling the reconciliation job")?;
        jobs::invoice_sweep::schedule_first(ctx.store(), &job_ctx.settings)
            .await
            .context("scheduling the invoice sweep")?;
        jobs::acp::schedule_first_sweep(ctx.store())
            .await
            .context("scheduling the ACP idempotency sweep")?;
        for _ in 0..job_ctx.settings.workers {
            let runner = jobs::Runner::new(job_ctx.clone(), jobs::Runner::worker_id());
            background.push(tokio::spawn(runner.run(stop_background.clone())));
        }
        let router = api::router(
            state,
            config.http.body_limit_bytes,
            Duration::from_secs(config.http.body_timeout_seconds),
        );
        Ok(Application {
            listener,
            router,
            store,
            sandbox,
            background,
            stop_background,
            grace: Duration::from_secs(config.http.shutdown_grace_seconds),
            limits: http_server::HttpLimits {
                header_timeout: Duration::from_secs(config.http.header_timeout_seconds),
                idle_timeout: Duration::from_secs(config.http.idle_timeout_seconds),
                max_connections: config.http.max_connections,
            },
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` completes; then stops accepting, waits up to
    /// the grace period for in-flight requests, and closes storage.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let stopping = CancellationToken::new();
        let trigger = stopping.clone();
        tokio::spawn(async move {
            shutdown.await;
            trigger.cancel();
        });
        let server = http_server::serve(self.listener, self.router, self.limits, stopping.clone());
        let grace = self.grace;
        let deadline = async {
            stopping.cancelled().await;
            tracing::info!("shutting down: finishing in-flight requests");
            tokio::time::sleep(grace).await;
        };
        tokio::select! {
            () = server => {}
            () = deadline => tracing::warn!(grace_seconds = grace.as_secs(), "in-flight requests did not finish within the grace period"),
        }
        self.stop_background.cancel();
        for task in self.background {
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
        if let Some(sandbox) = self.sandbox {
            let _ = tokio::time::timeout(Duration::from_secs(5), sandbox).await;
        }
        self.store.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// Real Stripe when keys are configured; otherwise the built-in sandbox on
/// a loopback port, reached through the same HTTP client.
async fn start_stripe(
    config: &Config,
    stop: &CancellationToken,
) -> anyhow::Result<(StripeInfo, Option<JoinHandle<()>>)> {
    match (config.stripe_mode(), &config.stripe.secret_key) {
        (StripeMode::Sandbox, _) | (_, None) => {
            let chaos = match &config.sandbox.chaos {
                Some(c) => c
                    .parse()
                    .map_err(|e| anyhow::anyhow!("sandbox.chaos: {e}"))?,
                None => obol_sandbox::ChaosConfig::default(),
            };
            let db = match config.sandbox_db_path() {
                Some(path) => obol_sandbox::SandboxDb::File(path),
                None => obol_sandbox::SandboxDb::Memory,
            };
            let sandbox = obol_sandbox::Sandbox::bind(
                SocketAddr::from(([127, 0, 0, 1], 0)),
                obol_sandbox::SandboxConfig {
                    db,
                    chaos,
                    public_url: None,
                    webhook_retry_base: Duration::from_secs(5),
                    rate_limit_per_second: config.sandbox.rate_limit_per_second,
                },
            )
            .await
            .context("starting the built-in Stripe sandbox")?;
            let api_base = format!("http://{}", sandbox.local_addr());
            tracing::warn!(
                %api_base,
                "no Stripe keys configured: obol runs against its built-in Stripe sandbox; no real money moves"
            );
            let stop = stop.clone();
            let handle = tokio::spawn(async move {
                if let Err(e) = sandbox.run_until(stop.cancelled_owned()).await {
                    tracing::error!(error = %e, "the built-in Stripe sandbox stopped");
                }
            });
            let client = stripe_client(config, &api_base, SecretString::from(SANDBOX_SECRET_KEY))?;
            let info = StripeInfo::new(
                StripeMode::Sandbox,
                SANDBOX_PUBLISHABLE_KEY.to_string(),
                client,
            );
            Ok((info, Some(handle)))
        }
        (mode, Some(secret_key)) => {
            let api_base = config
                .stripe
                .api_base
                .clone()
                .unwrap_or_else(|| STRIPE_API_BASE.to_string());
            let client = stripe_client(config, &api_base, secret_key.clone())?;
            let info = StripeInfo::new(
                mode,
                config.stripe.publishable_key.clone().unwrap_or_default(),
                client,
            );
            Ok((info, None))
        }
    }
}

fn stripe_client(
    config: &Config,
    api_base: &str,
    secret_key: SecretString,
) -> anyhow::Result<StripeClient> {
    Ok(StripeClient::new(
        api_base,
        secret_key,
        RateLimit::per_second(config.stripe_rate_limit()),
        config.stripe_retry_policy(),
    )?)
}

/// Points the sandbox's deliveries at this obol: removes the endpoints an
/// earlier run registered (their port is gone) and registers a new one for
/// the event types obol handles. Returns the new endpoint's signing secret.
///
/// The Connect endpoint too (as `ops::connect_webhooks::ensure_registered`
/// would on the first connection), so connected accounts' events reach a
/// sandbox obol from the start: an earlier one for this URL whose secret
/// obol stores is kept, any other obol registered is replaced.
async fn register_sandbox_webhook(
    ctx: &context::Ctx,
    client: &StripeClient,
    url: &str,
) -> anyhow::Result<SecretString> {
    #[derive(serde::Deserialize)]
    struct Created {
        id: String,
        secret: Option<String>,
    }
    let stored: Vec<String> = {
        let mut h = ctx.store().acquire().await?;
        h.conn()
            .list_stripe_endpoints()
            .await?
            .into_iter()
            .map(|r| r.id)
            .collect()
    };
    let mut kept_connect = None;
    for old in ops::connect_webhooks::list_endpoints(ctx.stripe()).await? {
        if old.metadata.get("obol_managed").map(String::as_str) != Some("true") {
            continue;
        }
        if old.is_connect() && old.url == url && stored.contains(&old.id) && kept_connect.is_none()
        {
            kept_connect = Some(old.id);
            continue;
        }
        let _: serde_json::Value = client
            .delete(&format!("/v1/webhook_endpoints/{}", old.id))
            .await?;
    }
    let mut params = Params::new()
        .set("url", url)
        .set("metadata[obol_managed]", "true")
        .set("description", "obol (registered at start-up)");
    for event_type in inbox::apply::platform_event_types() {
        params = params.set("enabled_events[]", event_type);
    }
    let boot = ulid::Ulid::new().to_string();
    let created: Created = client
        .post(
            "/v1/webhook_endpoints",
            &params,
            &IdempotencyKey::for_op("register-webhook", &[url, &boot]),
        )
        .await?;
    let secret = created
        .secret
        .ok_or_else(|| anyhow::anyhow!("the sandbox returned no webhook secret"))?;
    tracing::info!(endpoint = %created.id, %url, "webhook endpoint registered with the sandbox");
    if kept_connect.is_none() {
        ops::connect_webhooks::create_connect_endpoint(
            ctx,
            url,
            &IdempotencyKey::for_op("register-connect-webhook", &[url, &boot]),
            "obol Connect (registered at start-up)",
        )
        .await?;
    }
    ops::connect_webhooks::refresh_check(ctx).await?;
    Ok(SecretString::from(secret))
}

/// The hashes of every accepted secret API key. Configured keys win; with
/// none configured (only allowed in sandbox mode) obol uses the development
/// key it generated earlier, or generates one now and prints it once.
async fn api_key_hashes(config: &Config, store: &Store) -> anyhow::Result<Vec<TokenHash>> {
    if !config.api_keys.is_empty() {
        return Ok(config
            .api_keys
            .iter()
            .map(|k| TokenHash::of(k.expose_secret()))
            .collect());
    }
    let mut handle = store.acquire().await?;
    let stored = handle.conn().list_live_api_key_hashes().await?;
    if !stored.is_empty() {
        tracing::info!(
            "using the development API key generated on first start (set OBOL_API_KEYS to use your own)"
        );
        return Ok(stored);
    }
    let key = SecretToken::generate(API_KEY_PREFIX);
    handle
        .conn()
        .insert_api_key(
            &ApiKeyId::generate(),
            &key.hash(),
            "development",
            storage::now(),
        )
        .await?;
    // stdout, once: the only place this key is ever shown.
    println!(
        "development API key (shown once, stored hashed): {}",
        key.expose()
    );
    Ok(vec![key.hash()])
}
