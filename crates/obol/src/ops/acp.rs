//! The Agentic Commerce Protocol merchant endpoint (version 2026-04-17):
//! checkout sessions an agent platform creates, updates, completes with a
//! Stripe shared payment token, and cancels. `api::acp` (REST) and the
//! MCP tools (`mcp::acp_tools`) both come through [`call`].
//!
//! The protocol rules live here: the credential (`acp.api_keys`, constant
//! time), `API-Version`, `Idempotency-Key` (RFC §6: scoped to credential
//! and endpoint path, a fingerprint of the canonical body, the stored
//! answer replayed, 5xx answers never stored, records kept 24 hours),
//! and the session's states.
//!
//! A session holds the agent's input only (items, buyer, fulfillment
//! details, the chosen option). Every answer prices it from the catalog
//! as it is now, so every total is obol's. Completing charges the token
//! once: a lease in the database (`claim_acp_completion`) lets one of any
//! number of concurrent completes proceed; the PaymentIntent's Stripe
//! idempotency key is derived from the session and its attempt number, so
//! a retried attempt is answered by the same intent. The order is created
//! by the pay-first checkout every other path uses (`orders::create` with
//! the authorized intent as `payment_reference`), and the order's own
//! transaction completes the session (`acp::webhook::order_changed`).
//!
//! Session states as stored: `open` (shown as `ready_for_payment` or
//! `not_ready_for_payment`, or `complete_in_progress` while a complete
//! holds the lease), `authentication_required`, `completed`, `canceled`.

use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::catalog::CartItemIn;
use super::checkout;
use super::orders::{self, OrderIn};
use crate::acp::{self, AcpError};
use crate::address::Address;
use crate::context::{AccountId, Actor, Ctx};
use crate::error::{Error, Result};
use crate::ids::ProductId;
use crate::money::{Currency, Money};
use crate::storage::acp::{AcpAttempt, AcpKey, AcpKeyRecord, AcpSessionRow};
use crate::storage::Conn;
use crate::stripe::{IdempotencyKey, Params, StripeError};

/// How long the first request of an Idempotency-Key counts as in flight.
const IN_FLIGHT: i64 = 90;
/// How long a complete holds the session (longer than its Stripe calls
/// with their retries take).
const COMPLETION_LEASE: i64 = 120;
/// How long Idempotency-Key records are kept (RFC: at least 24 hours).
const KEY_RETENTION_HOURS: i64 = 24;

/// One ACP operation.
#[derive(Debug, Clone)]
pub enum Op {
    Create,
    Get(String),
    Update(String),
    Complete(String),
    Cancel(String),
}

impl Op {
    fn is_post(&self) -> bool {
        !matches!(self, Op::Get(_))
    }

    /// The endpoint path the RFC scopes keys to.
    fn route(&self) -> String {
        match self {
            Op::Create => "POST /checkout_sessions".into(),
            Op::Get(id) => format!("GET /checkout_sessions/{id}"),
            Op::Update(id) => format!("POST /checkout_sessions/{id}"),
            Op::Complete(id) => format!("POST /checkout_sessions/{id}/complete"),
            Op::Cancel(id) => format!("POST /checkout_sessions/{id}/cancel"),
        }
    }
}

/// What an ACP call answers.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
    /// The stored answer of an earlier request with this key.
    pub replayed: bool,
    /// Seconds, for `Retry-After`.
    pub retry_after: Option<u64>,
}

impl Answer {
    fn error(e: AcpError) -> Self {
        Answer {
            status: e.status().as_u16(),
            body: e.body(),
            replayed: false,
            retry_after: e.retry_after,
        }
    }
}

/// The protocol headers of a call (REST headers, or the MCP `meta`).
#[derive(Debug, Default, Clone)]
pub struct Meta {
    pub api_version: Option<String>,
    pub idempotency_key: Option<String>,
    /// `Signature` and `Timestamp` (REST only: checked by [`rest`] when
    /// `acp.signing_secret` is set).
    pub signature: Option<String>,
    pub timestamp: Option<String>,
}

/// A REST call: checks the Bearer credential against `acp.api_keys` and,
/// with `acp.signing_secret`, the request's `Signature` and `Timestamp`
/// (`acp::verify_request`), then runs [`call`] for the account ACP acts for.
pub async fn rest(
    ctx: &Ctx,
    authorization: Option<&str>,
    meta: Meta,
    op: Op,
    body: Option<&[u8]>,
) -> Answer {
    let token = authorization
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty());
    let credential = match token.and_then(|t| ctx.settings().acp.credential(t)) {
        Some(c) => c,
        None => {
            return Answer::error(AcpError::new(
                "unauthorized",
                "Authorization: Bearer with one of the merchant's ACP API keys is required",
            ))
        }
    };
    let account = match account(ctx).await {
        Ok(a) => a,
        Err(e) => return Answer::error(e),
    };
    let body = match body {
        None => None,
        Some(b) if b.iter().all(u8::is_ascii_whitespace) => None,
        Some(b) => match serde_json::from_slice::<Value>(b) {
            Ok(v) => Some(v),
            Err(e) => {
                return Answer::error(AcpError::new(
                    "invalid_json",
                    format!("the body is not JSON: {e}"),
                ))
            }
        },
    };
    if let Err(e) = acp::verify_request(
        ctx.settings().acp.signing_secret.as_ref(),
        meta.signature.as_deref(),
        meta.timestamp.as_deref(),
        body.as_ref(),
        ctx.now(),
    ) {
        return Answer::error(e);
    }
    call(ctx, &credential, &account, meta, op, body).await
}

/// The account ACP sessions belong to: `acp.organization`'s, else the platform's.
pub async fn account(ctx: &Ctx) -> std::result::Result<AccountId, AcpError> {
    match &ctx.settings().acp.organization {
        None => Ok(AccountId::platform()),
        Some(org) => super::organizations::resolve(ctx, org)
            .await
            .map_err(|e| AcpError::from_obol(&e)),
    }
}

/// One ACP operation for `credential` (which scopes its idempotency keys)
/// in `account`: the version check, the Idempotency-Key rules for POSTs,
/// then the operation.
pub async fn call(
    ctx: &Ctx,
    credential: &str,
    account: &AccountId,
    meta: Meta,
    op: Op,
    body: Option<Value>,
) -> Answer {
    match meta.api_version.as_deref().map(str::trim) {
        None | Some("") => {
            return Answer::error(AcpError::new(
                "missing_api_version",
                "the API-Version header is required",
            ))
        }
        Some(v) if !acp::SUPPORTED_VERSIONS.contains(&v) => {
            return Answer::error(AcpError::new(
                "unsupported_api_version",
                format!("API-Version {v:?} is not supported"),
            ))
        }
        Some(_) => {}
    }
    if !op.is_post() {
        return finish(run(ctx, account, &op, &Value::Null, None).await);
    }
    let Some(key) = meta.idempotency_key.as_deref() else {
        return Answer::error(AcpError::new(
            "idempotency_key_required",
            "Idempotency-Key header is required on all POST requests",
        ));
    };
    if key.is_empty() || key.len() > 255 || key.chars().any(char::is_control) {
        return Answer::error(AcpError::new(
            "idempotency_key_invalid",
            "Idempotency-Key is 1 to 255 printable characters",
        ));
    }
    let body = body.unwrap_or_else(|| json!({}));
    let hash = acp::body_fingerprint(&body);
    let route = op.route();
    let resumed = match begin_key(ctx, credential, &route, key, &hash).await {
        Ok(Begun::Fresh { resumed }) => resumed,
        Ok(Begun::Replay(answer)) => return answer,
        Err(e) => return Answer::error(e),
    };
    let pending = Pending {
        credential: credential.to_string(),
        route,
        key: key.to_string(),
        resumed,
        stored: AtomicBool::new(false),
    };
    let answer = finish(run(ctx, account, &op, &body, Some(&pending)).await);
    // An answer that changed something was stored by the operation, in
    // the transaction of its change (`Pending::store_on`). What is left:
    // answers that changed nothing (refusals) are stored here; 5xx answers
    // and "try again shortly" ones (`Retry-After`) are forgotten, so the
    // retry they ask for runs afresh instead of replaying them for 24 hours.
    let transient = answer.status >= 500 || answer.retry_after.is_some();
    if transient || !pending.stored.load(Ordering::SeqCst) {
        let stored = async {
            let mut h = ctx.store().acquire().await?;
            let mut conn = h.conn();
            if transient {
                conn.delete_acp_idempotency(&pending.key()).await
            } else {
                pending
                    .store_on(&mut conn, answer.status, &answer.body)
                    .await
            }
        }
        .await;
        if let Err(e) = stored {
            tracing::error!(error = %e, "could not record an ACP idempotency key's answer");
        }
    }
    answer
}

