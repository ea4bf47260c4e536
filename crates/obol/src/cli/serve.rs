//! `obol serve`.

use std::io::Write;
use std::process::ExitCode;

use crate::config::Config;
use crate::{telemetry, Application};

pub async fn run(config: Config) -> anyhow::Result<ExitCode> {
    telemetry::init(config.log_format, &config.log);
    let app = Application::build(config).await?;
    let addr = app.local_addr()?;
    // Scripts and tests wait for this exact line on stdout.
    println!("listening on http://{addr}");
    std::io::stdout().flush()?;
    tracing::info!(%addr, "obol is serving");
    app.run_until_stopped(super::shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}
