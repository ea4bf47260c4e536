//! `obol config check`: validation happened on load; print what matters.

use std::process::ExitCode;

use crate::config::Config;

pub fn run(config: Config) -> anyhow::Result<ExitCode> {
    println!("configuration ok");
    println!("  listen:        {}", config.listen);
    println!("  storage:       {}", config.backend()?.as_str());
    println!("  stripe mode:   {:?}", config.stripe_mode());
    println!("  api keys:      {}", config.api_keys.len());
    println!("  webhook secrets: {}", config.stripe.webhook_secrets.len());
    Ok(ExitCode::SUCCESS)
}
