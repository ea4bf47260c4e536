//! `obol migrate`.

use std::process::ExitCode;

use crate::config::Config;
use crate::storage::Store;

pub async fn run(config: Config) -> anyhow::Result<ExitCode> {
    crate::telemetry::init(config.log_format, &config.log);
    let store = Store::connect(&config).await?;
    let applied = store.migrate().await?;
    println!(
        "{}: {applied} migration(s) applied, schema up to date",
        store.backend().as_str()
    );
    store.close().await;
    Ok(ExitCode::SUCCESS)
}
