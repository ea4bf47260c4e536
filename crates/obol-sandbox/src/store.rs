//! SQLite schema and every SQL statement of the sandbox.
//!
//! Objects are stored as JSON, one row per id, with a few columns copied out
//! for listing (`kind`, `customer`, `payment_intent`, `charge`, `etype`);
//! `seq` orders them (newest first = highest seq). Events are objects too.
//! `account` is the connected account an object belongs to (copied from
//! its private `_account`; NULL for the platform's own objects).
//! `deliveries` and `jobs` are the durable queues of the background loop;
//! `oauth_tokens` holds Connect's codes and tokens, by SHA-256 only.

use std::str::FromStr;
use std::time::Duration;

use serde_json::Value;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqliteConnection, SqlitePool};

use crate::SandboxDb;

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS objects (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        kind TEXT NOT NULL,
        created INTEGER NOT NULL,
        customer TEXT,
        payment_intent TEXT,
        charge TEXT,
        etype TEXT,
        deleted INTEGER NOT NULL DEFAULT 0,
        data TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS objects_kind ON objects(kind, seq)",
    "CREATE INDEX IF NOT EXISTS objects_customer ON objects(customer, kind, seq)",
    "CREATE INDEX IF NOT EXISTS objects_pi ON objects(payment_intent, kind, seq)",
    "CREATE INDEX IF NOT EXISTS objects_charge ON objects(charge, kind, seq)",
    "CREATE TABLE IF NOT EXISTS idempotency (
        key_hash TEXT PRIMARY KEY,
        created INTEGER NOT NULL,
        fingerprint TEXT NOT NULL,
        status INTEGER NOT NULL,
        body TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS deliveries (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        event_id TEXT NOT NULL,
        endpoint_id TEXT NOT NULL,
        status TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_at INTEGER NOT NULL,
        last_status INTEGER)",
    "CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries(status, next_at)",
    "CREATE TABLE IF NOT EXISTS jobs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        run_at INTEGER NOT NULL,
        kind TEXT NOT NULL,
        target TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS oauth_tokens (
        token_hash TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        account TEXT NOT NULL,
        client_id TEXT NOT NULL,
        scope TEXT NOT NULL,
        created INTEGER NOT NULL,
        expires INTEGER,
        used INTEGER NOT NULL DEFAULT 0,
        revoked INTEGER NOT NULL DEFAULT 0)",
    "CREATE INDEX IF NOT EXISTS oauth_tokens_account ON oauth_tokens(account)",
];

pub async fn open(db: &SandboxDb) -> anyhow::Result<SqlitePool> {
    let pool = match db {
        // One connection: every connection to `:memory:` is its own database.
        SandboxDb::Memory => {
            SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
                .connect_with(SqliteConnectOptions::from_str("sqlite::memory:")?)
                .await?
        }
        SandboxDb::File(path) => {
            let opts = SqliteConnectOptions::new()
                .filename(path)
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(10));
            SqlitePoolOptions::new()
                .max_connections(4)
                .connect_with(opts)
                .await?
        }
    };
    for stmt in SCHEMA {
        sqlx::query(stmt).execute(&pool).await?;
    }
    migrate(&pool).await?;
    Ok(pool)
}

/// Columns added after the first schema: databases made by an older
/// sandbox get them here (their rows are the platform's: `account` NULL).
async fn migrate(pool: &SqlitePool) -> anyhow::Result<()> {
    let cols: Vec<String> = sqlx::query_scalar("SELECT name FROM pragma_table_info('objects')")
        .fetch_all(pool)
        .await?;
    if !cols.iter().any(|c| c == "account") {
        sqlx::query("ALTER TABLE objects ADD COLUMN account TEXT")
            .execute(pool)
            .await?;
    }
    sqlx::query("CREATE INDEX IF NOT EXISTS objects_account ON objects(account, kind, seq)")
        .execute(pool)
        .await?;
    Ok(())
}

