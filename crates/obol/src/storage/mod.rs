//! Storage: one `Store` over SQLite (embedded default, WAL) or PostgreSQL.
//!
//! All SQL lives under this folder, one function per query named
//! `verb_noun`, written once with `$n` placeholders that both backends
//! accept; the `on_conn!` macro expands a query body for each backend, so
//! dialect differences stay here and nowhere else. Transactions are
//! explicit: `Store::begin` returns a `Tx` that must be committed; dropping
//! it rolls back. On SQLite, write transactions start with `BEGIN IMMEDIATE`
//! so a read-then-write transaction never fails to upgrade its lock.

pub mod acp;
pub mod admin;
pub mod api_keys;
pub mod billing;
pub mod catalog;
pub mod charge_runs;
pub mod connect_links;
pub mod customer_tokens;
pub mod customers;
pub mod disputes;
pub mod emails;
pub mod instances;
pub mod invoices;
pub mod jobs;
pub mod metrics;
pub mod notifications;
pub mod orders;
pub mod organizations;
pub mod payment_actions;
pub mod payment_methods;
pub mod payments;
pub mod payouts;
pub mod refunds;
pub mod stripe_webhook_endpoints;
pub mod sync_state;
pub mod webhook_events;

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use secrecy::ExposeSecret;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgConnection, PgPool, Postgres, Sqlite, SqliteConnection, SqlitePool};

use crate::config::{Backend, Config};
use crate::error::Result;

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

#[derive(Clone, Debug)]
pub struct Store {
    pool: Pool,
}

#[derive(Clone, Debug)]
enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// A borrowed connection of either backend; every query function takes one.
pub enum Conn<'a> {
    Sqlite(&'a mut SqliteConnection),
    Postgres(&'a mut PgConnection),
}

/// Expands `$body` once per backend with `$c` bound to that backend's
/// connection, so one query text and one row mapping serve both.
macro_rules! on_conn {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            $crate::storage::Conn::Sqlite($c) => $body,
            $crate::storage::Conn::Postgres($c) => $body,
        }
    };
}
pub(crate) use on_conn;

/// A pooled connection for reads and single-statement writes.
pub enum Handle {
    Sqlite(PoolConnection<Sqlite>),
    Postgres(PoolConnection<Postgres>),
}

impl Handle {
    pub fn conn(&mut self) -> Conn<'_> {
        match self {
            Handle::Sqlite(c) => Conn::Sqlite(&mut *c),
            Handle::Postgres(c) => Conn::Postgres(&mut *c),
        }
    }
}

/// An open transaction; `commit` or it rolls back when dropped.
pub enum Tx {
    Sqlite(sqlx::Transaction<'static, Sqlite>),
    Postgres(sqlx::Transaction<'static, Postgres>),
}

impl Tx {
    pub fn conn(&mut self) -> Conn<'_> {
        match self {
            Tx::Sqlite(t) => Conn::Sqlite(&mut *t),
            Tx::Postgres(t) => Conn::Postgres(&mut *t),
        }
    }

    pub async fn commit(self) -> Result<()> {
        match self {
            Tx::Sqlite(t) => t.commit().await?,
            Tx::Postgres(t) => t.commit().await?,
        }
        Ok(())
    }
}

/// What `Store::migration_status` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationStatus {
    pub applied: usize,
    /// Versions not applied yet (`obol migrate` or `obol serve` applies them).
    pub pending: Vec<i64>,
    /// Versions applied that this binary does not know.
    pub unknown: Vec<i64>,
}

/// KiB of page cache per SQLite connection (negative `cache_size`).
const SQLITE_CACHE_KIB: u32 = 512;

impl Store {
    /// Connects (creating a SQLite file if needed) without migrating.
    pub async fn connect(config: &Config) -> anyhow::Result<Store> {
        let url = config.database_url.expose_secret();
        let pool = match config.backend()? {
            Backend::Sqlite => {
                let options = SqliteConnectOptions::from_str(url)?
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .foreign_keys(true)
                    .busy_timeout(Duration::from_secs(10))
                    // Each connection's page cache: SQLite's default is 2 MiB,
                    // filled as the database grows, so 8 connections held 16 MiB
                    // more on a large database than on a small one. The OS
                    // caches the file anyway; a miss here is a read(2).
                    .pragma("cache_size", format!("-{SQLITE_CACHE_KIB}"));
                let in_memory = url.contains(":memory:");
                let pool = SqlitePoolOptions::new()
                    // An in-memory database lives and dies with one connection.
                    .max_connections(if in_memory { 1 } else { 8 })
                    .min_connections(if in_memory { 1 } else { 0 })
                    .idle_timeout(if in_memory {
                        None
                    } else {
                        Some(Duration::from_secs(600))
                    })
                    .max_lifetime(if in_memory {
                        None
                    } else {
                        Some(Duration::from_secs(1800))
                    })
                    .acquire_timeout(Duration::from_secs(10))
                    .connect_with(options)
                    .await?;
                Pool::Sqlite(pool)
            }
            Backend::Postgres => {
                let options = PgConnectOptions::from_str(url)?;
                let pool = PgPoolOptions::new()
                    .max_connections(16)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect_with(options)
                    .await?;
                Pool::Postgres(pool)
            }
        };
        Ok(Store { pool })
    }