/// The Idempotency-Key of the POST under way.
///
/// Why the answer and the effect cannot part: an operation that changes
/// the session stores its answer with [`Pending::store_on`] on the
/// transaction that makes the change (create, update, cancel, a declined
/// or 3-D Secure attempt), so either both commit or neither does. The one
/// change made in another transaction is the order of a successful
/// complete (`orders::create`, which completes the session in the
/// order's own transaction); its answer is stored right after. A crash in
/// between leaves the key in flight: once its lock passes, a retry with
/// the same key and body takes it over (`resumed`) and, finding the
/// session completed, answers the completed session with its order (the
/// lost answer), charging nothing: the session is completed, so no
/// completion lease can be claimed again. A crash before the order
/// (after Stripe authorized) is covered by the session: the authorized
/// intent is recorded on it (`set_acp_intent`) and the next attempt
/// creates the order from it, and the PaymentIntent's own Stripe
/// idempotency key (session, attempt) answers a retried creation with
/// the same intent, so a token is never charged twice.
pub struct Pending {
    credential: String,
    route: String,
    key: String,
    /// This request took its key over from an earlier one with the same
    /// body that never answered (it died in flight): that one's effect
    /// may have committed.
    resumed: bool,
    stored: AtomicBool,
}

impl Pending {
    fn key(&self) -> AcpKey<'_> {
        AcpKey {
            credential: &self.credential,
            route: &self.route,
            key: &self.key,
        }
    }

    /// Stores `body` as the key's answer, on `conn` (the caller's transaction).
    async fn store_on(&self, conn: &mut Conn<'_>, status: u16, body: &Value) -> Result<()> {
        let text = serde_json::to_string(body).map_err(Error::internal)?;
        conn.finish_acp_idempotency(&self.key(), i32::from(status), &text)
            .await?;
        self.stored.store(true, Ordering::SeqCst);
        Ok(())
    }
}

fn finish(r: std::result::Result<(u16, Value), AcpError>) -> Answer {
    match r {
        Ok((status, body)) => Answer {
            status,
            body,
            replayed: false,
            retry_after: None,
        },
        Err(e) => Answer::error(e),
    }
}

enum Begun {
    /// `resumed`: taken over from a request with the same body that died in flight.
    Fresh {
        resumed: bool,
    },
    Replay(Answer),
}

/// Records `key` in flight, or says what an earlier request with it
/// decided: the stored answer, a different body (422), still in flight (409).
async fn begin_key(
    ctx: &Ctx,
    credential: &str,
    route: &str,
    key: &str,
    hash: &str,
) -> std::result::Result<Begun, AcpError> {
    let db = |e: Error| AcpError::from_obol(&e);
    let now = ctx.now();
    let locked = now + Duration::seconds(IN_FLIGHT);
    let expires = now + Duration::hours(KEY_RETENTION_HOURS);
    let k = AcpKey {
        credential,
        route,
        key,
    };
    let record = AcpKeyRecord {
        body_hash: hash,
        locked_until: locked,
        now,
        expires_at: expires,
    };
    let mut h = ctx.store().acquire().await.map_err(db)?;
    let mut conn = h.conn();
    if conn.insert_acp_idempotency(&k, &record).await.map_err(db)? {
        return Ok(Begun::Fresh { resumed: false });
    }
    let in_flight = |until: DateTime<Utc>| {
        AcpError::new(
            "idempotency_in_flight",
            "A request with this Idempotency-Key is currently being processed",
        )
        .retry_after(u64::try_from((until - now).num_seconds().max(1)).unwrap_or(1))
    };
    let Some(row) = conn.get_acp_idempotency(&k).await.map_err(db)? else {
        // Deleted meanwhile (its request answered 5xx): start afresh.
        return if conn.insert_acp_idempotency(&k, &record).await.map_err(db)? {
            Ok(Begun::Fresh { resumed: false })
        } else {
            Err(in_flight(locked))
        };
    };
    if row.expires_at > now && row.body_hash != hash {
        return Err(AcpError::new(
            "idempotency_conflict",
            "Idempotency-Key has already been used with a different request body",
        ));
    }
    if row.expires_at > now {
        if let (Some(status), Some(response)) = (row.status, row.response.as_deref()) {
            let body = serde_json::from_str(response).unwrap_or(Value::Null);
            return Ok(Begun::Replay(Answer {
                status: u16::try_from(status).unwrap_or(500),
                body,
                replayed: true,
                retry_after: None,
            }));
        }
        if row.locked_until > now {
            return Err(in_flight(row.locked_until));
        }
    }
    // Expired, or its first request's holder died: the key starts afresh.
    let resumed = row.expires_at > now;
    if conn
        .take_over_acp_idempotency(&k, &record)
        .await
        .map_err(db)?
    {
        Ok(Begun::Fresh { resumed })
    } else {
        Err(in_flight(locked))
    }
}

/// For the sweep job: deletes the records past their retention.
pub async fn sweep_idempotency_keys(ctx: &Ctx) -> Result<u64> {
    let mut h = ctx.store().acquire().await?;
    h.conn().sweep_acp_idempotency(ctx.now()).await
}

async fn run(
    ctx: &Ctx,
    account: &AccountId,
    op: &Op,
    body: &Value,
    pending: Option<&Pending>,
) -> std::result::Result<(u16, Value), AcpError> {
    if let Op::Get(id) = op {
        return get(ctx, account, id).await.map(|v| (200, v));
    }
    let Some(p) = pending else {
        return Err(obol(Error::internal(
            "an ACP POST without its Idempotency-Key",
        )));
    };
    match op {
        Op::Create => create(ctx, account, body, p).await.map(|v| (201, v)),
        Op::Get(_) => Err(obol(Error::internal("unreachable"))),
        Op::Update(id) => update(ctx, account, id, body, p).await.map(|v| (200, v)),
        Op::Complete(id) => complete(ctx, account, id, body, p).await.map(|v| (200, v)),
        Op::Cancel(id) => cancel(ctx, account, id, body, p).await.map(|v| (200, v)),
    }
}

fn obol(e: Error) -> AcpError {
    AcpError::from_obol(&e)
}

// ---------------------------------------------------------------------
// The session's input.

/// The agent's input, as stored in `acp_checkout_sessions.cart`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Cart {
    /// Catalog product ids and quantities, in the agent's order (a product
    /// named twice counts twice).
    pub items: Vec<CartLine>,
    pub buyer: Option<Value>,
    pub fulfillment_details: Option<Value>,
    pub selected_fulfillment_options: Vec<Value>,
    /// `capabilities.interventions.supported` of the agent.
    pub interventions: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CartLine {
    pub id: String,
    pub quantity: i64,
}

fn invalid(param: impl Into<String>, message: impl Into<String>) -> AcpError {
    AcpError::new("invalid", message).at(param)
}

fn missing(param: impl Into<String>, message: impl Into<String>) -> AcpError {
    AcpError::new("missing", message).at(param)
}

