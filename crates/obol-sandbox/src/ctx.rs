//! Shared state (`App`) and the per-request context (`Ctx`): one SQLite
//! transaction, the request's id and idempotency key for events, object
//! loading, list pagination, `expand[]`, and event emission with webhook
//! delivery rows written in the same transaction.
//!
//! Connect: a context acts for one account, the platform (`account` None)
//! or a connected `acct_…`. An API request's context is *scoped*
//! ([`Ctx::act_as`]): it sees only its account's objects, and what it
//! writes and emits belongs to that account. Internal contexts (3-D Secure
//! page, jobs) are unscoped and adopt the account of the first object they
//! load, so what they create and emit lands in the same account.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};
use sqlx::{Sqlite, SqlitePool, Transaction};

use crate::chaos::{ChaosConfig, ChaosState};
use crate::error::ApiError;
use crate::form::Params;
use crate::store::{self, Filter};

/// The API version the stored objects are shaped after.
pub const DEFAULT_API_VERSION: &str = "2023-08-16";

pub struct App {
    pub pool: SqlitePool,
    /// Serialises every state-changing request: simple, and SQLite has one writer anyway.
    pub write_lock: tokio::sync::Mutex<()>,
    pub chaos: Mutex<ChaosState>,
    pub requests_by_status: Mutex<HashMap<u16, u64>>,
    /// The optional `/v1/*` rate limit and what the API received.
    pub rate: crate::rate::RateGate,
    pub notify: tokio::sync::Notify,
    pub base_url: String,
    pub account_id: String,
    pub retry_base: Duration,
    pub http: reqwest::Client,
}

impl App {
    pub fn new(
        pool: SqlitePool,
        base_url: String,
        account_id: String,
        chaos: ChaosConfig,
        retry_base: Duration,
        rate_limit_per_second: Option<u32>,
    ) -> anyhow::Result<Self> {
        chaos.validate().map_err(anyhow::Error::msg)?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent("Stripe/1.0 (+https://stripe.com/docs/webhooks)")
            .build()?;
        Ok(App {
            pool,
            write_lock: tokio::sync::Mutex::new(()),
            chaos: Mutex::new(ChaosState::new(chaos)),
            requests_by_status: Mutex::new(HashMap::new()),
            rate: crate::rate::RateGate::new(rate_limit_per_second),
            notify: tokio::sync::Notify::new(),
            base_url,
            account_id,
            retry_base,
            http,
        })
    }
}

pub fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// Strips the sandbox's private `_fields` (at any depth, metadata excepted).
pub fn render(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !k.starts_with('_'))
                .map(|(k, v)| {
                    let nv = if k == "metadata" {
                        v.clone()
                    } else {
                        render(v)
                    };
                    (k.clone(), nv)
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(render).collect()),
        other => other.clone(),
    }
}

/// `previous_attributes`: old values of what changed; nested objects as
/// partial diffs, arrays whole.
pub fn diff(old: &Value, new: &Value) -> Value {
    let (Value::Object(o), Value::Object(n)) = (old, new) else {
        return old.clone();
    };
    let mut out = Map::new();
    for (k, nv) in n {
        if k.starts_with('_') {
            continue;
        }
        match o.get(k) {
            None => {
                out.insert(k.clone(), Value::Null);
            }
            Some(ov) if ov == nv => {}
            Some(ov @ Value::Object(_)) if nv.is_object() && k != "metadata" => {
                out.insert(k.clone(), diff(ov, nv));
            }
            Some(ov) => {
                out.insert(k.clone(), render(ov));
            }
        }
    }
    for (k, ov) in o {
        if !k.starts_with('_') && !n.contains_key(k) {
            out.insert(k.clone(), render(ov));
        }
    }
    Value::Object(out)
}

pub fn s(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

pub fn i(v: &Value, key: &str) -> i64 {
    v.get(key).and_then(Value::as_i64).unwrap_or_default()
}

pub struct Ctx<'a> {
    pub tx: Transaction<'static, Sqlite>,
    pub app: &'a App,
    pub now: i64,
    pub request_id: Option<String>,
    pub idempotency_key: Option<String>,
    pub api_version: String,
    endpoints: Option<Vec<Value>>,
    pub emitted: usize,
    /// The connected account this context acts for; `None`: the platform.
    pub account: Option<String>,
    /// Whether reads are confined to `account` (API requests).
    scoped: bool,
    /// Whether an unscoped context has taken its account from an object.
    adopted: bool,
}

