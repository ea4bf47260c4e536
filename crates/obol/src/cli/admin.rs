//! `obol admin set-password`: the admin dashboard's password hash.
//!
//! Reads the password from standard input (on a terminal without echo;
//! piped: the first line), prints its argon2id hash and the line to put in
//! the configuration. Nothing is stored: the hash lives in
//! `admin.password_hash` (or `OBOL_ADMIN__PASSWORD_HASH`) like every other
//! setting, so every obol instance of a deployment reads the same one and
//! a change is a configuration change that can be reviewed and rolled back.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

/// Shortest password accepted: the dashboard can refund money.
pub const MIN_PASSWORD_CHARS: usize = 12;

#[derive(Debug, clap::Subcommand)]
pub enum AdminCommand {
    /// Read a password from standard input and print its argon2 hash
    /// and the admin.password_hash line to configure. Stores nothing.
    #[command(name = "set-password")]
    SetPassword,
}

pub fn run(command: AdminCommand) -> anyhow::Result<ExitCode> {
    match command {
        AdminCommand::SetPassword => set_password(),
    }
}

fn read_password() -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    let tty = stdin.is_terminal();
    if tty {
        eprint!("New admin password (at least {MIN_PASSWORD_CHARS} characters): ");
        let _ = std::io::stderr().flush();
        // No echo while typing; restored whatever happens next.
        let _ = std::process::Command::new("stty").arg("-echo").status();
    }
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    if tty {
        let _ = std::process::Command::new("stty").arg("echo").status();
        eprintln!();
    }
    read?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

fn set_password() -> anyhow::Result<ExitCode> {
    let password = read_password()?;
    if password.chars().count() < MIN_PASSWORD_CHARS {
        eprintln!("the password must have at least {MIN_PASSWORD_CHARS} characters");
        return Ok(ExitCode::from(2));
    }
    if password.starts_with(crate::ops::credentials::API_KEY_PREFIX) {
        eprintln!(
            "the password must not look like an API key (obol_sk_…): the sign-in field takes both"
        );
        return Ok(ExitCode::from(2));
    }
    let hash = crate::ops::admin::hash_password(&password)?;
    println!("{hash}");
    eprintln!();
    eprintln!("Put it in the configuration (quoted: it holds `$`), then restart obol:");
    eprintln!("  obol.yaml:   admin:\n                  password_hash: '{hash}'");
    eprintln!("  environment: OBOL_ADMIN__PASSWORD_HASH='{hash}'");
    Ok(ExitCode::SUCCESS)
}
