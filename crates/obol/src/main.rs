//! The `obol` command: parse the command line, run, map the result to an
//! exit code (0 ok, 1 failure, 2 bad configuration or usage).

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = obol::cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("obol: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(obol::cli::run(cli)) {
        Ok(code) => code,
        Err(e) => {
            if let Some(config_error) = e.downcast_ref::<obol::config::ConfigError>() {
                eprintln!("obol: {config_error}");
                return ExitCode::from(2);
            }
            eprintln!("obol: {e:#}");
            ExitCode::FAILURE
        }
    }
}
