//! The admin dashboard's own use cases: signing in and out, its sessions
//! and their CSRF tokens, payment search, and the aggregates its plots
//! draw. Everything else the dashboard does goes through the same ops
//! functions as the API (refunds, replays, retries, …) with the actor the
//! session acts as.
//!
//! Rules, and why:
//! - One field signs in with either credential. A secret key (`obol_sk_…`)
//!   is checked first (a hash and constant-time comparisons); anything
//!   else is checked against `admin.password_hash` (argon2, on a blocking
//!   thread: a verification takes tens of milliseconds of CPU).
//! - The password admin runs the deployment: the session acts as the
//!   secret key of the organisation it is switched to (the platform at
//!   first) and may switch to any. A secret key's session stays in the
//!   organisation named at sign-in, as the key would with
//!   `Obol-Organization`: it cannot switch, so someone else's payment is
//!   404 to it like to the API.
//! - The session id is 256 random bits, stored as its SHA-256 only; the
//!   CSRF token is derived from the id (SHA-256 of a label and the id),
//!   so the table holds nothing a reader of the database could replay.
//! - A session ends after `admin.session_idle_minutes` without a request
//!   or `admin.session_max_hours` after sign-in, whichever comes first.

use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::pagination::{self, Cursor, Page};
use super::payments::PaymentOut;
use crate::context::{AccountId, Actor, Ctx};
use crate::error::{Error, Result};
use crate::ids::{SecretToken, TokenHash};
use crate::ledger::PaymentState;
use crate::money::{Currency, Money};
pub use crate::storage::admin::DailyPayments;
use crate::storage::admin::{self as admin_days, AdminSessionRow, PaymentSearch};

/// The dashboard's session cookie.
pub const COOKIE: &str = "obol_admin";

/// How long sessions last (`admin.*`).
#[derive(Debug, Clone, Copy)]
pub struct SessionPolicy {
    pub idle: Duration,
    pub lifetime: Duration,
}

impl SessionPolicy {
    pub fn of(config: &crate::config::AdminSettings) -> Self {
        let minutes = i64::try_from(config.session_idle_minutes).unwrap_or(30);
        let hours = i64::try_from(config.session_max_hours).unwrap_or(12);
        SessionPolicy {
            idle: Duration::minutes(minutes),
            lifetime: Duration::hours(hours),
        }
    }
}

/// Who signed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionKind {
    /// The admin password: every organisation.
    Password,
    /// A secret API key: the organisation named at sign-in only.
    ApiKey,
}

impl SessionKind {
    fn as_str(self) -> &'static str {
        match self {
            SessionKind::Password => "password",
            SessionKind::ApiKey => "api_key",
        }
    }
}

/// A live session.
#[derive(Debug, Clone)]
pub struct Session {
    pub kind: SessionKind,
    /// What the dashboard's ops calls act as.
    pub actor: Actor,
    /// The token every form of this session carries.
    pub csrf: String,
    pub expires_at: DateTime<Utc>,
}

impl Session {
    pub fn account(&self) -> &AccountId {
        self.actor.account()
    }

    /// Whether the session may move to another organisation.
    pub fn may_switch(&self) -> bool {
        self.kind == SessionKind::Password
    }
}

/// What a sign-in hands the browser: the cookie value (shown once).
pub struct SignedIn {
    pub cookie: SecretToken,
    pub session: Session,
}

/// The CSRF token of the session whose cookie is `cookie`.
pub fn csrf_token(cookie: &str) -> String {
    let digest = Sha256::digest(format!("obol-admin-csrf|{cookie}").as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
}

/// Whether `presented` is the CSRF token of `cookie`, in constant time.
pub fn csrf_matches(cookie: &str, presented: &str) -> bool {
    let expected = csrf_token(cookie);
    expected.as_bytes().ct_eq(presented.as_bytes()).into()
}

/// Whether `password` matches the PHC string `hash` (argon2). Runs on a
/// blocking thread.
async fn password_matches(hash: &SecretString, password: &str) -> bool {
    let hash = hash.expose_secret().trim().to_string();
    let password = password.to_string();
    tokio::task::spawn_blocking(move || {
        use argon2::PasswordVerifier;
        argon2::PasswordHash::new(&hash)
            .map(|parsed| {
                argon2::Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            })
            .unwrap_or(false)
    })
    .await
    .unwrap_or(false)
}

/// The argon2id PHC string of `password`, with a fresh salt
/// (`obol admin set-password`).
pub fn hash_password(password: &str) -> Result<String> {
    use argon2::password_hash::{rand_core::OsRng, SaltString};
    use argon2::PasswordHasher;
    let salt = SaltString::generate(&mut OsRng);
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::internal(format!("hashing the password failed: {e}")))
}