fn object<'a>(v: &'a Value, at: &str) -> std::result::Result<&'a Map<String, Value>, AcpError> {
    v.as_object()
        .ok_or_else(|| invalid(at, format!("{at} must be an object")))
}

fn string<'a>(
    o: &'a Map<String, Value>,
    key: &str,
    at: &str,
    max: usize,
) -> std::result::Result<Option<&'a str>, AcpError> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.chars().count() <= max => Ok(Some(s.as_str())),
        Some(Value::String(_)) => Err(invalid(
            format!("{at}.{key}"),
            format!("{at}.{key} has at most {max} characters"),
        )),
        Some(_) => Err(invalid(
            format!("{at}.{key}"),
            format!("{at}.{key} must be a string"),
        )),
    }
}

fn parse_items(v: &Value) -> std::result::Result<Vec<CartLine>, AcpError> {
    let items = v
        .as_array()
        .ok_or_else(|| invalid("$.line_items", "line_items must be an array"))?;
    if items.is_empty() || items.len() > 200 {
        return Err(invalid("$.line_items", "line_items has 1 to 200 items"));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let at = format!("$.line_items[{i}]");
            let o = object(item, &at)?;
            let id = string(o, "id", &at, 255)?
                .filter(|s| !s.is_empty())
                .ok_or_else(|| missing(format!("{at}.id"), "every item needs its id"))?;
            // `quantity` is the RFC's (§5 Item); the 2026-04-17 schema
            // has none, so an item without one is one unit.
            let quantity = match o.get("quantity") {
                None | Some(Value::Null) => 1,
                Some(q) => q
                    .as_i64()
                    .filter(|q| (1..=10_000).contains(q))
                    .ok_or_else(|| {
                        invalid(
                            format!("{at}.quantity"),
                            "quantity is an integer from 1 to 10000",
                        )
                    })?,
            };
            Ok(CartLine {
                id: id.to_string(),
                quantity,
            })
        })
        .collect()
}

fn parse_buyer(v: &Value) -> std::result::Result<Value, AcpError> {
    let o = object(v, "$.buyer")?;
    let email = string(o, "email", "$.buyer", 320)?
        .ok_or_else(|| missing("$.buyer.email", "the buyer's email is required"))?;
    let email = crate::validate::email(email).map_err(|_| {
        invalid(
            "$.buyer.email",
            "the buyer's email is not an e-mail address",
        )
    })?;
    let mut out = Map::new();
    for key in ["first_name", "last_name", "full_name", "phone_number"] {
        if let Some(s) = string(o, key, "$.buyer", 200)? {
            out.insert(key.into(), json!(s));
        }
    }
    out.insert("email".into(), json!(email));
    Ok(Value::Object(out))
}

const ADDRESS_FIELDS: [(&str, bool); 7] = [
    ("name", true),
    ("line_one", true),
    ("line_two", false),
    ("city", true),
    ("state", true),
    ("country", true),
    ("postal_code", true),
];

fn parse_address(v: &Value, at: &str) -> std::result::Result<Value, AcpError> {
    let o = object(v, at)?;
    let mut out = Map::new();
    for (key, required) in ADDRESS_FIELDS {
        match string(o, key, at, 200)? {
            Some(s) if !s.trim().is_empty() || !required => {
                out.insert(key.into(), json!(s));
            }
            _ if required => {
                return Err(missing(
                    format!("{at}.{key}"),
                    format!("{at}.{key} is required"),
                ))
            }
            _ => {}
        }
    }
    let country = out
        .get("country")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_ascii_uppercase();
    if country.len() != 2 || !country.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Err(invalid(
            format!("{at}.country"),
            "country is an ISO 3166-1 alpha-2 code such as \"US\"",
        ));
    }
    out.insert("country".into(), json!(country));
    Ok(Value::Object(out))
}

fn parse_fulfillment(v: &Value) -> std::result::Result<Value, AcpError> {
    let at = "$.fulfillment_details";
    let o = object(v, at)?;
    let mut out = Map::new();
    for key in ["name", "phone_number"] {
        if let Some(s) = string(o, key, at, 200)? {
            out.insert(key.into(), json!(s));
        }
    }
    if let Some(e) = string(o, "email", at, 320)? {
        let e = crate::validate::email(e)
            .map_err(|_| invalid("$.fulfillment_details.email", "not an e-mail address"))?;
        out.insert("email".into(), json!(e));
    }
    match o.get("address") {
        None | Some(Value::Null) => {}
        Some(a) => {
            out.insert(
                "address".into(),
                parse_address(a, "$.fulfillment_details.address")?,
            );
        }
    }
    Ok(Value::Object(out))
}

fn parse_selected(v: &Value) -> std::result::Result<Vec<Value>, AcpError> {
    let a = v.as_array().ok_or_else(|| {
        invalid(
            "$.selected_fulfillment_options",
            "selected_fulfillment_options must be an array",
        )
    })?;
    a.iter()
        .enumerate()
        .map(|(i, s)| {
            let at = format!("$.selected_fulfillment_options[{i}]");
            let o = object(s, &at)?;
            let id = string(o, "option_id", &at, 255)?
                .ok_or_else(|| missing(format!("{at}.option_id"), "option_id is required"))?;
            Ok(json!({"option_id": id}))
        })
        .collect()
}

/// Applies the fields a create or update body carries: absent keeps,
/// `null` clears (RFC §6.2), a value replaces.
fn apply(cart: &mut Cart, body: &Map<String, Value>) -> std::result::Result<(), AcpError> {
    if let Some(v) = body.get("line_items") {
        cart.items = parse_items(v)?;
    }
    match body.get("buyer") {
        None => {}
        Some(Value::Null) => cart.buyer = None,
        Some(v) => cart.buyer = Some(parse_buyer(v)?),
    }
    match body.get("fulfillment_details") {
        None => {}
        Some(Value::Null) => cart.fulfillment_details = None,
        Some(v) => cart.fulfillment_details = Some(parse_fulfillment(v)?),
    }
    match body.get("selected_fulfillment_options") {
        None => {}
        Some(Value::Null) => cart.selected_fulfillment_options.clear(),
        Some(v) => cart.selected_fulfillment_options = parse_selected(v)?,
    }
    Ok(())
}

// ---------------------------------------------------------------------
// Pricing and the session's view.

/// A session priced from the catalog now.
struct Priced {
    currency: Currency,
    /// (product id, name, unit amount, quantity, stock)
    lines: Vec<(String, String, i64, i64, Option<i64>)>,
    /// Every active shipping method in the session's currency.
    options: Vec<(String, String, i64)>,
    selected: Option<(String, String, i64)>,
    /// The errors the agent must fix before paying.
    errors: Vec<Value>,
    subtotal: i64,
    total: i64,
}

fn message_error(code: &str, param: &str, content: String) -> Value {
    json!({"type": "error", "code": code, "param": param, "content_type": "plain", "content": content})
}