/// The account id, stable for one database.
pub async fn account_id(pool: &SqlitePool) -> anyhow::Result<String> {
    let candidate = crate::ids::new_id("acct");
    sqlx::query("INSERT OR IGNORE INTO meta (k, v) VALUES ('account_id', ?)")
        .bind(&candidate)
        .execute(pool)
        .await?;
    let row = sqlx::query("SELECT v FROM meta WHERE k = 'account_id'")
        .fetch_one(pool)
        .await?;
    Ok(row.try_get("v")?)
}

fn id_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Object(m) => m.get("id").and_then(Value::as_str).map(str::to_string),
        _ => None,
    }
}

/// Inserts or replaces one object, keeping its `seq` on update.
pub async fn put_object(conn: &mut SqliteConnection, obj: &Value) -> Result<(), sqlx::Error> {
    let id = obj.get("id").and_then(Value::as_str).unwrap_or_default();
    let kind = obj
        .get("object")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let created = obj
        .get("created")
        .and_then(Value::as_i64)
        .unwrap_or_default();
    let customer = obj.get("customer").and_then(id_of);
    let pi = obj.get("payment_intent").and_then(id_of);
    let charge = obj.get("charge").and_then(id_of);
    let etype = obj
        .get("type")
        .and_then(Value::as_str)
        .filter(|_| kind == "event");
    let deleted = obj.get("deleted").and_then(Value::as_bool).unwrap_or(false);
    let account = obj.get("_account").and_then(Value::as_str);
    sqlx::query(
        "INSERT INTO objects (id, kind, created, customer, payment_intent, charge, etype, deleted, data, account)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT(id) DO UPDATE SET customer = excluded.customer,
           payment_intent = excluded.payment_intent, charge = excluded.charge,
           deleted = excluded.deleted, data = excluded.data",
    )
    .bind(id)
    .bind(kind)
    .bind(created)
    .bind(customer)
    .bind(pi)
    .bind(charge)
    .bind(etype)
    .bind(deleted)
    .bind(obj.to_string())
    .bind(account)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub async fn get_object(
    conn: &mut SqliteConnection,
    id: &str,
) -> Result<Option<(i64, Value)>, sqlx::Error> {
    let row = sqlx::query("SELECT seq, data FROM objects WHERE id = ?")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    match row {
        None => Ok(None),
        Some(r) => {
            let seq: i64 = r.try_get("seq")?;
            let data: String = r.try_get("data")?;
            let v = serde_json::from_str(&data).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
            Ok(Some((seq, v)))
        }
    }
}

/// A filter on one list query.
pub enum Filter {
    Eq(&'static str, String),
    /// `created` comparisons: (operator, value)
    Created(&'static str, i64),
    /// `json_extract(data, path) = value`
    Json(&'static str, String),
    /// `json_extract(data, path) = value` for integers and booleans (1/0).
    JsonInt(&'static str, i64),
    /// `json_extract(data, path) IS NOT value`
    JsonNot(&'static str, String),
    /// Event type, with a trailing `*` as a prefix wildcard.
    EventTypes(Vec<String>),
    /// The owning connected account (`None`: the platform's own objects).
    Account(Option<String>),
}

/// Newest-first page of `kind`; `after_seq`/`before_seq` are the cursors.
pub async fn list_objects(
    conn: &mut SqliteConnection,
    kind: &str,
    filters: &[Filter],
    after_seq: Option<i64>,
    before_seq: Option<i64>,
    limit: i64,
) -> Result<(Vec<Value>, bool), sqlx::Error> {
    let mut sql = String::from("SELECT data FROM objects WHERE kind = ? AND deleted = 0");
    for f in filters {
        match f {
            Filter::Eq(col, _) => {
                sql.push_str(&format!(" AND {col} = ?"));
            }
            Filter::Created(op, _) => {
                sql.push_str(&format!(" AND created {op} ?"));
            }
            Filter::Json(path, _) | Filter::JsonInt(path, _) => {
                sql.push_str(&format!(" AND json_extract(data, '{path}') = ?"));
            }
            Filter::JsonNot(path, _) => {
                sql.push_str(&format!(" AND json_extract(data, '{path}') IS NOT ?"));
            }
            Filter::EventTypes(types) => {
                let parts: Vec<&str> = types
                    .iter()
                    .map(|t| {
                        if t.ends_with('*') {
                            "etype LIKE ?"
                        } else {
                            "etype = ?"
                        }
                    })
                    .collect();
                sql.push_str(&format!(" AND ({})", parts.join(" OR ")));
            }
            Filter::Account(_) => sql.push_str(" AND account IS ?"),
        }
    }
    let ascending = before_seq.is_some() && after_seq.is_none();
    if let Some(_s) = after_seq {
        sql.push_str(" AND seq < ?");
    }
    if let Some(_s) = before_seq {
        sql.push_str(" AND seq > ?");
    }
    sql.push_str(if ascending {
        " ORDER BY seq ASC LIMIT ?"
    } else {
        " ORDER BY seq DESC LIMIT ?"
    });
    let mut q = sqlx::query(&sql).bind(kind);
    for f in filters {
        match f {
            Filter::Eq(_, v) | Filter::Json(_, v) | Filter::JsonNot(_, v) => q = q.bind(v.clone()),
            Filter::Created(_, v) | Filter::JsonInt(_, v) => q = q.bind(*v),
            Filter::Account(a) => q = q.bind(a.clone()),
            Filter::EventTypes(types) => {
                for t in types {
                    q = q.bind(match t.strip_suffix('*') {
                        Some(prefix) => format!("{prefix}%"),
                        None => t.clone(),
                    });
                }
            }
        }
    }
    if let Some(s) = after_seq {
        q = q.bind(s);
    }
    if let Some(s) = before_seq {
        q = q.bind(s);
    }
    let rows = q.bind(limit + 1).fetch_all(&mut *conn).await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let data: String = r.try_get("data")?;
        out.push(serde_json::from_str(&data).map_err(|e| sqlx::Error::Decode(Box::new(e)))?);
    }
    let has_more = out.len() as i64 > limit;
    out.truncate(limit.max(0) as usize);
    if ascending {
        out.reverse();
    }
    Ok((out, has_more))
}

pub struct SavedResponse {
    pub fingerprint: String,
    pub status: u16,
    pub body: String,
}

pub async fn get_idempotent(
    conn: &mut SqliteConnection,
    key_hash: &str,
    not_before: i64,
) -> Result<Option<SavedResponse>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT fingerprint, status, body FROM idempotency WHERE key_hash = ? AND created >= ?",
    )
    .bind(key_hash)
    .bind(not_before)
    .fetch_optional(&mut *conn)
    .await?;
    match row {
        None => Ok(None),
        Some(r) => Ok(Some(SavedResponse {
            fingerprint: r.try_get("fingerprint")?,
            status: u16::try_from(r.try_get::<i64, _>("status")?).unwrap_or(500),
            body: r.try_get("body")?,
        })),
    }
}

pub async fn save_idempotent(
    conn: &mut SqliteConnection,
    key_hash: &str,
    created: i64,
    saved: &SavedResponse,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT OR REPLACE INTO idempotency (key_hash, created, fingerprint, status, body) VALUES (?, ?, ?, ?, ?)")
        .bind(key_hash)
        .bind(created)
        .bind(&saved.fingerprint)
        .bind(i64::from(saved.status))
        .bind(&saved.body)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

pub async fn prune_idempotency(pool: &SqlitePool, older_than: i64) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM idempotency WHERE created < ?")
        .bind(older_than)
        .execute(pool)
        .await?;
    Ok(())
}

pub async fn insert_delivery(
    conn: &mut SqliteConnection,
    event_id: &str,
    endpoint_id: &str,
    status: &str,
    next_at_ms: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO deliveries (event_id, endpoint_id, status, next_at) VALUES (?, ?, ?, ?)",
    )
    .bind(event_id)
    .bind(endpoint_id)
    .bind(status)
    .bind(next_at_ms)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub struct DueDelivery {
    pub id: i64,
    pub event_id: String,
    pub endpoint_id: String,
    pub attempts: i64,
}

/// On start: a delivery the previous process had claimed (its `next_at`
/// pushed out by the lease) would wait for the lease to run out; the
/// sandbox owns its database alone, so every pending delivery is due now.
pub async fn release_pending_deliveries(
    pool: &SqlitePool,
    now_ms: i64,
) -> Result<u64, sqlx::Error> {
    Ok(
        sqlx::query("UPDATE deliveries SET next_at = ? WHERE status = 'pending' AND next_at > ?")
            .bind(now_ms)
            .bind(now_ms)
            .execute(pool)
            .await?
            .rows_affected(),
    )
}

/// Claims due deliveries by pushing their `next_at` past `lease_until_ms`.
pub async fn claim_due_deliveries(
    pool: &SqlitePool,
    now_ms: i64,
    lease_until_ms: i64,
    limit: i64,
) -> Result<Vec<DueDelivery>, sqlx::Error> {
    let rows = sqlx::query(
        "UPDATE deliveries SET next_at = ? WHERE id IN (
           SELECT id FROM deliveries WHERE status = 'pending' AND next_at <= ? ORDER BY next_at, id LIMIT ?)
         RETURNING id, event_id, endpoint_id, attempts",
    )
    .bind(lease_until_ms)
    .bind(now_ms)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        out.push(DueDelivery {
            id: r.try_get("id")?,
            event_id: r.try_get("event_id")?,
            endpoint_id: r.try_get("endpoint_id")?,
            attempts: r.try_get("attempts")?,
        });
    }
    Ok(out)
}

pub async fn finish_delivery(
    pool: &SqlitePool,
    id: i64,
    status: &str,
    attempts: i64,
    next_at_ms: i64,
    last_status: Option<i64>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE deliveries SET status = ?, attempts = ?, next_at = ?, last_status = ? WHERE id = ?",
    )
    .bind(status)
    .bind(attempts)
    .bind(next_at_ms)
    .bind(last_status)
    .bind(id)
    .execute(pool)
    .await?;
    Ok(())
}