/// Signs in with the admin password or a secret key; `organization`
/// (an `org_…` id, or empty for the platform) is where the session
/// starts. A wrong credential is `admin_sign_in_failed`; an unknown
/// organisation `organization_not_found`.
pub async fn sign_in(
    ctx: &Ctx,
    password_hash: Option<&SecretString>,
    api_keys: &[TokenHash],
    presented: &str,
    organization: Option<&str>,
    policy: SessionPolicy,
) -> Result<SignedIn> {
    let presented = presented.trim();
    if presented.is_empty() {
        return Err(Error::AdminSignInFailed);
    }
    let kind = if super::credentials::secret_key(api_keys, presented).is_some() {
        SessionKind::ApiKey
    } else {
        match password_hash {
            Some(hash) if password_matches(hash, presented).await => SessionKind::Password,
            _ => return Err(Error::AdminSignInFailed),
        }
    };
    let account = match organization.map(str::trim).filter(|o| !o.is_empty()) {
        Some(org) => super::organizations::resolve(ctx, org).await?,
        None => AccountId::platform(),
    };
    let cookie = SecretToken::generate("");
    let now = ctx.now();
    let row = AdminSessionRow {
        id_hash: cookie.hash().as_str().to_string(),
        kind: kind.as_str().to_string(),
        account_id: account.as_str().to_string(),
        created_at: now,
        last_seen_at: now,
        expires_at: now + policy.lifetime,
    };
    let mut h = ctx.store().acquire().await?;
    let mut conn = h.conn();
    // Sign-ins are rare: a good moment to forget ended sessions.
    conn.delete_expired_admin_sessions(now, now - policy.idle)
        .await?;
    conn.insert_admin_session(&row).await?;
    let session = Session {
        kind,
        actor: Actor::Secret { account },
        csrf: csrf_token(cookie.expose()),
        expires_at: row.expires_at,
    };
    Ok(SignedIn { cookie, session })
}

/// The live session of `cookie`, marked seen now; an unknown one, or one
/// past either timeout (then deleted), is `admin_session_expired`.
pub async fn session(ctx: &Ctx, cookie: &str, policy: SessionPolicy) -> Result<Session> {
    let hash = TokenHash::of(cookie);
    let now = ctx.now();
    let mut h = ctx.store().acquire().await?;
    let mut conn = h.conn();
    let row = conn
        .get_admin_session(&hash)
        .await?
        .ok_or(Error::AdminSessionExpired)?;
    if row.expires_at <= now || row.last_seen_at + policy.idle <= now {
        conn.delete_admin_session(&hash).await?;
        return Err(Error::AdminSessionExpired);
    }
    conn.touch_admin_session(&hash, now).await?;
    let kind = if row.kind == SessionKind::Password.as_str() {
        SessionKind::Password
    } else {
        SessionKind::ApiKey
    };
    Ok(Session {
        kind,
        actor: Actor::Secret {
            account: AccountId::from_db(row.account_id),
        },
        csrf: csrf_token(cookie),
        expires_at: row.expires_at,
    })
}

/// Ends the session of `cookie` (nothing to do for an unknown one).
pub async fn sign_out(ctx: &Ctx, cookie: &str) -> Result<()> {
    let mut h = ctx.store().acquire().await?;
    h.conn().delete_admin_session(&TokenHash::of(cookie)).await
}

/// Moves the password admin's session to `organization` (an `org_…` id,
/// or empty for the platform). A secret key's session cannot move:
/// `secret_key_required` would be wrong, so it is the organisation that
/// is not found for it.
pub async fn switch_organization(
    ctx: &Ctx,
    session: &Session,
    cookie: &str,
    organization: &str,
) -> Result<AccountId> {
    if !session.may_switch() {
        return Err(Error::NotFound(crate::error::Resource::Organization));
    }
    let account = match organization.trim() {
        "" | AccountId::PLATFORM => AccountId::platform(),
        org => super::organizations::resolve(ctx, org).await?,
    };
    let mut h = ctx.store().acquire().await?;
    h.conn()
        .set_admin_session_account(&TokenHash::of(cookie), account.as_str())
        .await?;
    Ok(account)
}