impl<'a> Ctx<'a> {
    /// A read context (deferred transaction).
    pub async fn begin(
        app: &'a App,
        request_id: Option<String>,
        idempotency_key: Option<String>,
        api_version: String,
    ) -> Result<Ctx<'a>, ApiError> {
        let tx = app.pool.begin().await?;
        Ok(Self::with_tx(
            app,
            tx,
            request_id,
            idempotency_key,
            api_version,
        ))
    }

    /// A writing context: `BEGIN IMMEDIATE`, so a transaction that reads and
    /// then writes never fails to upgrade its lock while the delivery loop
    /// writes from another connection (it waits on `busy_timeout` instead).
    pub async fn begin_write(
        app: &'a App,
        request_id: Option<String>,
        idempotency_key: Option<String>,
        api_version: String,
    ) -> Result<Ctx<'a>, ApiError> {
        let tx = app.pool.begin_with("BEGIN IMMEDIATE").await?;
        Ok(Self::with_tx(
            app,
            tx,
            request_id,
            idempotency_key,
            api_version,
        ))
    }

    fn with_tx(
        app: &'a App,
        tx: Transaction<'static, Sqlite>,
        request_id: Option<String>,
        idempotency_key: Option<String>,
        api_version: String,
    ) -> Ctx<'a> {
        Ctx {
            tx,
            app,
            now: now_secs(),
            request_id,
            idempotency_key,
            api_version,
            endpoints: None,
            emitted: 0,
            account: None,
            scoped: false,
            adopted: false,
        }
    }

    /// Confines this context to one account (`None`: the platform's own).
    pub fn act_as(&mut self, account: Option<String>) {
        self.account = account;
        self.scoped = true;
    }

    /// Acts for `account` without confining reads (internal contexts).
    pub fn adopt(&mut self, account: Option<String>) {
        self.account = account;
        self.adopted = true;
    }

    /// Whether `v` belongs to the account this context acts for.
    pub fn owns(&self, v: &Value) -> bool {
        owner(v) == self.account.as_deref()
    }

    pub async fn find(&mut self, id: &str) -> Result<Option<Value>, ApiError> {
        let Some((_, v)) = store::get_object(&mut self.tx, id).await? else {
            return Ok(None);
        };
        if self.scoped {
            return Ok(self.owns(&v).then_some(v));
        }
        if !self.adopted {
            self.adopt(owner(&v).map(str::to_string));
        }
        Ok(Some(v))
    }

    /// Loads an object of `kind`; 404 in Stripe's words otherwise. Deleted
    /// objects count as missing.
    pub async fn load(
        &mut self,
        kind: &str,
        id: &str,
        param: Option<&str>,
    ) -> Result<Value, ApiError> {
        match self.find(id).await? {
            Some(v) if s(&v, "object") == kind && v.get("deleted").is_none() => Ok(v),
            _ => Err(ApiError::no_such(noun(kind), id, param)),
        }
    }

    /// Stores `obj`; one without `_account` is the context's account's.
    pub async fn put(&mut self, obj: &Value) -> Result<(), ApiError> {
        match obj {
            Value::Object(m) if !m.contains_key("_account") => {
                let mut owned = obj.clone();
                owned["_account"] = json!(self.account);
                store::put_object(&mut self.tx, &owned).await?;
            }
            _ => store::put_object(&mut self.tx, obj).await?,
        }
        Ok(())
    }

    /// A Stripe list object of `kind` honouring `limit`, `starting_after`,
    /// `ending_before` and `created[...]`.
    pub async fn list(
        &mut self,
        kind: &str,
        mut filters: Vec<Filter>,
        p: &Params,
        url: &str,
    ) -> Result<Value, ApiError> {
        let limit = p.int("limit")?.unwrap_or(10);
        if !(1..=100).contains(&limit) {
            return Err(ApiError::invalid(format!(
                "Invalid limit: must be at least 1 and at most 100 (received {limit})"
            ))
            .param("limit"));
        }
        match p.get("created") {
            None => {}
            Some(Value::Object(m)) => {
                for (op, sym) in [("gt", ">"), ("gte", ">="), ("lt", "<"), ("lte", "<=")] {
                    if let Some(v) = crate::form::int_at(m.get(op), &format!("created[{op}]"))? {
                        filters.push(Filter::Created(sym, v));
                    }
                }
            }
            Some(v) => {
                if let Some(t) = crate::form::int_at(Some(v), "created")? {
                    filters.push(Filter::Created("=", t));
                }
            }
        }
        if self.scoped {
            filters.push(Filter::Account(self.account.clone()));
        }
        let after = p.nonempty("starting_after")?.map(str::to_string);
        let before = p.nonempty("ending_before")?.map(str::to_string);
        let after_seq = match &after {
            Some(id) => Some(self.seq(kind, id, "starting_after").await?),
            None => None,
        };
        let before_seq = match &before {
            Some(id) => Some(self.seq(kind, id, "ending_before").await?),
            None => None,
        };
        let (items, has_more) =
            store::list_objects(&mut self.tx, kind, &filters, after_seq, before_seq, limit).await?;
        Ok(json!({"object": "list", "data": items, "has_more": has_more, "url": url}))
    }

    async fn seq(&mut self, kind: &str, id: &str, param: &str) -> Result<i64, ApiError> {
        match store::get_object(&mut self.tx, id).await? {
            Some((seq, v)) if s(&v, "object") == kind && (!self.scoped || self.owns(&v)) => Ok(seq),
            _ => Err(ApiError::no_such(noun(kind), id, Some(param))),
        }
    }

    /// Applies `expand[]` paths (`latest_charge`, `customer`,
    /// `invoice_settings.default_payment_method`, `data.payment_method` on
    /// lists…) to an object about to be returned.
    pub async fn expand(&mut self, mut v: Value, paths: &[String]) -> Result<Value, ApiError> {
        for path in paths {
            let parts: Vec<&str> = path.split('.').collect();
            if parts.len() > 4 {
                return Err(ApiError::invalid(format!(
                    "You cannot expand more than 4 levels of a property. Property: {path}"
                ))
                .param("expand"));
            }
            self.expand_path(&mut v, &parts, path).await?;
        }
        Ok(v)
    }

    async fn expand_path(
        &mut self,
        v: &mut Value,
        parts: &[&str],
        full: &str,
    ) -> Result<(), ApiError> {
        expand_rec(self, v, parts, full).await
    }
}