async fn price(
    conn: &mut Conn<'_>,
    account: &AccountId,
    cart: &Cart,
    currency: Currency,
) -> Result<Priced> {
    let mut lines: Vec<(String, String, i64, i64, Option<i64>)> = Vec::new();
    let mut errors = Vec::new();
    for (i, item) in cart.items.iter().enumerate() {
        let at = format!("$.line_items[{i}].id");
        let product = match ProductId::parse(&item.id) {
            Ok(id) => conn.get_product(account, id.as_str()).await?,
            Err(_) => None,
        };
        let Some(product) = product else {
            errors.push(message_error(
                "invalid",
                &at,
                format!(
                    "There is no product {:?} in the catalog.",
                    item.id.chars().take(64).collect::<String>()
                ),
            ));
            continue;
        };
        if !product.active {
            errors.push(message_error(
                "invalid",
                &at,
                format!("{} is not for sale.", product.name),
            ));
            continue;
        }
        if product.currency != currency.as_str() {
            errors.push(message_error(
                "invalid",
                &at,
                format!(
                    "{} is priced in {}, the checkout in {}.",
                    product.name,
                    product.currency,
                    currency.as_str()
                ),
            ));
            continue;
        }
        match lines.iter_mut().find(|l| l.0 == product.id) {
            Some(l) => l.3 += item.quantity,
            None => lines.push((
                product.id.clone(),
                product.name.clone(),
                product.unit_amount,
                item.quantity,
                product.stock,
            )),
        }
    }
    for (i, l) in lines.iter().enumerate() {
        if let Some(stock) = l.4 {
            if l.3 > stock {
                errors.push(message_error(
                    "out_of_stock",
                    &format!("$.line_items[{i}]"),
                    format!("{} has {stock} left; the checkout asks for {}.", l.1, l.3),
                ));
            }
        }
    }
    let options: Vec<(String, String, i64)> = conn
        .list_shipping_methods(account, Some(true), None, 100)
        .await?
        .into_iter()
        .filter(|m| m.currency == currency.as_str())
        .map(|m| (m.id, m.name, m.amount))
        .collect();
    let mut selected = None;
    if let Some(first) = cart.selected_fulfillment_options.first() {
        let id = first["option_id"].as_str().unwrap_or_default();
        match options.iter().find(|o| o.0 == id) {
            Some(o) => selected = Some(o.clone()),
            None => errors.push(message_error(
                "invalid",
                "$.selected_fulfillment_options[0].option_id",
                "That fulfillment option is not offered; choose one of fulfillment_options.".into(),
            )),
        }
    }
    if cart.items.is_empty() {
        errors.push(message_error(
            "missing",
            "$.line_items",
            "Add at least one item.".into(),
        ));
    }
    let address = cart
        .fulfillment_details
        .as_ref()
        .is_some_and(|f| f.get("address").is_some());
    if !address {
        errors.push(message_error(
            "missing",
            "$.fulfillment_details.address",
            "A shipping address is required.".into(),
        ));
    }
    if selected.is_none() && !options.is_empty() && cart.selected_fulfillment_options.is_empty() {
        errors.push(message_error(
            "missing",
            "$.selected_fulfillment_options",
            "Choose one of fulfillment_options.".into(),
        ));
    }
    if email_of(cart).is_none() {
        errors.push(message_error(
            "missing",
            "$.buyer.email",
            "The buyer's email is required.".into(),
        ));
    }
    let mut subtotal: i64 = 0;
    for l in &lines {
        subtotal = subtotal.saturating_add(l.2.saturating_mul(l.3));
    }
    let total = subtotal.saturating_add(selected.as_ref().map_or(0, |s| s.2));
    Ok(Priced {
        currency,
        lines,
        options,
        selected,
        errors,
        subtotal,
        total,
    })
}

fn email_of(cart: &Cart) -> Option<String> {
    cart.buyer
        .as_ref()
        .and_then(|b| b["email"].as_str())
        .or_else(|| {
            cart.fulfillment_details
                .as_ref()
                .and_then(|f| f["email"].as_str())
        })
        .map(str::to_string)
}

fn total(kind: &str, text: &str, amount: i64) -> Value {
    json!({"type": kind, "display_text": text, "amount": amount})
}

fn payment_handler(ctx: &Ctx) -> Value {
    json!({
        "id": "card_tokenized",
        "name": "dev.acp.tokenized.card",
        "display_name": "Card",
        "version": "2026-01-22",
        "spec": "https://acp.dev/handlers/tokenized.card",
        "requires_delegate_payment": true,
        "requires_pci_compliance": false,
        "psp": "stripe",
        "config_schema": "https://acp.dev/schemas/handlers/tokenized.card/config.json",
        "instrument_schemas": ["https://acp.dev/schemas/handlers/tokenized.card/instrument.json"],
        "config": {
            "psp": "stripe",
            "credential_types": ["spt"],
            "accepted_brands": ["visa", "mastercard", "amex", "discover"],
            "supports_3ds": true,
            "environment": ctx.settings().acp.environment,
        }
    })
}

/// The session as the protocol answers it.
async fn view(ctx: &Ctx, row: &AcpSessionRow) -> Result<Value> {
    let mut h = ctx.store().acquire().await?;
    view_on(ctx, &mut h.conn(), row).await
}

/// [`view`] on `conn` (the transaction that changed the session, so its
/// answer is stored with the change).
async fn view_on(ctx: &Ctx, conn: &mut Conn<'_>, row: &AcpSessionRow) -> Result<Value> {
    let cart: Cart = serde_json::from_str(&row.cart).map_err(Error::internal)?;
    let account = AccountId::from_db(row.account_id.clone());
    let currency = Currency::parse(&row.currency)?;
    let priced = price(conn, &account, &cart, currency).await?;
    let order = match &row.order_id {
        Some(id) => conn.get_order(&account, id).await?,
        None => None,
    };
    Ok(render(ctx, row, &cart, &priced, order.as_ref()))
}

/// Reads the session `id` on `conn`, renders it, and stores that as the
/// answer of `pending` (status `status`) on the same `conn`: with `conn` a
/// transaction that made the change, the change and its replayable answer
/// commit together.
async fn answer_on(
    ctx: &Ctx,
    conn: &mut Conn<'_>,
    pending: &Pending,
    account: &AccountId,
    id: &str,
    status: u16,
) -> Result<Value> {
    let row = conn
        .get_acp_session(account, id)
        .await?
        .ok_or_else(|| Error::internal("an ACP session vanished in its own transaction"))?;
    let body = view_on(ctx, conn, &row).await?;
    pending.store_on(conn, status, &body).await?;
    Ok(body)
}

fn render(
    ctx: &Ctx,
    row: &AcpSessionRow,
    cart: &Cart,
    priced: &Priced,
    order: Option<&crate::storage::orders::OrderRow>,
) -> Value {
    let now = ctx.now();
    let status = match row.status.as_str() {
        "completed" | "canceled" | "authentication_required" => row.status.clone(),
        _ if row.completing_until.is_some_and(|t| t > now) => "complete_in_progress".into(),
        _ if priced.errors.is_empty() => "ready_for_payment".into(),
        _ => "not_ready_for_payment".into(),
    };
    let product_ids: Vec<&str> = priced.lines.iter().map(|l| l.0.as_str()).collect();
    let line_items: Vec<Value> = priced
        .lines
        .iter()
        .map(|(id, name, unit, qty, stock)| {
            let amount = unit.saturating_mul(*qty);
            let mut li = json!({
                "id": format!("li_{id}"),
                "item": {"id": id},
                "quantity": qty,
                "name": name,
                "unit_amount": unit,
                "product_id": id,
                "availability_status": match stock {
                    Some(s) if qty > s => "out_of_stock",
                    _ => "in_stock",
                },
                "totals": [
                    total("items_base_amount", "Base amount", amount),
                    total("subtotal", "Subtotal", amount),
                    total("total", "Total", amount),
                ],
            });
            if let Some(s) = stock {
                li["available_quantity"] = json!((*s).max(0));
            }
            li
        })
        .collect();
    let mut totals = vec![
        total("items_base_amount", "Item(s) total", priced.subtotal),
        total("subtotal", "Subtotal", priced.subtotal),
    ];
    if let Some(s) = &priced.selected {
        totals.push(total("fulfillment", "Shipping", s.2));
    }
    totals.push(total("total", "Total", priced.total));
    let options: Vec<Value> = priced
        .options
        .iter()
        .map(|(id, name, amount)| {
            json!({"type": "shipping", "id": id, "title": name,
                   "totals": [total("total", "Shipping", *amount)]})
        })
        .collect();
    let mut messages: Vec<Value> = Vec::new();
    if !matches!(status.as_str(), "completed" | "canceled") {
        messages.extend(priced.errors.iter().cloned());
    }
    if let Some(d) = &row.decline_message {
        messages.push(
            json!({"type": "error", "code": "payment_declined", "param": "$.payment_data",
            "content_type": "plain", "content": d}),
        );
    }
    if status == "canceled" {
        messages.push(json!({"type": "info", "content_type": "plain",
            "content": "Checkout session has been canceled."}));
    }
    let supported: Vec<&str> = cart
        .interventions
        .iter()
        .map(String::as_str)
        .filter(|i| *i == "3ds")
        .collect();
    let mut session = json!({
        "id": row.id,
        "protocol": {"version": acp::API_VERSION},
        "capabilities": {
            "payment": {"handlers": [payment_handler(ctx)]},
            "interventions": {"supported": supported},
        },
        "status": status,
        "currency": priced.currency.as_str(),
        "line_items": line_items,
        "fulfillment_options": options,
        "totals": totals,
        "messages": messages,
        "links": [],
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    });
    if let Some(b) = &cart.buyer {
        session["buyer"] = b.clone();
    }
    if let Some(f) = &cart.fulfillment_details {
        session["fulfillment_details"] = f.clone();
    }
    if let Some(s) = &priced.selected {
        session["selected_fulfillment_options"] =
            json!([{"type": "shipping", "option_id": s.0, "item_ids": product_ids}]);
    }
    if status == "authentication_required" {
        if let Some(m) = row
            .authentication_metadata
            .as_deref()
            .and_then(|m| serde_json::from_str::<Value>(m).ok())
        {
            session["authentication_metadata"] = m;
        }
    }
    if let Some(o) = order {
        session["order"] = json!({
            "id": o.id,
            "checkout_session_id": row.id,
            "order_number": o.number,
            "permalink_url": ctx.settings().acp.permalink(&o.id, &o.number),
        });
    }
    session
}