/// The dashboard's payment list: one search box and filters.
#[derive(Debug, Default, Clone, serde::Deserialize)]
pub struct PaymentQuery {
    /// A payment id (`pay_…`), a PaymentIntent id (`pi_…`), an e-mail, an
    /// order number (`ORD-…`) or an amount: whole minor units (`1250`) or
    /// a decimal in the currency's unit (`12.50`; with `currency` exact,
    /// without it any currency whose decimals fit).
    #[serde(default)]
    pub q: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    /// `yes` or `no`.
    #[serde(default)]
    pub disputed: Option<String>,
    /// `YYYY-MM-DD` (UTC), inclusive.
    #[serde(default)]
    pub from: Option<String>,
    /// `YYYY-MM-DD` (UTC), inclusive.
    #[serde(default)]
    pub to: Option<String>,
    #[serde(default)]
    pub currency: Option<String>,
    #[serde(default)]
    pub cursor: Option<String>,
}

fn day(s: &str, what: &str) -> Result<DateTime<Utc>> {
    chrono::NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|d| d.and_utc())
        .ok_or_else(|| Error::InvalidQuery(format!("{what} is a date like 2026-12-01")))
}

fn non_empty(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// The (amount, currency exponent) pairs a typed amount stands for.
fn amount_candidates(q: &str, currency: Option<Currency>) -> Option<Vec<(i64, Option<u32>)>> {
    let q = q.replace(',', ".");
    if !q.chars().all(|c| c.is_ascii_digit() || c == '.')
        || !q.starts_with(|c: char| c.is_ascii_digit())
    {
        return None;
    }
    if !q.contains('.') {
        return q.parse::<i64>().ok().map(|n| vec![(n, None)]);
    }
    let currencies: Vec<Currency> = match currency {
        Some(c) => vec![c],
        None => [Currency::USD, Currency::KWD, Currency::parse("jpy").ok()?].to_vec(),
    };
    let found: Vec<(i64, Option<u32>)> = currencies
        .into_iter()
        .filter_map(|c| {
            Money::parse_decimal(&q, c)
                .ok()
                .map(|m| (m.minor(), Some(c.exponent())))
        })
        .collect();
    Some(found)
}

/// Payments of the session's account matching `q`, newest first, 50 a
/// page.
pub async fn search_payments(
    ctx: &Ctx,
    actor: &Actor,
    q: &PaymentQuery,
) -> Result<Page<PaymentOut>> {
    actor.require_secret()?;
    let limit = 50;
    let mut search = PaymentSearch {
        limit: limit + 1,
        ..PaymentSearch::default()
    };
    let currency = non_empty(&q.currency)
        .map(|c| Currency::parse(&c.to_ascii_lowercase()))
        .transpose()?;
    search.currency = currency.map(Currency::as_str);
    if let Some(s) = non_empty(&q.status) {
        PaymentState::parse(s)
            .ok_or_else(|| Error::InvalidQuery(format!("status {s:?} is not a payment state")))?;
        search.status = Some(s);
    }
    search.disputed = match non_empty(&q.disputed) {
        Some("yes") => Some(true),
        Some("no") => Some(false),
        None => None,
        Some(_) => return Err(Error::InvalidQuery("disputed is yes or no".into())),
    };
    if let Some(f) = non_empty(&q.from) {
        search.created_gte = Some(day(f, "from")?);
    }
    if let Some(t) = non_empty(&q.to) {
        search.created_lt = Some(day(t, "to")? + Duration::days(1));
    }
    search.before = q
        .cursor
        .as_deref()
        .filter(|c| !c.is_empty())
        .map(Cursor::decode)
        .transpose()?
        .map(|c| (c.at, c.id));
    let mut exponents: Vec<(i64, Option<u32>)> = Vec::new();
    let text = non_empty(&q.q);
    let upper = text.map(str::to_ascii_uppercase);
    match text {
        None => {}
        Some(t) if t.starts_with("pay_") => search.id = Some(t),
        Some(t) if t.starts_with("pi_") => search.intent_id = Some(t),
        Some(t) if t.contains('@') => search.email = Some(t),
        Some(_) if upper.as_deref().is_some_and(|u| u.starts_with("ORD-")) => {
            search.order_number = upper.as_deref();
        }
        Some(t) => {
            match amount_candidates(t, currency) {
                Some(found) if !found.is_empty() => {
                    search.amounts = found.iter().map(|(a, _)| *a).take(3).collect();
                    exponents = found;
                }
                _ => return Err(Error::InvalidQuery(
                    "search for a payment id (pay_…), an intent id (pi_…), an e-mail, an order \
                     number (ORD-…) or an amount"
                        .into(),
                )),
            }
        }
    }
    let mut h = ctx.store().acquire().await?;
    let mut conn = h.conn();
    let rows = conn.search_payments(actor.account(), &search).await?;
    let mut page = Page::from_rows(rows, limit, |r| Cursor {
        at: r.created_at,
        id: r.id.clone(),
    });
    // A decimal typed without a currency matched amounts of every
    // exponent: keep the rows whose currency has the exponent the amount
    // was read with. (The cursor stays that of the last row read.)
    if exponents.iter().any(|(_, e)| e.is_some()) {
        page.data.retain(|r| {
            let exp = Currency::parse(&r.currency).map(Currency::exponent).ok();
            exponents
                .iter()
                .any(|(a, e)| *a == r.amount && (e.is_none() || *e == exp))
        });
    }
    Ok(page.map(PaymentOut::from))
}

/// Payments per UTC day, status and currency over the last `days` days.
/// Days that ended over an hour ago are summed once and kept
/// (`payment_day_totals`) until a payment of theirs changes; the rest
/// (today, and yesterday in the first hour of a day, while a transaction
/// begun before midnight may still commit) are summed on each call.
pub async fn payments_per_day(ctx: &Ctx, actor: &Actor, days: i64) -> Result<Vec<DailyPayments>> {
    actor.require_secret()?;
    let now = ctx.now();
    let start_of = |d: chrono::NaiveDate| d.and_hms_opt(0, 0, 0).map(|t| t.and_utc());
    let first = (now - Duration::days(days.clamp(1, 366))).date_naive();
    let live_from = (now - Duration::hours(1)).date_naive();
    let (Some(since), Some(live_since)) = (start_of(first), start_of(live_from)) else {
        return Ok(Vec::new());
    };
    let account = actor.account();
    let (from_day, live_day) = (admin_days::day_of(since), admin_days::day_of(live_since));
    let mut h = ctx.store().acquire().await?;
    let mut cached = h
        .conn()
        .cached_payment_days(account, &from_day, &live_day)
        .await?;
    // The closed days not cached (or changed since): summed from the
    // first of them to the live part, and kept.
    let mut missing = Vec::new();
    let mut d = first;
    while d < live_from {
        let day = admin_days::day_of(start_of(d).unwrap_or(since));
        if !cached.contains_key(&day) {
            missing.push(d);
        }
        d = d.succ_opt().unwrap_or(live_from);
    }
    if let Some(lo) = missing.first().and_then(|d| start_of(*d)) {
        let (totals, versions) = h
            .conn()
            .sum_payments_per_day(account, lo, live_since)
            .await?;
        let keep: Vec<(String, i64)> = missing
            .iter()
            .filter_map(|d| start_of(*d))
            .map(admin_days::day_of)
            .map(|day| {
                let v = versions.get(&day).copied().unwrap_or(0);
                (day, v)
            })
            .collect();
        for (day, _) in &keep {
            cached.insert(
                day.clone(),
                totals.iter().filter(|t| t.day == *day).cloned().collect(),
            );
        }
        drop(h);
        // The plot is drawn whether or not the totals could be kept.
        let kept = async {
            let mut tx = ctx.store().begin().await?;
            tx.conn()
                .cache_payment_days(account, &keep, &totals)
                .await?;
            tx.commit().await
        };
        if let Err(e) = kept.await {
            tracing::warn!(error = %e, "could not keep the payments-per-day totals");
        }
        h = ctx.store().acquire().await?;
    }
    let (live, _) = h
        .conn()
        .sum_payments_per_day(account, live_since, now + Duration::days(1))
        .await?;
    let mut out: Vec<DailyPayments> = cached.into_values().flatten().collect();
    out.extend(live);
    out.sort_by(|a, b| (&a.day, &a.status, &a.currency).cmp(&(&b.day, &b.status, &b.currency)));
    Ok(out)
}

/// The stored event as Stripe sent it (pretty-printed JSON), with the same
/// scope as `ops::webhook_events::get`: the platform sees every account's
/// events, an organisation its own.
pub async fn raw_webhook_event(ctx: &Ctx, actor: &Actor, id: &str) -> Result<String> {
    let not_found = || Error::NotFound(crate::error::Resource::WebhookEvent);
    let id = crate::ids::WebhookEventId::parse(id).map_err(|_| not_found())?;
    actor.require_secret()?;
    let scope = (!actor.account().is_platform()).then(|| actor.account());
    let mut h = ctx.store().acquire().await?;
    let row = h
        .conn()
        .get_webhook_event(scope, id.as_str())
        .await?
        .ok_or_else(not_found)?;
    Ok(serde_json::from_str::<serde_json::Value>(&row.payload)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or(row.payload))
}

/// Page sizes of the dashboard's other lists.
pub const LIST_LIMIT: i64 = pagination::MAX_LIMIT;

fn cursor_of(c: &Option<String>) -> Result<Option<(DateTime<Utc>, String)>> {
    Ok(non_empty(c)
        .map(Cursor::decode)
        .transpose()?
        .map(|c| (c.at, c.id)))
}

/// A search box, a status and a cursor: the dashboard's other lists.
#[derive(Debug, Default, Clone, serde::Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    pub q: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub cursor: Option<String>,
    /// The notifications page: whose deliveries to show.
    #[serde(default)]
    pub endpoint: Option<String>,
    #[serde(default)]
    pub notice: Option<String>,
}