fn expand_rec<'b, 'c>(
    ctx: &'b mut Ctx<'c>,
    v: &'b mut Value,
    parts: &'b [&'b str],
    full: &'b str,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), ApiError>> + Send + 'b>>
where
    'c: 'b,
{
    Box::pin(async move {
        let Some((head, tail)) = parts.split_first() else {
            return Ok(());
        };
        if s(v, "object") == "list" && *head == "data" {
            if let Some(Value::Array(items)) = v.get_mut("data") {
                for item in items.iter_mut() {
                    expand_rec(ctx, item, tail, full).await?;
                }
            }
            return Ok(());
        }
        let Some(field) = v.get_mut(*head) else {
            return Err(
                ApiError::invalid(format!("This property cannot be expanded ({full})."))
                    .param("expand"),
            );
        };
        if let Value::String(id) = field {
            let id = id.clone();
            match ctx.find(&id).await? {
                Some(obj) => *field = obj,
                None => {
                    return Err(ApiError::invalid(format!(
                        "This property cannot be expanded ({full})."
                    ))
                    .param("expand"))
                }
            }
        } else if field.is_null() && tail.is_empty() {
            return Ok(());
        } else if !field.is_object() {
            return Err(
                ApiError::invalid(format!("This property cannot be expanded ({full})."))
                    .param("expand"),
            );
        }
        expand_rec(ctx, field, tail, full).await
    })
}