pub async fn next_due_ms(pool: &SqlitePool) -> Result<Option<i64>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT MIN(t) AS t FROM (
           SELECT MIN(next_at) AS t FROM deliveries WHERE status = 'pending'
           UNION ALL SELECT MIN(run_at) AS t FROM jobs)",
    )
    .fetch_one(pool)
    .await?;
    row.try_get::<Option<i64>, _>("t")
}

pub async fn insert_job(
    conn: &mut SqliteConnection,
    run_at_ms: i64,
    kind: &str,
    target: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO jobs (run_at, kind, target) VALUES (?, ?, ?)")
        .bind(run_at_ms)
        .bind(kind)
        .bind(target)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

pub async fn has_due_job(pool: &SqlitePool, now_ms: i64) -> Result<bool, sqlx::Error> {
    let row = sqlx::query("SELECT 1 AS one FROM jobs WHERE run_at <= ? LIMIT 1")
        .bind(now_ms)
        .fetch_optional(pool)
        .await?;
    Ok(row.is_some())
}

/// Removes and returns one due job, inside the caller's transaction.
pub async fn take_due_job(
    conn: &mut SqliteConnection,
    now_ms: i64,
) -> Result<Option<(String, String)>, sqlx::Error> {
    let row = sqlx::query(
        "DELETE FROM jobs WHERE id = (SELECT id FROM jobs WHERE run_at <= ? ORDER BY run_at, id LIMIT 1)
         RETURNING kind, target",
    )
    .bind(now_ms)
    .fetch_optional(&mut *conn)
    .await?;
    match row {
        None => Ok(None),
        Some(r) => Ok(Some((r.try_get("kind")?, r.try_get("target")?))),
    }
}

pub struct Counts {
    pub objects: Vec<(String, i64)>,
    pub deliveries: Vec<(String, i64, i64)>,
}

pub async fn counts(pool: &SqlitePool) -> Result<Counts, sqlx::Error> {
    let objects =
        sqlx::query("SELECT kind, COUNT(*) AS n FROM objects WHERE deleted = 0 GROUP BY kind")
            .fetch_all(pool)
            .await?
            .into_iter()
            .map(|r| Ok((r.try_get("kind")?, r.try_get("n")?)))
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
    let deliveries = sqlx::query("SELECT status, COUNT(*) AS n, COALESCE(SUM(attempts), 0) AS a FROM deliveries GROUP BY status")
        .fetch_all(pool)
        .await?
        .into_iter()
        .map(|r| Ok((r.try_get("status")?, r.try_get("n")?, r.try_get("a")?)))
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    Ok(Counts {
        objects,
        deliveries,
    })
}

/// One row of `oauth_tokens`: an authorization code (`code`), an access
/// token (`access`), a refresh token (`refresh`) or a publishable key
/// (`publishable`) of a connected account.
pub struct OAuthToken {
    pub kind: String,
    pub account: String,
    pub client_id: String,
    pub scope: String,
    pub created: i64,
    pub expires: Option<i64>,
    pub used: bool,
    pub revoked: bool,
}

pub async fn insert_token(
    conn: &mut SqliteConnection,
    token_hash: &str,
    t: &OAuthToken,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO oauth_tokens (token_hash, kind, account, client_id, scope, created, expires, used, revoked)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(token_hash)
    .bind(&t.kind)
    .bind(&t.account)
    .bind(&t.client_id)
    .bind(&t.scope)
    .bind(t.created)
    .bind(t.expires)
    .bind(t.used)
    .bind(t.revoked)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub async fn get_token(
    conn: &mut SqliteConnection,
    token_hash: &str,
) -> Result<Option<OAuthToken>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT kind, account, client_id, scope, created, expires, used, revoked
         FROM oauth_tokens WHERE token_hash = ?",
    )
    .bind(token_hash)
    .fetch_optional(&mut *conn)
    .await?;
    match row {
        None => Ok(None),
        Some(r) => Ok(Some(OAuthToken {
            kind: r.try_get("kind")?,
            account: r.try_get("account")?,
            client_id: r.try_get("client_id")?,
            scope: r.try_get("scope")?,
            created: r.try_get("created")?,
            expires: r.try_get("expires")?,
            used: r.try_get("used")?,
            revoked: r.try_get("revoked")?,
        })),
    }
}