impl ListQuery {
    /// The status filter, when one is chosen.
    pub fn status(&self) -> Option<String> {
        non_empty(&self.status).map(str::to_string)
    }

    /// The cursor, when there is one.
    pub fn cursor(&self) -> Option<String> {
        non_empty(&self.cursor).map(str::to_string)
    }
}

/// Orders of the session's account, newest first, 50 a page: by order
/// number (`ORD-…`) or by the order's or its customer's e-mail, and by
/// status.
pub async fn search_orders(
    ctx: &Ctx,
    actor: &Actor,
    q: &ListQuery,
) -> Result<Page<super::orders::OrderOut>> {
    actor.require_secret()?;
    let limit = 50;
    let status = non_empty(&q.status);
    if let Some(s) = status {
        crate::ledger::order::OrderStatus::parse(s)
            .ok_or_else(|| Error::InvalidQuery(format!("status {s:?} is not an order status")))?;
    }
    let text = non_empty(&q.q);
    let upper = text.map(str::to_ascii_uppercase);
    let mut search = crate::storage::admin::OrderSearch {
        status,
        before: cursor_of(&q.cursor)?,
        limit: limit + 1,
        ..Default::default()
    };
    match text {
        None => {}
        Some(t) if t.contains('@') => search.email = Some(t),
        Some(_) if upper.as_deref().is_some_and(|u| u.starts_with("ORD-")) => {
            search.number = upper.as_deref();
        }
        Some(_) => {
            return Err(Error::InvalidQuery(
                "search for an order number (ORD-…) or an e-mail".into(),
            ))
        }
    }
    let mut h = ctx.store().acquire().await?;
    let rows = h.conn().search_orders(actor.account(), &search).await?;
    let page = Page::from_rows(rows, limit, |r| Cursor {
        at: r.created_at,
        id: r.id.clone(),
    });
    let data = page
        .data
        .into_iter()
        .map(|o| super::orders::order_out(o, Vec::new(), None, None))
        .collect::<Result<Vec<_>>>()?;
    Ok(Page {
        data,
        has_more: page.has_more,
        next_cursor: page.next_cursor,
    })
}