impl Ctx<'_> {
    async fn endpoints(&mut self) -> Result<Vec<Value>, ApiError> {
        if let Some(e) = &self.endpoints {
            return Ok(e.clone());
        }
        let rows = sqlx::query_scalar::<_, String>(
            "SELECT data FROM objects WHERE kind = 'webhook_endpoint' AND deleted = 0 ORDER BY seq",
        )
        .fetch_all(&mut *self.tx)
        .await?;
        let mut eps = Vec::new();
        for r in rows {
            eps.push(serde_json::from_str::<Value>(&r)?);
        }
        self.endpoints = Some(eps.clone());
        Ok(eps)
    }

    /// Webhook endpoints changed in this transaction: forget the cache.
    pub fn endpoints_changed(&mut self) {
        self.endpoints = None;
    }

    /// Records an event (a full snapshot of `obj`) and queues its deliveries.
    pub async fn emit(
        &mut self,
        etype: &str,
        obj: &Value,
        previous: Option<Value>,
    ) -> Result<(), ApiError> {
        let account = match obj.get("_account") {
            Some(a) => a.as_str().map(str::to_string),
            None => self.account.clone(),
        };
        let endpoints = self.endpoints().await?;
        let matching: Vec<&Value> = endpoints
            .iter()
            .filter(|e| {
                s(e, "status") == "enabled"
                    && endpoint_wants(e, etype)
                    && endpoint_hears(e, account.as_deref())
            })
            .collect();
        let id = crate::ids::new_id("evt");
        let mut data = json!({ "object": render(obj) });
        if let Some(prev) = previous {
            if let Value::Object(m) = &mut data {
                m.insert("previous_attributes".into(), prev);
            }
        }
        let mut event = json!({
            "id": id,
            "object": "event",
            "api_version": self.api_version,
            "created": self.now,
            "data": data,
            "livemode": false,
            "pending_webhooks": matching.len(),
            "request": {"id": self.request_id, "idempotency_key": self.idempotency_key},
            "type": etype,
            "_account": account,
        });
        if let Some(a) = &account {
            event["account"] = json!(a);
        }
        self.put(&event).await?;
        let now = now_ms();
        for ep in matching {
            let fault = match self.app.chaos.lock() {
                Ok(mut c) => c.delivery(),
                Err(_) => return Err(ApiError::internal("chaos lock poisoned")),
            };
            let ep_id = s(ep, "id");
            if fault.drop {
                store::insert_delivery(&mut self.tx, &id, &ep_id, "dropped", now).await?;
                continue;
            }
            store::insert_delivery(&mut self.tx, &id, &ep_id, "pending", now + fault.hold_ms)
                .await?;
            if fault.duplicate {
                store::insert_delivery(
                    &mut self.tx,
                    &id,
                    &ep_id,
                    "pending",
                    now + fault.hold_ms + 20,
                )
                .await?;
            }
        }
        self.emitted += 1;
        Ok(())
    }

    pub async fn commit(self) -> Result<usize, ApiError> {
        let n = self.emitted;
        self.tx.commit().await?;
        Ok(n)
    }
}

/// The connected account `v` belongs to; `None`: the platform.
pub fn owner(v: &Value) -> Option<&str> {
    v.get("_account").and_then(Value::as_str)
}

/// Whose events an endpoint receives, as with Stripe: a platform endpoint
/// with `connect=true` those of every connected account, any other
/// endpoint those of the account that owns it.
fn endpoint_hears(ep: &Value, event_account: Option<&str>) -> bool {
    let connect = ep.get("_connect").and_then(Value::as_bool).unwrap_or(false);
    if connect {
        owner(ep).is_none() && event_account.is_some()
    } else {
        owner(ep) == event_account
    }
}

fn endpoint_wants(ep: &Value, etype: &str) -> bool {
    ep.get("enabled_events")
        .and_then(Value::as_array)
        .map(|evs| {
            evs.iter().filter_map(Value::as_str).any(|e| {
                e == "*" || e == etype || e.strip_suffix('*').is_some_and(|p| etype.starts_with(p))
            })
        })
        .unwrap_or(false)
}

/// The noun Stripe uses in "No such …" messages.
pub fn noun(kind: &str) -> &str {
    match kind {
        "payment_method" => "PaymentMethod",
        "payment_intent" => "payment_intent",
        "setup_intent" => "setupintent",
        "webhook_endpoint" => "webhook endpoint",
        other => other,
    }
}