async fn load(
    ctx: &Ctx,
    account: &AccountId,
    id: &str,
) -> std::result::Result<AcpSessionRow, AcpError> {
    let not_found = || AcpError::new("session_not_found", "Checkout session not found").at("$.id");
    if id.len() > 64 {
        return Err(not_found());
    }
    let mut h = ctx.store().acquire().await.map_err(obol)?;
    h.conn()
        .get_acp_session(account, id)
        .await
        .map_err(obol)?
        .ok_or_else(not_found)
}

fn cart_of(row: &AcpSessionRow) -> std::result::Result<Cart, AcpError> {
    serde_json::from_str(&row.cart).map_err(|e| obol(Error::internal(e)))
}

// ---------------------------------------------------------------------
// The operations.

async fn create(
    ctx: &Ctx,
    account: &AccountId,
    body: &Value,
    pending: &Pending,
) -> std::result::Result<Value, AcpError> {
    let o = object(body, "$")?;
    if !o.contains_key("line_items") {
        return Err(missing("$.line_items", "line_items is required"));
    }
    let mut cart = Cart::default();
    apply(&mut cart, o)?;
    if let Some(supported) = body
        .pointer("/capabilities/interventions/supported")
        .and_then(Value::as_array)
    {
        cart.interventions = supported
            .iter()
            .filter_map(|s| s.as_str().map(str::to_string))
            .collect();
    }
    let currency = match o.get("currency") {
        Some(Value::String(c)) => Currency::parse(c)
            .map_err(|_| invalid("$.currency", "currency is an ISO 4217 code such as \"usd\""))?,
        None | Some(Value::Null) => {
            // The products' currency, when the agent names none.
            let mut found = None;
            let mut h = ctx.store().acquire().await.map_err(obol)?;
            for item in &cart.items {
                if let Ok(id) = ProductId::parse(&item.id) {
                    if let Some(p) = h
                        .conn()
                        .get_product(account, id.as_str())
                        .await
                        .map_err(obol)?
                    {
                        found = Some(p.currency);
                        break;
                    }
                }
            }
            let c = found.ok_or_else(|| {
                missing(
                    "$.currency",
                    "currency is required (no item is a known product)",
                )
            })?;
            Currency::parse(&c).map_err(|e| obol(e.into()))?
        }
        Some(_) => return Err(invalid("$.currency", "currency must be a string")),
    };
    let now = ctx.now();
    let row = AcpSessionRow {
        id: format!("acs_{}", ulid::Ulid::new().to_string().to_ascii_lowercase()),
        account_id: account.as_str().to_string(),
        status: "open".into(),
        currency: currency.as_str().to_string(),
        cart: serde_json::to_string(&cart).map_err(|e| obol(Error::internal(e)))?,
        payment_intent_id: None,
        attempts: 0,
        authentication_metadata: None,
        decline_message: None,
        order_id: None,
        completing_until: None,
        created_at: now,
        updated_at: now,
    };
    let answer = async {
        let mut tx = ctx.store().begin().await?;
        tx.conn().insert_acp_session(&row).await?;
        let answer = answer_on(ctx, &mut tx.conn(), pending, account, &row.id, 201).await?;
        tx.commit().await?;
        Ok::<_, Error>(answer)
    }
    .await
    .map_err(obol)?;
    tracing::info!(session = %row.id, "ACP checkout session created");
    Ok(answer)
}

async fn get(ctx: &Ctx, account: &AccountId, id: &str) -> std::result::Result<Value, AcpError> {
    let row = load(ctx, account, id).await?;
    view(ctx, &row).await.map_err(obol)
}

fn finished(row: &AcpSessionRow) -> Option<AcpError> {
    matches!(row.status.as_str(), "completed" | "canceled").then(|| {
        AcpError::new(
            "session_not_modifiable",
            format!("the checkout session is {}", row.status),
        )
    })
}

fn busy() -> AcpError {
    AcpError::new(
        "checkout_in_progress",
        "the checkout session is being completed; read it again shortly",
    )
    .retry_after(2)
}

async fn update(
    ctx: &Ctx,
    account: &AccountId,
    id: &str,
    body: &Value,
    pending: &Pending,
) -> std::result::Result<Value, AcpError> {
    let row = load(ctx, account, id).await?;
    if let Some(e) = finished(&row) {
        return Err(e);
    }
    if row.status == "authentication_required" {
        return Err(AcpError::new(
            "session_not_modifiable",
            "the checkout session waits for its authentication_result; complete or cancel it",
        ));
    }
    let o = object(body, "$")?;
    let mut cart = cart_of(&row)?;
    apply(&mut cart, o)?;
    let text = serde_json::to_string(&cart).map_err(|e| obol(Error::internal(e)))?;
    let updated = async {
        let mut tx = ctx.store().begin().await?;
        if !tx
            .conn()
            .update_acp_cart(account, id, &row.currency, &text, ctx.now())
            .await?
        {
            return Ok(None);
        }
        let answer = answer_on(ctx, &mut tx.conn(), pending, account, id, 200).await?;
        tx.commit().await?;
        Ok::<_, Error>(Some(answer))
    }
    .await
    .map_err(obol)?;
    match updated {
        Some(answer) => Ok(answer),
        None => {
            let row = load(ctx, account, id).await?;
            Err(finished(&row).unwrap_or_else(busy))
        }
    }
}

async fn cancel(
    ctx: &Ctx,
    account: &AccountId,
    id: &str,
    body: &Value,
    pending: &Pending,
) -> std::result::Result<Value, AcpError> {
    let row = load(ctx, account, id).await?;
    let refused = |row: &AcpSessionRow| {
        AcpError::new(
            "session_not_cancelable",
            format!(
                "the checkout session is {} and cannot be canceled",
                row.status
            ),
        )
    };
    if matches!(row.status.as_str(), "completed" | "canceled") {
        return Err(refused(&row));
    }
    if let Some(reason) = body
        .pointer("/intent_trace/reason_code")
        .and_then(Value::as_str)
    {
        tracing::info!(session = %id, reason = %reason.chars().take(40).collect::<String>(), "ACP checkout abandoned");
    }
    let canceled = async {
        let mut tx = ctx.store().begin().await?;
        if !tx.conn().cancel_acp_session(account, id, ctx.now()).await? {
            return Ok(None);
        }
        let answer = answer_on(ctx, &mut tx.conn(), pending, account, id, 200).await?;
        tx.commit().await?;
        Ok::<_, Error>(Some(answer))
    }
    .await
    .map_err(obol)?;
    let Some(answer) = canceled else {
        let now_row = load(ctx, account, id).await?;
        return Err(
            if matches!(now_row.status.as_str(), "completed" | "canceled") {
                refused(&now_row)
            } else {
                busy()
            },
        );
    };
    // An intent waiting for 3-D Secure holds nothing yet; cancel it so it
    // can never be confirmed. After the commit: a crash before this leaves
    // an intent nobody can confirm (the session is canceled), which lapses.
    if let (Some(pi), "authentication_required") = (&row.payment_intent_id, row.status.as_str()) {
        cancel_intent(ctx, account, pi, &row.id).await;
    }
    Ok(answer)
}

