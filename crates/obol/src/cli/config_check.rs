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
    println!(
        "  connect:       client_id {}, base {}",
        config
            .connect_client_id()
            .as_deref()
            .unwrap_or("(none: organisations cannot connect)"),
        config
            .stripe
            .connect
            .base
            .as_deref()
            .unwrap_or(match config.stripe_mode() {
                crate::config::StripeMode::Sandbox => "(the built-in sandbox)",
                _ => crate::config::STRIPE_CONNECT_BASE,
            })
    );
    Ok(ExitCode::SUCCESS)
}