    /// Applies pending migrations. Safe with several instances starting at
    /// once: on PostgreSQL sqlx holds an advisory lock while it migrates.
    pub async fn migrate(&self) -> anyhow::Result<usize> {
        let applied = match &self.pool {
            Pool::Sqlite(p) => {
                let before = count_applied_sqlite(p).await;
                // SQLite has no advisory lock: run every migration inside one
                // IMMEDIATE transaction (sqlx nests its own as savepoints), so
                // a second process waits for the first instead of racing it.
                let mut tx = p.begin_with("BEGIN IMMEDIATE").await?;
                SQLITE_MIGRATIONS.run_direct(&mut *tx).await?;
                tx.commit().await?;
                count_applied_sqlite(p).await - before
            }
            Pool::Postgres(p) => {
                let before = count_applied_pg(p).await;
                POSTGRES_MIGRATIONS.run(p).await?;
                count_applied_pg(p).await - before
            }
        };
        Ok(applied)
    }

    /// Migrations this binary knows and the database has applied, those
    /// it has not applied yet, and versions the database has that this
    /// binary does not know (a newer obol ran on it), for `obol doctor`.
    /// Reads only: nothing is applied.
    pub async fn migration_status(&self) -> Result<MigrationStatus> {
        let (known, applied): (Vec<i64>, Vec<(i64, bool)>) = match &self.pool {
            Pool::Sqlite(p) => (
                SQLITE_MIGRATIONS.iter().map(|m| m.version).collect(),
                sqlx::query_as("SELECT version, success FROM _sqlx_migrations")
                    .fetch_all(p)
                    .await
                    .unwrap_or_default(),
            ),
            Pool::Postgres(p) => (
                POSTGRES_MIGRATIONS.iter().map(|m| m.version).collect(),
                sqlx::query_as("SELECT version, success FROM _sqlx_migrations")
                    .fetch_all(p)
                    .await
                    .unwrap_or_default(),
            ),
        };
        let done = |v: i64| applied.iter().any(|(a, ok)| *a == v && *ok);
        Ok(MigrationStatus {
            applied: known.iter().filter(|v| done(**v)).count(),
            pending: known.iter().filter(|v| !done(**v)).copied().collect(),
            unknown: applied
                .iter()
                .filter(|(v, _)| !known.contains(v))
                .map(|(v, _)| *v)
                .collect(),
        })
    }

    pub fn backend(&self) -> Backend {
        match self.pool {
            Pool::Sqlite(_) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
        }
    }

    pub async fn acquire(&self) -> Result<Handle> {
        Ok(match &self.pool {
            Pool::Sqlite(p) => Handle::Sqlite(p.acquire().await?),
            Pool::Postgres(p) => Handle::Postgres(p.acquire().await?),
        })
    }

    /// Begins a write transaction.
    pub async fn begin(&self) -> Result<Tx> {
        Ok(match &self.pool {
            Pool::Sqlite(p) => Tx::Sqlite(p.begin_with("BEGIN IMMEDIATE").await?),
            Pool::Postgres(p) => Tx::Postgres(p.begin().await?),
        })
    }

    /// A cheap round trip, for `/health`.
    pub async fn ping(&self) -> Result<()> {
        let mut h = self.acquire().await?;
        on_conn!(h.conn(), |c| {
            sqlx::query("SELECT 1").execute(&mut *c).await?;
        });
        Ok(())
    }

    pub async fn close(&self) {
        match &self.pool {
            Pool::Sqlite(p) => p.close().await,
            Pool::Postgres(p) => p.close().await,
        }
    }
}

async fn count_applied_sqlite(p: &SqlitePool) -> usize {
    sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM _sqlx_migrations")
        .fetch_one(p)
        .await
        .map(|n| n as usize)
        .unwrap_or(0)
}

async fn count_applied_pg(p: &PgPool) -> usize {
    sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM _sqlx_migrations")
        .fetch_one(p)
        .await
        .map(|n| n as usize)
        .unwrap_or(0)
}

/// A keyset cursor, split into the two bind parameters of the clause
/// `($n IS NULL OR ts < $n OR (ts = $n AND id < $m))` every newest-first
/// list uses.
pub(crate) fn keyset(
    before: &Option<(DateTime<Utc>, String)>,
) -> (Option<DateTime<Utc>>, Option<&str>) {
    match before {
        Some((at, id)) => (Some(*at), Some(id.as_str())),
        None => (None, None),
    }
}

/// The current time at the precision both backends store (microseconds),
/// so a value written and read back compares equal.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// Maps a unique-constraint violation to `Ok(None)`, anything else to an error.
pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}