async fn cancel_intent(ctx: &Ctx, account: &AccountId, pi: &str, session: &str) {
    let result = async {
        ctx.stripe_of(account)
            .await?
            .post_json(
                &format!("/v1/payment_intents/{pi}/cancel"),
                &Params::new().set("cancellation_reason", "abandoned"),
                &IdempotencyKey::for_op("acp-cancel", &[session, pi]),
            )
            .await
            .map_err(Error::from)
    }
    .await;
    if let Err(e) = result {
        tracing::warn!(session = %session, error = %e, "could not cancel an ACP PaymentIntent waiting for 3-D Secure");
    }
}

// ---------------------------------------------------------------------
// Completing.

struct PaymentIn {
    token: String,
    billing_address: Option<Value>,
}

fn parse_payment(body: &Map<String, Value>) -> std::result::Result<PaymentIn, AcpError> {
    let pd = body
        .get("payment_data")
        .filter(|v| !v.is_null())
        .ok_or_else(|| missing("$.payment_data", "payment_data is required"))?;
    let pd = object(pd, "$.payment_data")?;
    match string(pd, "handler_id", "$.payment_data", 255)? {
        Some("card_tokenized") => {}
        Some(_) => {
            return Err(invalid(
                "$.payment_data.handler_id",
                "this merchant takes the card_tokenized handler only",
            ))
        }
        None => {
            return Err(missing(
                "$.payment_data.handler_id",
                "payment_data.handler_id is required",
            ))
        }
    }
    let credential = pd
        .get("instrument")
        .and_then(|i| i.get("credential"))
        .and_then(Value::as_object)
        .ok_or_else(|| {
            missing(
                "$.payment_data.instrument.credential",
                "payment_data.instrument.credential is required",
            )
        })?;
    if credential.get("type").and_then(Value::as_str) != Some("spt") {
        return Err(invalid(
            "$.payment_data.instrument.credential.type",
            "this merchant takes Stripe shared payment tokens (type spt) only",
        ));
    }
    let token = credential
        .get("token")
        .and_then(Value::as_str)
        .filter(|t| {
            t.starts_with("spt_")
                && t.len() <= 255
                && t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        })
        .ok_or_else(|| {
            invalid(
                "$.payment_data.instrument.credential.token",
                "the token is a Stripe shared payment token, spt_…",
            )
        })?;
    let billing_address = match pd.get("billing_address") {
        None | Some(Value::Null) => None,
        Some(a) => Some(parse_address(a, "$.payment_data.billing_address")?),
    };
    Ok(PaymentIn {
        token: token.to_string(),
        billing_address,
    })
}

struct AuthIn {
    outcome: String,
    details: Option<Value>,
}

fn parse_authentication(
    body: &Map<String, Value>,
) -> std::result::Result<Option<AuthIn>, AcpError> {
    let Some(a) = body.get("authentication_result").filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let o = object(a, "$.authentication_result")?;
    let outcome = string(o, "outcome", "$.authentication_result", 40)?
        .ok_or_else(|| {
            missing(
                "$.authentication_result.outcome",
                "authentication_result.outcome is required",
            )
        })?
        .to_string();
    let details = o.get("outcome_details").filter(|d| !d.is_null()).cloned();
    if matches!(
        outcome.as_str(),
        "authenticated" | "attempt_acknowledged" | "informational"
    ) {
        let d = details.as_ref().ok_or_else(|| {
            missing(
                "$.authentication_result.outcome_details",
                "outcome_details is required with this outcome",
            )
        })?;
        for key in [
            "three_ds_cryptogram",
            "electronic_commerce_indicator",
            "transaction_id",
            "version",
        ] {
            if !d[key].is_string() {
                return Err(missing(
                    format!("$.authentication_result.outcome_details.{key}"),
                    format!("outcome_details.{key} is required"),
                ));
            }
        }
    }
    Ok(Some(AuthIn { outcome, details }))
}

/// ACP's address as obol's (`name` split into first and last name).
fn address_of(a: &Value, email: Option<&str>) -> Address {
    let name = a["name"].as_str().unwrap_or_default().trim();
    let (first, last) = match name.rsplit_once(' ') {
        Some((f, l)) => (f.trim().to_string(), l.to_string()),
        None => (name.to_string(), name.to_string()),
    };
    let text = |k: &str| {
        a[k].as_str()
            .filter(|s| !s.trim().is_empty())
            .map(str::to_string)
    };
    Address {
        first_name: Some(first).filter(|s| !s.is_empty()),
        last_name: Some(last).filter(|s| !s.is_empty()),
        company: None,
        street: text("line_one"),
        street2: text("line_two"),
        city: text("city"),
        zip: text("postal_code"),
        state: text("state"),
        country: a["country"].as_str().unwrap_or_default().to_string(),
        phone: None,
        email: email.map(str::to_string),
    }
}

/// The card network's directory server for `brand`.
fn directory_server(brand: &str) -> &'static str {
    match brand {
        "mastercard" => "mastercard",
        "amex" | "american_express" => "american_express",
        _ => "visa",
    }
}

async fn complete(
    ctx: &Ctx,
    account: &AccountId,
    id: &str,
    body: &Value,
    pending: &Pending,
) -> std::result::Result<Value, AcpError> {
    let o = object(body, "$")?;
    let payment = parse_payment(o)?;
    let auth = parse_authentication(o)?;
    let buyer = match o.get("buyer") {
        None | Some(Value::Null) => None,
        Some(b) => Some(parse_buyer(b)?),
    };
    let row = load(ctx, account, id).await?;
    if pending.resumed && row.status == "completed" {
        // This key's first request completed the session and died before
        // its answer was stored (see `Pending`): that answer is this.
        return view(ctx, &row).await.map_err(obol);
    }
    if let Some(e) = finished(&row) {
        return Err(e);
    }
    if row.status == "authentication_required" && auth.is_none() {
        return Err(AcpError::new(
            "requires_3ds",
            "This checkout session requires issuer authentication. The request must include 'authentication_result'.",
        )
        .at("$.authentication_result"));
    }
    let now = ctx.now();
    let claimed = {
        let mut h = ctx.store().acquire().await.map_err(obol)?;
        h.conn()
            .claim_acp_completion(account, id, now, now + Duration::seconds(COMPLETION_LEASE))
            .await
            .map_err(obol)?
    };
    if !claimed {
        let row = load(ctx, account, id).await?;
        return Err(finished(&row).unwrap_or_else(busy));
    }
    // The lease is ours: read the session as it is now, and let go of the
    // lease on every way out that does not finish the attempt.
    let result = async {
        let row = load(ctx, account, id).await?;
        let mut cart = cart_of(&row)?;
        if let Some(b) = buyer {
            cart.buyer = Some(b);
            let text = serde_json::to_string(&cart).map_err(|e| obol(Error::internal(e)))?;
            let mut h = ctx.store().acquire().await.map_err(obol)?;
            h.conn()
                .set_acp_cart(&row.id, &text, ctx.now())
                .await
                .map_err(obol)?;
        }
        charge(ctx, account, &row, &cart, &payment, auth.as_ref(), pending).await
    }
    .await;
    if result.is_err() {
        if let Ok(mut h) = ctx.store().acquire().await {
            if let Err(e) = h.conn().release_acp_completion(id).await {
                tracing::error!(session = %id, error = %e, "could not release an ACP completion lease; it lapses by itself");
            }
        }
    }
    result
}