/// One order for the dashboard: the order with its timeline, and its
/// payments with their refunds.
pub struct OrderDetail {
    pub order: super::orders::OrderOut,
    pub payments: Vec<(PaymentOut, Vec<super::refunds::RefundOut>)>,
}

pub async fn order_detail(ctx: &Ctx, actor: &Actor, id: &str) -> Result<OrderDetail> {
    let order = super::orders::get(ctx, actor, id).await?;
    let payments = super::payments::list(
        ctx,
        actor,
        super::payments::ListPayments {
            order_id: Some(order.id.clone()),
            limit: Some(LIST_LIMIT),
            ..Default::default()
        },
    )
    .await?;
    let mut out = Vec::with_capacity(payments.data.len());
    for p in payments.data {
        let refunds = super::payments::list_refunds(ctx, actor, &p.id).await?.data;
        out.push((p, refunds));
    }
    Ok(OrderDetail {
        order,
        payments: out,
    })
}

/// Customers of the session's account, newest first, 50 a page: by
/// e-mail (exact, any case) or by the start of the name.
pub async fn search_customers(
    ctx: &Ctx,
    actor: &Actor,
    q: &ListQuery,
) -> Result<Page<super::customers::CustomerOut>> {
    actor.require_secret()?;
    let limit = 50;
    let text = non_empty(&q.q);
    let mut search = crate::storage::admin::CustomerSearch {
        before: cursor_of(&q.cursor)?,
        limit: limit + 1,
        ..Default::default()
    };
    match text {
        None => {}
        Some(t) if t.contains('@') => search.email = Some(t),
        Some(t) => search.name_prefix = Some(t),
    }
    let mut h = ctx.store().acquire().await?;
    let rows = h.conn().search_customers(actor.account(), &search).await?;
    Ok(Page::from_rows(rows, limit, |r| Cursor {
        at: r.created_at,
        id: r.id.clone(),
    })
    .map(super::customers::CustomerOut::from))
}

