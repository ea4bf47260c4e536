//! The `obol` command line. Doc comments here are the `--help` text.

mod admin;
mod charge_runs;
mod config_check;
mod doctor;
mod mcp;
mod migrate;
mod reconcile;
mod sandbox;
mod secrets;
mod serve;
mod stripe;
mod trigger;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::Config;

/// obol: a self-hosted Stripe payments hub.
#[derive(Debug, Parser)]
#[command(name = "obol", version, about)]
pub struct Cli {
    /// Configuration file (default: obol.yaml when present).
    #[arg(long, global = true, env = "OBOL_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the hub: HTTP API, webhook inbox, background jobs.
    Serve,
    /// Run the offline Stripe sandbox alone, for host applications' tests
    /// and Stripe's official SDKs (`stripe.api_base = …`).
    Sandbox(sandbox::SandboxArgs),
    /// Apply pending database migrations and exit.
    Migrate,
    /// Recover what Stripe's webhook deliveries lost: one pass, then exit.
    Reconcile,
    /// Serve obol's MCP tools on stdin/stdout for an AI agent, acting for
    /// the credential in OBOL_MCP_TOKEN (a secret key or a customer token).
    /// Needs the database; in sandbox mode the running `obol serve`.
    Mcp,
    /// Create the sandbox objects that make a Stripe event happen (like `stripe trigger`).
    Trigger(trigger::TriggerArgs),
    /// Work with the Stripe account obol is configured for.
    Stripe {
        #[command(subcommand)]
        command: stripe::StripeCommand,
    },
    /// Print obol's API description (OpenAPI 3.1, JSON) to stdout: the
    /// same document `GET /openapi.json` serves.
    Openapi,
    /// Create and follow charge runs (off-session charges of saved cards).
    #[command(name = "charge-runs")]
    ChargeRuns {
        #[command(subcommand)]
        command: charge_runs::ChargeRunCommand,
    },
    /// Secrets at rest (organisations' Stripe tokens, encrypted).
    Secrets {
        #[command(subcommand)]
        command: secrets::SecretsCommand,
    },
    /// The admin dashboard (`/admin`).
    Admin {
        #[command(subcommand)]
        command: admin::AdminCommand,
    },
    /// Inspect the configuration.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Check the configuration, the database, the Stripe account and its
    /// webhook endpoints, the public URL and SMTP; print one line per
    /// check (`ok|warn|fail  name: …`) with what to fix. Exit 0 when
    /// nothing failed, 1 when a check failed, 2 on a bad configuration.
    Doctor,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Load and validate the configuration; print a summary without secrets.
    Check,
}

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve => serve::run(load(&cli.config)?).await,
        Command::Sandbox(args) => sandbox::run(args).await,
        Command::Migrate => migrate::run(load(&cli.config)?).await,
        Command::Reconcile => reconcile::run(load(&cli.config)?).await,
        Command::Mcp => mcp::run(load(&cli.config)?).await,
        Command::Trigger(args) => trigger::run(args, &cli.config).await,
        Command::Stripe { command } => stripe::run(load(&cli.config)?, command).await,
        Command::ChargeRuns { command } => charge_runs::run(load(&cli.config)?, command).await,
        Command::Secrets { command } => secrets::run(load(&cli.config)?, command).await,
        Command::Admin { command } => admin::run(command),
        Command::Openapi => {
            println!(
                "{}",
                serde_json::to_string_pretty(crate::openapi::document())?
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Config {
            command: ConfigCommand::Check,
        } => config_check::run(load(&cli.config)?),
        Command::Doctor => doctor::run(cli.config.as_deref()).await,
    }
}

fn load(path: &Option<PathBuf>) -> anyhow::Result<Config> {
    Ok(Config::load(path.as_deref())?)
}

/// Completes on SIGTERM or ctrl-c.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for ctrl-c");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
