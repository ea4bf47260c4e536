//! `obol secrets rotate`: re-encrypts secrets at rest with the current key.

use std::process::ExitCode;

use crate::config::Config;
use crate::storage::Store;

#[derive(Debug, clap::Subcommand)]
pub enum SecretsCommand {
    /// Re-encrypt every stored secret (organisations' Stripe tokens) with
    /// secrets.encryption_key. Run after moving the old key to
    /// secrets.previous_keys; once it reports nothing left to rewrite,
    /// the old key can be removed.
    Rotate,
}

pub async fn run(config: Config, command: SecretsCommand) -> anyhow::Result<ExitCode> {
    crate::telemetry::init(config.log_format, &config.log);
    match command {
        SecretsCommand::Rotate => {
            let Some(secrets) = config.secrets() else {
                eprintln!("secrets.encryption_key is not set (OBOL_SECRETS__ENCRYPTION_KEY): nothing to rotate to");
                return Ok(ExitCode::from(2));
            };
            let store = Store::connect(&config).await?;
            store.migrate().await?;
            let report = crate::secrets::rotate(&store, &secrets).await;
            store.close().await;
            let report = report?;
            println!(
                "key {}: {} stored secret(s), {} re-encrypted, {} changed meanwhile (left as written)",
                secrets.current().fingerprint(),
                report.checked,
                report.rewritten,
                report.skipped
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