/// One customer for the dashboard: saved cards, payments, subscriptions
/// (recurring gifts and plans) and scheduled payments.
pub struct CustomerDetail {
    pub customer: super::customers::CustomerOut,
    /// The saved cards, or why they could not be read (Stripe is asked
    /// when obol's copy is incomplete).
    pub cards: std::result::Result<Vec<super::payment_methods::CardOut>, Error>,
    pub payments: Page<PaymentOut>,
    pub subscriptions: Vec<crate::billing::views::SubscriptionOut>,
    pub scheduled: Vec<super::scheduled_payments::ScheduledPaymentOut>,
}

pub async fn customer_detail(ctx: &Ctx, actor: &Actor, id: &str) -> Result<CustomerDetail> {
    let customer = super::customers::get(ctx, actor, id).await?;
    let cards = super::payment_methods::list(ctx, actor, &customer.id)
        .await
        .map(|l| l.data);
    let payments = super::payments::list(
        ctx,
        actor,
        super::payments::ListPayments {
            customer_id: Some(customer.id.clone()),
            limit: Some(LIST_LIMIT),
            ..Default::default()
        },
    )
    .await?;
    let subscriptions = super::subscriptions::list(
        ctx,
        actor,
        super::subscriptions::ListQuery {
            customer: Some(customer.id.clone()),
            status: None,
            limit: Some(LIST_LIMIT),
            cursor: None,
        },
    )
    .await?
    .data;
    let scheduled = super::scheduled_payments::list(
        ctx,
        actor,
        super::scheduled_payments::ListQuery {
            customer: Some(customer.id.clone()),
            limit: Some(LIST_LIMIT),
            cursor: None,
        },
    )
    .await?
    .data;
    Ok(CustomerDetail {
        customer,
        cards,
        payments,
        subscriptions,
        scheduled,
    })
}

/// One dispute with its timeline and the tasks it opened.
pub async fn dispute_detail(
    ctx: &Ctx,
    actor: &Actor,
    id: &str,
) -> Result<(super::disputes::DisputeOut, Vec<super::disputes::TaskOut>)> {
    let dispute = super::disputes::get(ctx, actor, id).await?;
    let mut h = ctx.store().acquire().await?;
    let tasks = h
        .conn()
        .list_tasks_about(actor.account(), &dispute.id)
        .await?
        .into_iter()
        .map(super::disputes::TaskOut::from)
        .collect();
    Ok((dispute, tasks))
}