/// Marks a code used; false if it already was (or does not exist).
pub async fn use_token(conn: &mut SqliteConnection, token_hash: &str) -> Result<bool, sqlx::Error> {
    Ok(
        sqlx::query("UPDATE oauth_tokens SET used = 1 WHERE token_hash = ? AND used = 0")
            .bind(token_hash)
            .execute(&mut *conn)
            .await?
            .rows_affected()
            == 1,
    )
}

/// Revokes every code and token of one connected account.
pub async fn revoke_tokens(conn: &mut SqliteConnection, account: &str) -> Result<u64, sqlx::Error> {
    Ok(
        sqlx::query("UPDATE oauth_tokens SET revoked = 1 WHERE account = ? AND revoked = 0")
            .bind(account)
            .execute(&mut *conn)
            .await?
            .rows_affected(),
    )
}

/// One bound value of [`find_objects`].
pub enum Arg {
    Text(Option<String>),
    Int(i64),
}

/// Objects of `kind` in `account` matching `cond` (SQL over `data`, with
/// `?` placeholders bound from `args`), in `order`, at most `limit`.
/// Callers pass only literal SQL; values always go through `args`.
pub async fn find_objects(
    conn: &mut SqliteConnection,
    kind: &str,
    account: Option<&str>,
    cond: &'static str,
    args: Vec<Arg>,
    order: &'static str,
    limit: i64,
) -> Result<Vec<Value>, sqlx::Error> {
    let sql = format!(
        "SELECT data FROM objects WHERE kind = ? AND deleted = 0 AND account IS ? AND ({cond}) ORDER BY {order} LIMIT ?"
    );
    let mut q = sqlx::query(&sql).bind(kind).bind(account);
    for a in args {
        q = match a {
            Arg::Text(t) => q.bind(t),
            Arg::Int(n) => q.bind(n),
        };
    }
    let rows = q.bind(limit).fetch_all(&mut *conn).await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let data: String = r.try_get("data")?;
        out.push(serde_json::from_str(&data).map_err(|e| sqlx::Error::Decode(Box::new(e)))?);
    }
    Ok(out)
}
