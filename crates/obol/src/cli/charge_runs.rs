//! `obol charge-runs create --file items.csv` and `obol charge-runs watch
//! ID`: the same use cases as `/v1/charge-runs`, on the database of the
//! configuration (the running `obol serve` does the charging).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use crate::config::Config;
use crate::context::{Actor, Ctx, Settings};
use crate::ledger::charge_run::RunStatus;
use crate::ops::charge_runs::{
    self, ChargeRunIn, ChargeRunOut, ItemIn, ItemsIn, MAX_ITEMS_PER_CALL,
};
use crate::storage::Store;

#[derive(Debug, Subcommand)]
pub enum ChargeRunCommand {
    /// Create a run from a CSV export and start it. Columns: `customer_id`
    /// (obol's `cus_…`) or `external_id` (the host's member id), `amount`
    /// (minor units), and optionally `external_reference`.
    Create(CreateArgs),
    /// Follow a run: a progress bar with counts, rate and time left, until
    /// it completes or is canceled.
    Watch {
        /// The run (`cr_…`).
        id: String,
    },
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The CSV file.
    #[arg(long)]
    pub file: PathBuf,
    /// The run's name (default: the file's name).
    #[arg(long)]
    pub name: Option<String>,
    /// ISO currency of every amount.
    #[arg(long)]
    pub currency: String,
    /// On the members' statements.
    #[arg(long)]
    pub description: Option<String>,
    /// Create and fill the run, but leave it a draft.
    #[arg(long)]
    pub no_start: bool,
}

pub async fn run(config: Config, command: ChargeRunCommand) -> anyhow::Result<ExitCode> {
    crate::telemetry::init(config.log_format, "warn");
    let stripe = super::mcp::stripe_info(&config).await?;
    let store = Store::connect(&config)
        .await
        .context("connecting to the database")?;
    store.migrate().await.context("applying migrations")?;
    let ctx = Ctx::new(
        store.clone(),
        stripe,
        Settings::from_config(&config)?,
        Default::default(),
    );
    let actor = Actor::platform_secret();
    let result = match command {
        ChargeRunCommand::Create(args) => create(&ctx, &actor, args).await,
        ChargeRunCommand::Watch { id } => watch(&ctx, &actor, &id).await,
    };
    store.close().await;
    result
}

async fn create(ctx: &Ctx, actor: &Actor, args: CreateArgs) -> anyhow::Result<ExitCode> {
    let name = args.name.clone().unwrap_or_else(|| {
        args.file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "charge run".into())
    });
    let run = charge_runs::create(
        ctx,
        actor,
        ChargeRunIn {
            name,
            currency: args.currency.clone(),
            description: args.description.clone(),
        },
    )
    .await?;
    let mut reader = csv::Reader::from_path(&args.file)
        .with_context(|| format!("reading {}", args.file.display()))?;
    let headers = reader.headers()?.clone();
    let col = |name: &str| headers.iter().position(|h| h.trim() == name);
    let (customer_col, external_col) = (col("customer_id"), col("external_id"));
    let amount_col = col("amount").context("the CSV has no amount column")?;
    let reference_col = col("external_reference");
    if customer_col.is_none() && external_col.is_none() {
        anyhow::bail!("the CSV needs a customer_id or an external_id column");
    }
    let mut batch = Vec::with_capacity(MAX_ITEMS_PER_CALL);
    let mut added = 0usize;
    for (line, record) in reader.records().enumerate() {
        let record = record?;
        let field = |i: Option<usize>| {
            i.and_then(|i| record.get(i))
                .map(str::trim)
                .filter(|s| !s.is_empty())
        };
        let customer_id = match (field(customer_col), field(external_col)) {
            (Some(id), _) => id.to_string(),
            (None, Some(external)) => {
                let mut h = ctx.store().acquire().await?;
                h.conn()
                    .get_customer_by_external_id(actor.account().as_str(), external)
                    .await?
                    .map(|c| c.id)
                    .with_context(|| {
                        format!(
                            "line {}: no customer with external_id {external:?}",
                            line + 2
                        )
                    })?
            }
            (None, None) => anyhow::bail!("line {}: no customer", line + 2),
        };
        let amount: i64 = field(Some(amount_col))
            .with_context(|| format!("line {}: no amount", line + 2))?
            .parse()
            .with_context(|| {
                format!(
                    "line {}: the amount is not an integer of minor units",
                    line + 2
                )
            })?;
        batch.push(ItemIn {
            customer_id,
            amount,
            external_reference: field(reference_col).map(str::to_string),
        });
        if batch.len() == MAX_ITEMS_PER_CALL {
            added += charge_runs::add_items(
                ctx,
                actor,
                &run.id,
                ItemsIn {
                    items: std::mem::take(&mut batch),
                },
            )
            .await?
            .added;
        }
    }
    if !batch.is_empty() {
        added += charge_runs::add_items(ctx, actor, &run.id, ItemsIn { items: batch })
            .await?
            .added;
    }
    let run = if args.no_start {
        charge_runs::get(ctx, actor, &run.id).await?
    } else {
        charge_runs::start(ctx, actor, &run.id).await?
    };
    println!(
        "{} {} ({added} items, {})",
        run.id,
        run.status.as_str(),
        run.name
    );
    Ok(ExitCode::SUCCESS)
}

async fn watch(ctx: &Ctx, actor: &Actor, id: &str) -> anyhow::Result<ExitCode> {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    loop {
        let run = charge_runs::get(ctx, actor, id).await?;
        let decided = decided(&run);
        bar.set_length(u64::try_from(run.item_count).unwrap_or(0));
        bar.set_position(u64::try_from(decided).unwrap_or(0));
        bar.set_message(summary(&run));
        if matches!(run.status, RunStatus::Completed | RunStatus::Canceled) {
            bar.finish();
            println!("{} {}: {}", run.id, run.status.as_str(), summary(&run));
            return Ok(ExitCode::SUCCESS);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

fn decided(run: &ChargeRunOut) -> i64 {
    run.item_count
        - run.counts.get("pending").copied().unwrap_or(0)
        - run.counts.get("processing").copied().unwrap_or(0)
}

fn summary(run: &ChargeRunOut) -> String {
    let n = |k: &str| run.counts.get(k).copied().unwrap_or(0);
    let eta = run.estimated_seconds_left.map_or(String::new(), |s| {
        format!(", {}:{:02} left", s / 60, s % 60)
    });
    format!(
        "succeeded {}, requires_action {}, failed {}, no_payment_method {}, canceled {}; {:.1}/s{eta}",
        n("succeeded"),
        n("requires_action"),
        n("failed"),
        n("no_payment_method"),
        n("canceled"),
        run.rate_per_second
    )
}
