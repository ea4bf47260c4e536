//! `obol trigger <event>`: like `stripe trigger`, against the sandbox.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::config::Config;

#[derive(Debug, Args)]
pub struct TriggerArgs {
    /// The event to cause, e.g. `payment_intent.succeeded`.
    event: String,
    /// The sandbox's API base. Default: ask the running obol's `/health`.
    #[arg(long, env = "OBOL_TRIGGER_API_BASE")]
    api_base: Option<String>,
    /// A test secret key; the sandbox accepts any well-formed one.
    #[arg(long, default_value = "sk_test_obol_trigger")]
    secret_key: String,
}

pub async fn run(args: TriggerArgs, config: &Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let api_base = match args.api_base {
        Some(base) => base,
        None => {
            let config = Config::load(config.as_deref())?;
            let health: serde_json::Value =
                reqwest::get(format!("http://{}/health", config.listen))
                    .await?
                    .json()
                    .await?;
            match (
                health["stripe"]["mode"].as_str(),
                health["stripe"]["api_base"].as_str(),
            ) {
                (Some("sandbox"), Some(base)) => base.to_string(),
                _ => anyhow::bail!(
                    "obol at {} is not running on its sandbox; pass --api-base",
                    config.listen
                ),
            }
        }
    };
    let created = obol_sandbox::trigger(&api_base, &args.secret_key, &args.event).await?;
    for id in created {
        println!("{id}");
    }
    Ok(ExitCode::SUCCESS)
}
