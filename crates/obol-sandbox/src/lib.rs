//! obol-sandbox: an offline, stateful emulator of Stripe's HTTP API.
//!
//! It speaks Stripe's wire protocol (form-encoded requests, JSON responses,
//! Stripe's error object, idempotency keys, list pagination), keeps its state
//! in SQLite, honours Stripe's test cards, records events and delivers them
//! as signed webhooks with retries. obol embeds it but reaches it only over
//! HTTP; nothing here is shared with obol's own Stripe client on purpose, so a
//! serialization bug cannot hide on both sides.
//!
//! Module map: `api/` (one file per resource plus the dispatcher), `form`
//! (bracket-notation parser), `ctx` (one request's transaction, events and
//! expansion), `store` (schema and SQL), `cards` (test cards), `delivery`
//! (webhook and job loop), `pages` (3-D Secure page and `/_sandbox/*`),
//! `chaos`, `rate` (the optional Stripe-like rate limit and its counts),
//! `trigger`, `connect` (Stripe Connect's OAuth endpoints and which
//! account a request acts for).

#![recursion_limit = "256"]

mod api;
mod cards;
mod chaos;
mod connect;
mod ctx;
mod delivery;
mod error;
mod form;
mod ids;
mod pages;
mod rate;
mod store;
mod time;
mod trigger;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub use chaos::ChaosConfig;
pub use trigger::{trigger, SUPPORTED_TRIGGERS};

/// Where the sandbox keeps its state.
#[derive(Clone, Debug)]
pub enum SandboxDb {
    /// A private in-memory SQLite database, gone when the sandbox stops.
    Memory,
    /// A SQLite file, created and migrated on start.
    File(std::path::PathBuf),
}

/// Start-up settings of a [`Sandbox`].
#[derive(Clone, Debug)]
pub struct SandboxConfig {
    pub db: SandboxDb,
    pub chaos: ChaosConfig,
    /// Base URL used in 3-D Secure redirect links; default `http://{local_addr}`.
    pub public_url: Option<String>,
    /// Delay before the first webhook retry; doubles with each attempt.
    pub webhook_retry_base: Duration,
    /// Requests per second `/v1/*` accepts, as Stripe's global limit: a
    /// token bucket of one second (capacity N, refilled at N/s); beyond it
    /// 429 `rate_limit`. `None`: no limit.
    pub rate_limit_per_second: Option<u32>,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            db: SandboxDb::Memory,
            chaos: ChaosConfig::default(),
            public_url: None,
            webhook_retry_base: Duration::from_secs(5),
            rate_limit_per_second: None,
        }
    }
}

/// A bound, not yet serving, sandbox.
pub struct Sandbox {
    listener: tokio::net::TcpListener,
    app: Arc<ctx::App>,
    addr: SocketAddr,
}

impl Sandbox {
    /// Binds the listener (port 0 picks a free port) and opens or migrates the database.
    pub async fn bind(addr: SocketAddr, config: SandboxConfig) -> anyhow::Result<Sandbox> {
        if config.rate_limit_per_second == Some(0) {
            anyhow::bail!("the rate limit must be at least 1 request per second");
        }
        let pool = store::open(&config.db).await?;
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        let base_url = config
            .public_url
            .clone()
            .map(|u| u.trim_end_matches('/').to_string())
            .unwrap_or_else(|| format!("http://{local}"));
        let account_id = store::account_id(&pool).await?;
        store::release_pending_deliveries(&pool, ctx::now_ms()).await?;
        let app = ctx::App::new(
            pool,
            base_url,
            account_id,
            config.chaos,
            config.webhook_retry_base,
            config.rate_limit_per_second,
        )?;
        Ok(Sandbox {
            listener,
            app: Arc::new(app),
            addr: local,
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves the API and runs webhook delivery until `shutdown` completes.
    pub async fn run_until(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let worker = tokio::spawn(delivery::run(self.app.clone(), stop_rx));
        let router = api::router(self.app.clone());
        let served = axum::serve(self.listener, router)
            .with_graceful_shutdown(shutdown)
            .await;
        let _ = stop_tx.send(true);
        let _ = worker.await;
        self.app.pool.close().await;
        served.map_err(Into::into)
    }
}