/// How an attempt that did not complete the session leaves it.
/// The attempt's end and the answer (`pending`'s, when given) commit together.
async fn end_attempt(
    ctx: &Ctx,
    row: &AcpSessionRow,
    attempt: AcpAttempt<'_>,
    pending: Option<&Pending>,
) -> std::result::Result<Value, AcpError> {
    let account = AccountId::from_db(row.account_id.clone());
    async {
        let mut tx = ctx.store().begin().await?;
        tx.conn()
            .finish_acp_attempt(&row.id, &attempt, ctx.now())
            .await?;
        let answer = match pending {
            Some(p) => answer_on(ctx, &mut tx.conn(), p, &account, &row.id, 200).await?,
            None => {
                let now_row = tx
                    .conn()
                    .get_acp_session(&account, &row.id)
                    .await?
                    .ok_or_else(|| Error::internal("an ACP session vanished"))?;
                view_on(ctx, &mut tx.conn(), &now_row).await?
            }
        };
        tx.commit().await?;
        Ok::<_, Error>(answer)
    }
    .await
    .map_err(obol)
}

/// A decline: the session stays payable, with a `payment_declined` message.
async fn declined(
    ctx: &Ctx,
    row: &AcpSessionRow,
    why: &str,
    pending: Option<&Pending>,
) -> std::result::Result<Value, AcpError> {
    tracing::info!(session = %row.id, reason = %why, "ACP payment declined");
    end_attempt(
        ctx,
        row,
        AcpAttempt {
            status: "open",
            payment_intent_id: None,
            attempts: row.attempts.saturating_add(1),
            authentication_metadata: None,
            decline_message: Some(why),
        },
        pending,
    )
    .await
}

async fn charge(
    ctx: &Ctx,
    account: &AccountId,
    row: &AcpSessionRow,
    cart: &Cart,
    payment: &PaymentIn,
    auth: Option<&AuthIn>,
    pending: &Pending,
) -> std::result::Result<Value, AcpError> {
    let p = Some(pending);
    let currency = Currency::parse(&row.currency).map_err(|e| obol(e.into()))?;
    let priced = {
        let mut h = ctx.store().acquire().await.map_err(obol)?;
        price(&mut h.conn(), account, cart, currency)
            .await
            .map_err(obol)?
    };
    if priced.errors.iter().any(|e| e["code"] == "out_of_stock") {
        // Sold out since the agent last looked: nothing is charged; the
        // session answers with the spec's `out_of_stock` message.
        return not_in_stock(ctx, row, p).await;
    }
    if let Some(first) = priced.errors.first() {
        return Err(AcpError::new(
            "session_not_ready",
            format!(
                "the checkout session is not ready for payment: {}",
                first["content"].as_str().unwrap_or_default()
            ),
        )
        .at(first["param"].as_str().unwrap_or("$")));
    }
    let amount = Money::new(priced.total, currency)
        .and_then(|m| m.ensure_minimum_charge())
        .map_err(|e| invalid("$.line_items", e.to_string()))?;
    let stripe = ctx.stripe_of(account).await.map_err(obol)?;
    let waiting = match (row.status.as_str(), &row.payment_intent_id) {
        ("authentication_required", Some(pi)) => Some(pi.clone()),
        _ => None,
    };
    let attempt = row.attempts.to_string();
    let recovered = match (row.status.as_str(), &row.payment_intent_id) {
        ("open", Some(pi)) => authorized_earlier(ctx, account, pi, amount, &row.id).await?,
        _ => None,
    };
    let outcome = match (waiting, auth, recovered) {
        // An attempt that Stripe authorized died before its order: the
        // order is created from that authorization, nothing is charged again.
        (_, _, Some(intent)) => Ok(intent),
        (Some(pi), Some(auth), None) => {
            let status = match auth.outcome.as_str() {
                "authenticated" => "Y",
                "attempt_acknowledged" => "A",
                other => {
                    cancel_intent(ctx, account, &pi, &row.id).await;
                    return declined(
                        ctx,
                        row,
                        &format!("The card's authentication did not succeed ({other}); nothing was charged."), p)
                    .await;
                }
            };
            let d = auth.details.clone().unwrap_or(Value::Null);
            let key = "payment_method_options[card][three_d_secure]";
            let s = |k: &str| d[k].as_str().unwrap_or_default().to_string();
            let params = Params::new()
                .set(format!("{key}[ares_trans_status]"), status)
                .set(format!("{key}[cryptogram]"), s("three_ds_cryptogram"))
                .set(
                    format!("{key}[electronic_commerce_indicator]"),
                    s("electronic_commerce_indicator"),
                )
                .set(format!("{key}[transaction_id]"), s("transaction_id"))
                .set(format!("{key}[version]"), s("version"));
            stripe
                .post_json(
                    &format!("/v1/payment_intents/{pi}/confirm"),
                    &params,
                    &IdempotencyKey::for_op("acp-3ds-confirm", &[&row.id, &pi]),
                )
                .await
        }
        _ => {
            // The token is read first: one that cannot cover this total is
            // refused before any intent exists (Stripe refuses too).
            let token = match stripe
                .get_json(
                    &format!("/v1/shared_payment/granted_tokens/{}", payment.token),
                    &Params::new(),
                )
                .await
            {
                Ok(t) => t,
                Err(StripeError::Refused { status: 404, .. }) => {
                    return declined(ctx, row, "The shared payment token is unknown.", p).await
                }
                Err(e) => return Err(obol(e.into())),
            };
            if let Some(why) = token_refusal(&token, amount, ctx.now().timestamp()) {
                return declined(ctx, row, &why, p).await;
            }
            let brand = token["payment_method_details"]["card"]["brand"]
                .as_str()
                .unwrap_or("visa")
                .to_string();
            let params = Params::new()
                .set("amount", amount.to_stripe_amount())
                .set("currency", currency.as_str())
                .set("capture_method", "manual")
                .set("confirm", "true")
                .set("payment_method_types[]", "card")
                .set(
                    "payment_method_data[shared_payment_granted_token]",
                    &payment.token,
                )
                .set("description", format!("Agentic checkout {}", row.id))
                .set("metadata[obol_mode]", "pre_order")
                .set("metadata[obol_acp_session]", &row.id);
            let created = stripe
                .post_json(
                    "/v1/payment_intents",
                    &params,
                    // The total is part of the key: an attempt retried
                    // after a crash gets its intent back, one whose cart
                    // changed meanwhile asks anew (and Stripe refuses the
                    // consumed token if the first had authorized).
                    &IdempotencyKey::for_op(
                        "acp-intent",
                        &[&row.id, &attempt, &amount.minor().to_string()],
                    ),
                )
                .await;
            if let Ok(pi) = &created {
                if pi["status"] == "requires_action" {
                    let metadata = authentication_metadata(ctx, &brand);
                    let text = metadata.to_string();
                    return end_attempt(
                        ctx,
                        row,
                        AcpAttempt {
                            status: "authentication_required",
                            payment_intent_id: pi["id"].as_str(),
                            attempts: row.attempts,
                            authentication_metadata: Some(&text),
                            decline_message: None,
                        },
                        p,
                    )
                    .await;
                }
            }
            created
        }
    };
    let intent = match outcome {
        Ok(pi) => pi,
        Err(StripeError::Refused { status, error }) => {
            let token_refused = error
                .code
                .as_deref()
                .is_some_and(|c| c.starts_with("shared_payment_granted_token"));
            if error.kind == "card_error" || status == 402 || token_refused {
                return declined(ctx, row, &error.message, p).await;
            }
            return Err(obol(StripeError::Refused { status, error }.into()));
        }
        Err(e) => return Err(obol(e.into())),
    };
    let pi = intent["id"].as_str().unwrap_or_default().to_string();
    match intent["status"].as_str() {
        Some("requires_capture" | "succeeded") => {}
        Some("requires_action") => {
            // Still asking after an imported authentication: treat it as
            // failed; the intent is canceled and nothing is charged.
            cancel_intent(ctx, account, &pi, &row.id).await;
            return declined(ctx, row, "The card's authentication was not accepted.", p).await;
        }
        _ => {
            let why = intent["last_payment_error"]["message"]
                .as_str()
                .unwrap_or("The payment was declined.")
                .to_string();
            return declined(ctx, row, &why, p).await;
        }
    }
    {
        let mut h = ctx.store().acquire().await.map_err(obol)?;
        h.conn()
            .set_acp_intent(&row.id, &pi, ctx.now())
            .await
            .map_err(obol)?;
    }
    let email = email_of(cart).unwrap_or_default();
    let shipping = cart
        .fulfillment_details
        .as_ref()
        .and_then(|f| f.get("address"))
        .map(|a| address_of(a, None));
    let billing = payment
        .billing_address
        .as_ref()
        .map(|a| address_of(a, Some(&email)));
    let order_in = OrderIn {
        customer_id: None,
        email,
        currency: Some(currency.as_str().to_string()),
        line_items: Vec::new(),
        shipping: None,
        items: Some(
            priced
                .lines
                .iter()
                .map(|l| CartItemIn {
                    product_id: l.0.clone(),
                    quantity: l.3,
                })
                .collect(),
        ),
        shipping_method_id: priced.selected.as_ref().map(|s| s.0.clone()),
        shipping_address: shipping,
        billing_address: billing,
        total: None,
        payment_reference: Some(pi.clone()),
    };
    // The pay-first checkout of every other path: the order is created
    // confirmed from the authorized intent (and captured per
    // `checkout.capture_on`); its transaction completes the session.
    let actor = Actor::Secret {
        account: account.clone(),
    };
    match orders::create(ctx, &actor, order_in).await {
        Ok(order) => {
            tracing::info!(session = %row.id, order = %order.id, "ACP checkout completed");
            let now_row = load(ctx, account, &row.id).await?;
            view(ctx, &now_row).await.map_err(obol)
        }
        Err(e) => {
            // The authorization must not be kept: nothing is charged.
            tracing::warn!(session = %row.id, error = %e, "ACP order creation failed; releasing the authorization");
            if let Ok(p) = checkout::observe(ctx, account, &intent, "acp complete").await {
                if let Err(r) = checkout::release(ctx, &p, "acp_order_refused").await {
                    tracing::error!(session = %row.id, error = %r, "releasing an ACP authorization failed; the release job retries");
                }
            }
            if e.code() == "insufficient_stock" {
                // Sold out between pricing and the order (another buyer):
                // the authorization is released, the session answers
                // `out_of_stock` like a sold-out session above.
                return not_in_stock(ctx, row, Some(pending)).await;
            }
            let message = format!("The order could not be created: {e}");
            declined(ctx, row, &message, None).await?;
            Err(AcpError::from_obol(&e))
        }
    }
}