/// The inbox lag at one minute: how old the oldest event waiting to be
/// applied was then (seconds from Stripe creating it), 0 when none was.
#[derive(Debug, Clone, PartialEq)]
pub struct LagPoint {
    pub at: DateTime<Utc>,
    pub seconds: i64,
}

/// Inbox lag per minute over the last hour (the `obol_inbox_lag_seconds`
/// gauge, drawn back in time), with the scope of the inbox list: the
/// platform sees every account's events, an organisation its own.
pub async fn webhook_lag(ctx: &Ctx, actor: &Actor) -> Result<Vec<LagPoint>> {
    actor.require_secret()?;
    let now = ctx.now();
    let since = now - Duration::hours(1);
    let scope = (!actor.account().is_platform()).then(|| actor.account());
    let mut h = ctx.store().acquire().await?;
    let events = h.conn().webhook_event_timings(scope, since, 20_000).await?;
    Ok(lag_per_minute(&events, now))
}

/// The 61 minutes ending at `now`: at each, the oldest event received by
/// then and not yet applied.
pub fn lag_per_minute(
    events: &[crate::storage::admin::EventTiming],
    now: DateTime<Utc>,
) -> Vec<LagPoint> {
    (0..=60)
        .rev()
        .map(|m| {
            let at = now - Duration::minutes(m);
            let oldest = events
                .iter()
                .filter(|e| e.received_at <= at)
                .filter(|e| match e.applied_at {
                    Some(a) => a > at,
                    None => matches!(e.status.as_str(), "received" | "failed"),
                })
                .map(|e| e.stripe_created)
                .min();
            LagPoint {
                at,
                seconds: oldest.map_or(0, |c| (at.timestamp() - c).max(0)),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lag_is_the_age_of_the_oldest_waiting_event_at_each_minute() {
        use crate::storage::admin::EventTiming;
        let now = Utc::now();
        let at = |m: i64| now - Duration::minutes(m);
        let ev =
            |received: DateTime<Utc>, applied: Option<DateTime<Utc>>, status: &str| EventTiming {
                received_at: received,
                stripe_created: received.timestamp(),
                applied_at: applied,
                status: status.into(),
            };
        let events = vec![
            ev(at(30), Some(at(20)), "applied"),
            ev(at(5), None, "failed"),
            ev(at(50), None, "ignored"),
        ];
        let lag = lag_per_minute(&events, now);
        assert_eq!(lag.len(), 61);
        let minute = |m: usize| lag[60 - m].seconds;
        assert_eq!(minute(40), 0, "an ignored event waits for nothing");
        assert_eq!(minute(25), 300, "waiting since 30 minutes ago");
        assert_eq!(minute(20), 0, "applied then");
        assert_eq!(minute(10), 0);
        assert_eq!(minute(0), 300, "the failed one, still waiting");
    }

    #[test]
    fn the_csrf_token_belongs_to_its_session_only() {
        let a = csrf_token("cookie-a");
        assert!(csrf_matches("cookie-a", &a));
        assert!(!csrf_matches("cookie-b", &a));
        assert!(!csrf_matches("cookie-a", ""));
        assert!(!csrf_matches("cookie-a", &a[..a.len() - 1]));
    }

    #[test]
    fn typed_amounts_read_per_currency() {
        assert_eq!(amount_candidates("1250", None), Some(vec![(1250, None)]));
        let any = amount_candidates("12.50", None).unwrap();
        assert!(any.contains(&(1250, Some(2))), "{any:?}");
        assert!(any.contains(&(12500, Some(3))), "{any:?}");
        // JPY has no decimals: 12.50 is no yen amount.
        assert!(!any.iter().any(|(_, e)| *e == Some(0)), "{any:?}");
        assert_eq!(
            amount_candidates("1.230", Some(Currency::KWD)),
            Some(vec![(1230, Some(3))])
        );
        assert_eq!(amount_candidates("abc", None), None);
    }

    #[test]
    fn a_password_hash_verifies_only_its_password() {
        let hash = hash_password("correct horse").unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let secret = SecretString::from(hash);
        assert!(rt.block_on(password_matches(&secret, "correct horse")));
        assert!(!rt.block_on(password_matches(&secret, "correct horse ")));
    }
}