/// A complete refused for want of stock: the attempt ends with nothing
/// charged (an intent waiting for 3-D Secure is canceled) and the session
/// answers `not_ready_for_payment` with an `out_of_stock` message per
/// line short of stock (the pricing's).
async fn not_in_stock(
    ctx: &Ctx,
    row: &AcpSessionRow,
    pending: Option<&Pending>,
) -> std::result::Result<Value, AcpError> {
    tracing::info!(session = %row.id, "ACP complete refused: out of stock");
    // An intent waiting for 3-D Secure, or one an earlier attempt had
    // authorized: canceled, so nothing stays held.
    if let Some(pi) = &row.payment_intent_id {
        let account = AccountId::from_db(row.account_id.clone());
        cancel_intent(ctx, &account, pi, &row.id).await;
    }
    end_attempt(
        ctx,
        row,
        AcpAttempt {
            status: "open",
            payment_intent_id: None,
            attempts: row.attempts.saturating_add(1),
            authentication_metadata: None,
            decline_message: None,
        },
        pending,
    )
    .await
}

/// The intent an earlier attempt recorded on an open session (it was
/// authorized, then the attempt died before the order): usable when it
/// still holds `amount`; otherwise it is canceled and `None`.
async fn authorized_earlier(
    ctx: &Ctx,
    account: &AccountId,
    pi: &str,
    amount: Money,
    session: &str,
) -> std::result::Result<Option<Value>, AcpError> {
    let intent = ctx
        .stripe_of(account)
        .await
        .map_err(obol)?
        .get_json(&format!("/v1/payment_intents/{pi}"), &Params::new())
        .await
        .map_err(|e| obol(e.into()))?;
    let held = matches!(
        intent["status"].as_str(),
        Some("requires_capture" | "succeeded")
    );
    if held
        && intent["amount"].as_i64() == Some(amount.minor())
        && intent["currency"].as_str() == Some(amount.currency().as_str())
    {
        tracing::info!(session = %session, intent = %pi, "ACP complete resumes an authorized attempt");
        return Ok(Some(intent));
    }
    if intent["status"] == "requires_capture" {
        cancel_intent(ctx, account, pi, session).await;
    }
    Ok(None)
}

/// Why the token cannot pay `amount` now, if it cannot.
///
/// A `consumed` token is left to Stripe: it may be this session's own
/// attempt that authorized and died before recording its intent, which
/// the attempt's Stripe idempotency key answers again; any other use
/// Stripe refuses (`shared_payment_granted_token_deactivated`).
fn token_refusal(token: &Value, amount: Money, now: i64) -> Option<String> {
    if let Some(reason) = token["deactivated_reason"]
        .as_str()
        .filter(|r| *r != "consumed")
    {
        return Some(format!(
            "The shared payment token is no longer usable ({reason}); nothing was charged."
        ));
    }
    let limits = &token["usage_limits"];
    if let Some(t) = limits["expires_at"].as_i64() {
        if t <= now {
            return Some("The shared payment token has expired; nothing was charged.".into());
        }
    }
    if limits["currency"].as_str() != Some(amount.currency().as_str()) {
        return Some(format!(
            "The shared payment token is for {} payments, this checkout is in {}; nothing was charged.",
            limits["currency"].as_str().unwrap_or("other"),
            amount.currency().as_str()
        ));
    }
    match limits["max_amount"].as_i64() {
        Some(max) if max >= amount.minor() => None,
        Some(max) => Some(format!(
            "The shared payment token allows at most {max}, the total is {}; nothing was charged.",
            amount.minor()
        )),
        None => Some("The shared payment token has no usable limit; nothing was charged.".into()),
    }
}

fn authentication_metadata(ctx: &Ctx, brand: &str) -> Value {
    let s = &ctx.settings().acp;
    json!({
        "acquirer_details": {
            "acquirer_bin": s.acquirer_bin,
            "acquirer_country": s.acquirer_country,
            "acquirer_merchant_id": s.acquirer_merchant_id,
            "merchant_name": s.merchant_name,
        },
        "directory_server": directory_server(brand),
        "flow_preference": {"type": "challenge", "challenge": {"type": "preferred"}},
    })
}

/// `GET /.well-known/acp.json`.
pub fn discovery(ctx: &Ctx) -> Value {
    json!({
        "protocol": {
            "name": "acp",
            "version": acp::API_VERSION,
            "supported_versions": acp::SUPPORTED_VERSIONS,
        },
        "api_base_url": format!("{}/acp", ctx.settings().public_base),
        "transports": ["rest", "mcp"],
        "capabilities": {
            "services": ["checkout", "orders"],
            "intervention_types": ["3ds"],
        }
    })
}
