//! Invoices paid through a public link: create (draft), process (payable;
//! freezes the fee), void, and the public side: the payment intent a
//! customer pays with, and what the hosted page shows. Creating and
//! processing each mint a link token (32 random bytes, stored hashed) and
//! answer its `payment_url`; every link opens the invoice until it is
//! void, and the page says what state it is in (a draft's link shows "not
//! issued yet" and cannot pay).
//!
//! Exactly one live PaymentIntent per invoice (a partial unique index on
//! `invoice_attempts`): asking again returns it while Stripe can still
//! confirm it, and replaces it (canceled at Stripe, on the timeline) when
//! it cannot. `sweep_stale` settles intents left incomplete for longer
//! than `invoices.stale_intent_seconds`. What a payment does to the
//! invoice is written by `crate::invoices` in the payment's transaction.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::checkout;
use super::fees::{self, FeeSource};
use super::pagination::{self, Cursor, Page};
use crate::context::{AccountId, Actor, Ctx};
use crate::error::{Error, Resource, Result, RuleCode};
use crate::ids::{CustomerId, InvoiceAttemptId, InvoiceId, SecretToken, TokenHash};
use crate::invoices::OPEN;
use crate::ledger::invoice::{self, InvoiceInput, InvoiceStatus};
use crate::money::{Currency, Money, MoneyError};
use crate::payments::Cause;
use crate::storage::invoices::{AttemptRow, FeeColumns, InvoiceRow, NewInvoiceEntry};
use crate::stripe::{IdempotencyKey, Params, StripeError};

/// At most this many lines on one invoice.
const MAX_LINES: usize = 100;

/// One line as the host sends it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InvoiceLineIn {
    /// 1–500 characters.
    pub description: String,
    /// Minor units, positive (a multiple of 10 in three-decimal currencies).
    pub unit_amount: i64,
    /// 1–10000.
    pub quantity: i64,
}

/// Body of `POST /v1/invoices`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InvoiceIn {
    #[schema(value_type = crate::ids::CustomerId)]
    pub customer_id: String,
    #[schema(value_type = Currency)]
    pub currency: String,
    pub line_items: Vec<InvoiceLineIn>,
    /// `YYYY-MM-DD`.
    #[schema(value_type = String, format = Date, example = "2026-12-31")]
    pub due_date: String,
    /// The invoice number people see (unique per account, 1–64 of
    /// `A-Z a-z 0-9 - _ / .`); default `INV-YYYYMMDD-XXXXX`.
    pub number: Option<String>,
    /// A note shown on the invoice (at most 2000 characters).
    pub memo: Option<String>,
    /// Pass the card fee on to the customer as a separate line.
    #[serde(default)]
    pub pass_fees: bool,
}

/// One line of an invoice.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct InvoiceLineOut {
    pub description: String,
    /// Minor units.
    pub unit_amount: i64,
    pub quantity: i64,
    /// `unit_amount × quantity`, minor units.
    pub amount: i64,
}

/// The fee line and the rate it came from.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FeeOut {
    /// The fee line, minor units (part of `total`).
    pub amount: i64,
    pub percent_bps: u32,
    /// The fixed part in the invoice's currency, minor units.
    pub fixed: i64,
    pub source: FeeSource,
}

/// An invoice.
#[derive(Debug, Serialize, ToSchema)]
pub struct InvoiceOut {
    #[schema(value_type = crate::ids::InvoiceId)]
    pub id: String,
    pub status: InvoiceStatus,
    pub number: String,
    #[schema(value_type = crate::ids::CustomerId)]
    pub customer_id: String,
    #[schema(value_type = Currency)]
    pub currency: String,
    pub line_items: Vec<InvoiceLineOut>,
    /// Sum of the lines, minor units.
    pub subtotal: i64,
    /// The fee line, when `pass_fees`; a draft shows the rate in effect
    /// now, processing freezes it.
    pub fee: Option<FeeOut>,
    /// What the customer pays: subtotal plus fee, minor units.
    pub total: i64,
    pub amount_paid: i64,
    /// `total − amount_paid`.
    pub amount_due: i64,
    pub pass_fees: bool,
    /// `YYYY-MM-DD`.
    pub due_date: String,
    pub memo: Option<String>,
    /// The hosted page to send the customer: in the answers of create and
    /// process only (its token is stored hashed); each mints a new link,
    /// and every link stays valid.
    pub payment_url: Option<String>,
    pub created_at: DateTime<Utc>,
    pub processed_at: Option<DateTime<Utc>>,
    pub paid_at: Option<DateTime<Utc>>,
    pub voided_at: Option<DateTime<Utc>>,
    /// Every change and note, oldest first (on `GET /v1/invoices/{id}`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeline: Option<Vec<InvoiceEntryOut>>,
    /// Every PaymentIntent made for it (on `GET /v1/invoices/{id}`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payment_attempts: Option<Vec<AttemptOut>>,
}

/// An entry of an invoice's timeline.
#[derive(Debug, Serialize, ToSchema)]
pub struct InvoiceEntryOut {
    pub at: DateTime<Utc>,
    pub from: Option<InvoiceStatus>,
    pub to: InvoiceStatus,
    /// What happened, in words.
    pub note: Option<String>,
    /// api, webhook, reconcile or job.
    pub cause: String,
    /// The Stripe event, request or job behind it.
    pub cause_ref: Option<String>,
}

/// A PaymentIntent made for an invoice.
#[derive(Debug, Serialize, ToSchema)]
pub struct AttemptOut {
    /// Stripe's `pi_…`.
    pub payment_intent_id: String,
    pub amount: i64,
    pub fee_amount: i64,
    /// open (the live one), succeeded or void.
    pub status: String,
    pub void_reason: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only invoices in this status.
    #[param(value_type = Option<InvoiceStatus>)]
    pub status: Option<String>,
    /// Only this customer's invoices (`customer` works too).
    #[serde(alias = "customer")]
    #[param(value_type = Option<crate::ids::CustomerId>)]
    pub customer_id: Option<String>,
    /// Page size, 1–100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// The intent a customer pays an invoice with.
#[derive(Debug, Serialize, ToSchema)]
pub struct InvoiceIntentOut {
    /// Stripe's `pi_…`.
    pub id: String,
    /// What Stripe.js confirms the payment with.
    pub client_secret: Option<String>,
    pub publishable_key: String,
    /// The invoice's total, minor units.
    pub amount: i64,
    #[schema(value_type = Currency)]
    pub currency: String,
    #[schema(value_type = crate::ops::checkout::StripeIntentStatus)]
    pub status: String,
    #[schema(value_type = crate::ids::InvoiceId)]
    pub invoice_id: String,
    /// `false`: the invoice's live intent was returned.
    pub created: bool,
}

/// What the hosted page and its script may see: no customer details
/// beyond what the invoice prints.
#[derive(Debug, Serialize, ToSchema)]
pub struct PublicInvoiceOut {
    pub number: String,
    pub status: InvoiceStatus,
    /// The business that sent it.
    pub business_name: Option<String>,
    #[schema(value_type = Currency)]
    pub currency: String,
    pub line_items: Vec<InvoiceLineOut>,
    pub subtotal: i64,
    /// The fee line, if the business passes the card fee on.
    pub fee: Option<FeeOut>,
    pub total: i64,
    pub amount_paid: i64,
    pub amount_due: i64,
    pub due_date: String,
    pub memo: Option<String>,
    pub paid_at: Option<DateTime<Utc>>,
    /// Whether it can be paid now.
    pub payable: bool,
}

fn parse_id(id: &str) -> Result<InvoiceId> {
    InvoiceId::parse(id).map_err(|_| Error::NotFound(Resource::Invoice))
}

fn lines_of(row: &InvoiceRow) -> Vec<InvoiceLineOut> {
    serde_json::from_str(&row.line_items).unwrap_or_default()
}

fn fee_of(row: &InvoiceRow) -> Option<FeeOut> {
    match (row.fee_amount, row.fee_percent_bps, row.fee_fixed) {
        (Some(amount), Some(bps), Some(fixed)) if row.pass_fees => Some(FeeOut {
            amount,
            percent_bps: u32::try_from(bps).unwrap_or(0),
            fixed,
            source: FeeSource::parse(row.fee_source.as_deref().unwrap_or("default")),
        }),
        _ => None,
    }
}

impl From<InvoiceRow> for InvoiceOut {
    fn from(r: InvoiceRow) -> Self {
        InvoiceOut {
            line_items: lines_of(&r),
            fee: fee_of(&r),
            amount_due: r.total - r.amount_paid,
            id: r.id,
            status: r.status,
            number: r.number,
            customer_id: r.customer_id,
            currency: r.currency,
            subtotal: r.subtotal,
            total: r.total,
            amount_paid: r.amount_paid,
            pass_fees: r.pass_fees,
            due_date: r.due_date,
            memo: r.memo,
            payment_url: None,
            created_at: r.created_at,
            processed_at: r.processed_at,
            paid_at: r.paid_at,
            voided_at: r.voided_at,
            timeline: None,
            payment_attempts: None,
        }
    }
}

/// The fee on `subtotal` at the account's rate now, grossed up.
async fn fee_now(ctx: &Ctx, account: &AccountId, subtotal: Money) -> Result<FeeOut> {
    let (rate, source, _) = {
        let mut h = ctx.store().acquire().await?;
        fees::effective(ctx, &mut h.conn(), account).await?
    };
    let schedule = rate.schedule_for(subtotal.currency());
    let fee = schedule.gross_up(&subtotal)?;
    Ok(FeeOut {
        amount: fee.minor(),
        percent_bps: schedule.percent_bps,
        fixed: schedule.fixed_minor,
        source,
    })
}

/// A total Stripe will charge: at most 8 digits, Stripe's precision and
/// minimum for the currency.
fn chargeable(total: i64, currency: Currency) -> Result<Money> {
    Ok(Money::balance(total, currency)?
        .ensure_chargeable()?
        .ensure_minimum_charge()?)
}

fn valid_number(n: &str) -> Result<String> {
    let n = crate::validate::text("number", n, 64)?;
    if !n
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '/' | '.'))
    {
        return Err(Error::rule(
            RuleCode::FieldInvalid,
            "number may use only letters, digits and - _ / .",
        ));
    }
    Ok(n.to_string())
}

pub async fn create(ctx: &Ctx, actor: &Actor, body: InvoiceIn) -> Result<InvoiceOut> {
    actor.require_secret()?;
    let account = actor.account();
    let customer_id =
        CustomerId::parse(&body.customer_id).map_err(|_| Error::NotFound(Resource::Customer))?;
    let currency = Currency::parse(&body.currency)?;
    if body.line_items.is_empty() || body.line_items.len() > MAX_LINES {
        return Err(Error::rule(
            RuleCode::InvalidLineItems,
            format!("an invoice has 1 to {MAX_LINES} line items"),
        ));
    }
    let mut lines = Vec::with_capacity(body.line_items.len());
    let mut subtotal = Money::zero(currency);
    for (i, l) in body.line_items.iter().enumerate() {
        let description =
            crate::validate::text(&format!("line_items[{i}].description"), &l.description, 500)?;
        let unit = Money::new(l.unit_amount, currency)?;
        if !(1..=10_000).contains(&l.quantity) {
            return Err(Error::rule(
                RuleCode::InvalidQuantity,
                format!("line_items[{i}].quantity must be between 1 and 10000"),
            ));
        }
        let amount = unit
            .minor()
            .checked_mul(l.quantity)
            .ok_or(MoneyError::TooLarge)?;
        subtotal = subtotal.checked_add(Money::balance(amount, currency)?)?;
        lines.push(InvoiceLineOut {
            description: description.to_string(),
            unit_amount: unit.minor(),
            quantity: l.quantity,
            amount,
        });
    }
    let due = NaiveDate::parse_from_str(body.due_date.trim(), "%Y-%m-%d").map_err(|_| {
        Error::rule(
            RuleCode::FieldInvalid,
            format!(
                "due_date {:?} is not a date of the form YYYY-MM-DD",
                body.due_date
            ),
        )
    })?;
    let memo = match body.memo.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(m) if m.chars().count() > 2000 => {
            return Err(Error::rule(
                RuleCode::FieldTooLong,
                "memo must be at most 2000 characters",
            ))
        }
        Some(m) => Some(m.to_string()),
    };
    let now = ctx.now();
    let number = match body.number.as_deref() {
        Some(n) => valid_number(n)?,
        None => super::orders::human_number("INV", now),
    };
    {
        let mut h = ctx.store().acquire().await?;
        h.conn()
            .get_customer(account, &customer_id)
            .await?
            .ok_or(Error::NotFound(Resource::Customer))?;
    }
    let fee = if body.pass_fees {
        Some(fee_now(ctx, account, subtotal).await?)
    } else {
        None
    };
    let total = subtotal.minor() + fee.as_ref().map_or(0, |f| f.amount);
    chargeable(total, currency)?;
    let row = InvoiceRow {
        id: InvoiceId::generate().into(),
        account_id: account.as_str().to_string(),
        customer_id: customer_id.as_str().to_string(),
        number,
        status: InvoiceStatus::Draft,
        currency: currency.as_str().to_string(),
        line_items: serde_json::to_string(&lines).map_err(Error::internal)?,
        subtotal: subtotal.minor(),
        pass_fees: body.pass_fees,
        fee_amount: fee.as_ref().map(|f| f.amount),
        fee_percent_bps: fee
            .as_ref()
            .map(|f| i32::try_from(f.percent_bps).unwrap_or(0)),
        fee_fixed: fee.as_ref().map(|f| f.fixed),
        fee_source: fee.as_ref().map(|f| f.source.as_str().to_string()),
        total,
        amount_paid: 0,
        fee_paid: 0,
        due_date: due.format("%Y-%m-%d").to_string(),
        memo,
        created_at: now,
        updated_at: now,
        processed_at: None,
        paid_at: None,
        voided_at: None,
    };
    let mut tx = ctx.store().begin().await?;
    let row = match tx.conn().insert_invoice(&row).await {
        Ok(r) => r,
        Err(Error::Database(e)) if crate::storage::is_unique_violation(&e) => {
            return Err(Error::rule(
                RuleCode::InvoiceNumberTaken,
                format!("an invoice numbered {:?} exists already", row.number),
            ))
        }
        Err(e) => return Err(e),
    };
    tx.conn()
        .insert_invoice_entry(&NewInvoiceEntry {
            invoice: &row,
            from: None,
            to: InvoiceStatus::Draft,
            note: None,
            at: now,
            cause_kind: "api",
            cause_ref: Some("POST /v1/invoices"),
        })
        .await?;
    let token = SecretToken::generate("");
    tx.conn()
        .insert_invoice_link(&row, token.hash().as_str(), now)
        .await?;
    tx.commit().await?;
    tracing::info!(invoice = %row.id, number = %row.number, total, "invoice created");
    let mut out = InvoiceOut::from(row);
    out.payment_url = Some(payment_url(ctx, &token));
    Ok(out)
}

fn payment_url(ctx: &Ctx, token: &SecretToken) -> String {
    format!(
        "{}/pay/invoices/{}",
        ctx.settings().public_base,
        token.expose()
    )
}

async fn load(ctx: &Ctx, actor: &Actor, id: &str) -> Result<InvoiceRow> {
    actor.require_secret()?;
    let id = parse_id(id)?;
    let mut h = ctx.store().acquire().await?;
    h.conn()
        .get_invoice(actor.account(), id.as_str())
        .await?
        .ok_or(Error::NotFound(Resource::Invoice))
}

/// One invoice with its timeline and payment attempts.
pub async fn get(ctx: &Ctx, actor: &Actor, id: &str) -> Result<InvoiceOut> {
    let row = load(ctx, actor, id).await?;
    let mut h = ctx.store().acquire().await?;
    let mut conn = h.conn();
    let timeline = conn.list_invoice_timeline(&row.id).await?;
    let attempts = conn.list_invoice_attempts(&row.id).await?;
    let mut out = InvoiceOut::from(row);
    out.timeline = Some(
        timeline
            .into_iter()
            .map(|e| InvoiceEntryOut {
                at: e.at,
                from: e.from_status.as_deref().and_then(InvoiceStatus::parse),
                to: InvoiceStatus::parse(&e.to_status).unwrap_or(InvoiceStatus::Draft),
                note: e.note,
                cause: e.cause_kind,
                cause_ref: e.cause_ref,
            })
            .collect(),
    );
    out.payment_attempts = Some(attempts.into_iter().map(attempt_out).collect());
    Ok(out)
}

fn attempt_out(a: AttemptRow) -> AttemptOut {
    AttemptOut {
        payment_intent_id: a.stripe_payment_intent_id,
        amount: a.amount,
        fee_amount: a.fee_amount,
        status: a.status,
        void_reason: a.void_reason,
        created_at: a.created_at,
    }
}

pub async fn list(ctx: &Ctx, actor: &Actor, q: ListQuery) -> Result<Page<InvoiceOut>> {
    actor.require_secret()?;
    let status = q
        .status
        .as_deref()
        .map(|s| {
            InvoiceStatus::parse(s).ok_or_else(|| {
                Error::InvalidQuery(
                    "status is draft, processed, partially_paid, paid or void".into(),
                )
            })
        })
        .transpose()?;
    let limit = pagination::limit(q.limit)?;
    let before = q.cursor.as_deref().map(Cursor::decode).transpose()?;
    let mut h = ctx.store().acquire().await?;
    let rows = h
        .conn()
        .list_invoices(
            actor.account(),
            status.map(InvoiceStatus::as_str),
            q.customer_id.as_deref(),
            before.map(|c| (c.at, c.id)),
            limit + 1,
        )
        .await?;
    Ok(Page::from_rows(rows, limit, |r| Cursor {
        at: r.created_at,
        id: r.id.clone(),
    })
    .map(InvoiceOut::from))
}

fn conflict(refused: invoice::Refused) -> Error {
    Error::rule(RuleCode::InvoiceStatusConflict, refused.message())
}

/// draft → processed: the fee is frozen at the rate in effect now and a
/// link's token is minted; the answer carries its `payment_url`.
/// Processing a processed invoice again mints another link (for an answer
/// that was lost) and keeps its fee and total.
pub async fn process(ctx: &Ctx, actor: &Actor, id: &str) -> Result<InvoiceOut> {
    let row = load(ctx, actor, id).await?;
    invoice::transition(row.status, InvoiceInput::Process).map_err(conflict)?;
    let currency = Currency::parse(&row.currency)?;
    let reissue = row.status == InvoiceStatus::Processed;
    let fee = match (reissue, row.pass_fees) {
        (true, _) => fee_of(&row),
        (false, true) => {
            Some(fee_now(ctx, &row.account(), Money::balance(row.subtotal, currency)?).await?)
        }
        (false, false) => None,
    };
    let total = row.subtotal + fee.as_ref().map_or(0, |f| f.amount);
    chargeable(total, currency)?;
    let token = SecretToken::generate("");
    let now = ctx.now();
    let mut tx = ctx.store().begin().await?;
    let mut conn = tx.conn();
    let columns = fee.as_ref().map(|f| FeeColumns {
        amount: f.amount,
        percent_bps: i32::try_from(f.percent_bps).unwrap_or(0),
        fixed: f.fixed,
        source: f.source.as_str(),
    });
    if !conn
        .process_invoice(&row.id, row.status, columns, total, now)
        .await?
    {
        return Err(Error::rule(
            RuleCode::InvoiceStatusConflict,
            "the invoice changed meanwhile; read it and try again",
        ));
    }
    conn.insert_invoice_link(&row, token.hash().as_str(), now)
        .await?;
    let note = if reissue {
        "another payment link was issued"
    } else {
        "processed: payable through its links"
    };
    conn.insert_invoice_entry(&NewInvoiceEntry {
        invoice: &row,
        from: Some(row.status),
        to: InvoiceStatus::Processed,
        note: Some(note),
        at: now,
        cause_kind: "api",
        cause_ref: Some("POST /v1/invoices/{id}/process"),
    })
    .await?;
    let after = conn
        .get_invoice(&row.account(), &row.id)
        .await?
        .ok_or_else(|| Error::internal("the invoice vanished"))?;
    tx.commit().await?;
    tracing::info!(invoice = %row.id, total, reissue, "invoice processed");
    let mut out = InvoiceOut::from(after);
    out.payment_url = Some(payment_url(ctx, &token));
    Ok(out)
}

/// → void. A live intent is canceled at Stripe first; one that succeeded
/// meanwhile is recorded and the void refused (the invoice is paid).
pub async fn void(ctx: &Ctx, actor: &Actor, id: &str) -> Result<InvoiceOut> {
    let row = load(ctx, actor, id).await?;
    invoice::transition(row.status, InvoiceInput::Void).map_err(conflict)?;
    let open = {
        let mut h = ctx.store().acquire().await?;
        h.conn().get_open_attempt(&row.id).await?
    };
    if let Some(a) = open {
        cancel_attempt(ctx, actor, &a, "invoice voided", None).await?;
    }
    let now = ctx.now();
    let mut tx = ctx.store().begin().await?;
    let mut conn = tx.conn();
    conn.lock_invoice(&row.id).await?;
    let current = conn
        .get_invoice(&row.account(), &row.id)
        .await?
        .ok_or(Error::NotFound(Resource::Invoice))?;
    invoice::transition(current.status, InvoiceInput::Void).map_err(conflict)?;
    if conn.get_open_attempt(&row.id).await?.is_some() {
        return Err(Error::rule(
            RuleCode::InvoiceStatusConflict,
            "a payment of this invoice started meanwhile; try again",
        ));
    }
    if !conn.void_invoice(&row.id, current.status, now).await? {
        return Err(Error::rule(
            RuleCode::InvoiceStatusConflict,
            "the invoice changed meanwhile; read it and try again",
        ));
    }
    conn.insert_invoice_entry(&NewInvoiceEntry {
        invoice: &current,
        from: Some(current.status),
        to: InvoiceStatus::Void,
        note: Some("voided"),
        at: now,
        cause_kind: "api",
        cause_ref: Some("POST /v1/invoices/{id}/void"),
    })
    .await?;
    let after = conn
        .get_invoice(&row.account(), &row.id)
        .await?
        .ok_or_else(|| Error::internal("the invoice vanished"))?;
    tx.commit().await?;
    tracing::info!(invoice = %row.id, "invoice voided");
    Ok(after.into())
}

/// Cancels an attempt's intent at Stripe and records what Stripe says.
/// An intent that succeeded or is processing cannot be canceled: it is
/// recorded, and the caller is told the invoice is not payable.
/// Cancels an attempt's intent at Stripe and voids the attempt with `why`;
/// `note`, when given, lands on the invoice's timeline in the same
/// transaction as the void, so nobody reads the one without the other.
async fn cancel_attempt(
    ctx: &Ctx,
    actor: &Actor,
    a: &AttemptRow,
    why: &str,
    note: Option<(&Cause<'_>, &str)>,
) -> Result<()> {
    let account = AccountId::from_db(a.account_id.clone());
    let result = ctx
        .stripe_for(actor)
        .await?
        .post::<Value>(
            &format!("/v1/payment_intents/{}/cancel", a.stripe_payment_intent_id),
            &Params::new().set("cancellation_reason", "abandoned"),
            &IdempotencyKey::for_op("invoice-attempt-cancel", &[&a.id]),
        )
        .await;
    let intent = match result {
        Ok(intent) => intent,
        Err(e @ StripeError::Unavailable { .. }) => return Err(e.into()),
        // Refused: read what it is instead.
        Err(_) => {
            ctx.stripe_for(actor)
                .await?
                .get(
                    &format!("/v1/payment_intents/{}", a.stripe_payment_intent_id),
                    &Params::new(),
                )
                .await?
        }
    };
    checkout::observe(ctx, &account, &intent, "invoice attempt cancel").await?;
    match intent["status"].as_str() {
        Some("canceled") => {
            // The writer voided the attempt with Stripe's reason; obol's
            // own says more.
            let mut tx = ctx.store().begin().await?;
            tx.conn()
                .void_invoice_attempt(&a.id, why, ctx.now())
                .await?;
            if let Some((cause, note)) = note {
                if let Some(inv) = tx.conn().get_invoice(&account, &a.invoice_id).await? {
                    crate::invoices::note_on(&mut tx.conn(), cause, &inv, note).await?;
                }
            }
            tx.commit().await?;
            tracing::info!(intent = %a.stripe_payment_intent_id, %why, "invoice payment intent canceled");
            Ok(())
        }
        Some("succeeded") => Err(not_payable("this invoice was just paid")),
        Some("processing") => Err(not_payable(
            "a payment of this invoice is being processed; wait for it to finish",
        )),
        other => Err(Error::internal(format!(
            "Stripe left the intent {other:?} after a cancel"
        ))),
    }
}

fn not_payable(why: &str) -> Error {
    Error::rule(RuleCode::InvoiceNotPayable, why)
}

/// The invoice a token opens: unknown or malformed 404, without saying
/// which.
async fn open_by_token(ctx: &Ctx, token: &str) -> Result<InvoiceRow> {
    let well_formed = token.len() == 43
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !well_formed {
        return Err(Error::NotFound(Resource::Invoice));
    }
    let mut h = ctx.store().acquire().await?;
    h.conn()
        .get_invoice_by_token(TokenHash::of(token).as_str())
        .await?
        .ok_or(Error::NotFound(Resource::Invoice))
}

/// Who pays: the token's holder, or a credential that must own the
/// invoice (the secret key of its account, its customer's token);
/// anyone else's credential is answered as if the invoice did not exist.
fn payer(row: &InvoiceRow, token: &str, credential: Option<Actor>) -> Result<Actor> {
    let account = row.account();
    match credential {
        None => Ok(Actor::Link {
            account,
            token: TokenHash::of(token),
        }),
        Some(a @ Actor::Secret { .. }) if a.account() == &account => Ok(a),
        Some(a @ Actor::Customer { .. })
            if a.account() == &account
                && a.may_access_customer_object(Some(&CustomerId::from_db(
                    row.customer_id.clone(),
                ))) =>
        {
            Ok(a)
        }
        Some(_) => Err(Error::NotFound(Resource::Invoice)),
    }
}

/// `POST /v1/public/invoices/{token}/payment-intent`.
pub async fn pay(ctx: &Ctx, token: &str, credential: Option<Actor>) -> Result<InvoiceIntentOut> {
    let row = open_by_token(ctx, token).await?;
    let actor = payer(&row, token, credential)?;
    invoice::payable(row.status, row.amount_paid).map_err(|r| not_payable(r.message()))?;
    let account = row.account();
    let open = {
        let mut h = ctx.store().acquire().await?;
        h.conn().get_open_attempt(&row.id).await?
    };
    if let Some(a) = open {
        let intent: Value = ctx
            .stripe_for(&actor)
            .await?
            .get(
                &format!("/v1/payment_intents/{}", a.stripe_payment_intent_id),
                &Params::new(),
            )
            .await?;
        let status = intent["status"].as_str().unwrap_or_default().to_string();
        match status.as_str() {
            "requires_payment_method" | "requires_confirmation" => {
                return Ok(intent_out(ctx, &row, &intent, false));
            }
            "processing" | "requires_capture" => {
                return Err(not_payable(
                    "a payment of this invoice is being processed; wait for it to finish",
                ))
            }
            "succeeded" => {
                checkout::observe(
                    ctx,
                    &account,
                    &intent,
                    "POST /v1/public/invoices/payment-intent",
                )
                .await?;
                return Err(not_payable(invoice::NotPayable::Paid.message()));
            }
            "canceled" => {
                checkout::observe(
                    ctx,
                    &account,
                    &intent,
                    "POST /v1/public/invoices/payment-intent",
                )
                .await?;
            }
            // requires_action: a bank challenge a new visit cannot finish.
            _ => {
                cancel_attempt(ctx, &actor, &a, "replaced", None).await?;
                let mut tx = ctx.store().begin().await?;
                let note = format!(
                    "replaced payment intent {} ({status}): canceled at Stripe, a new one is made",
                    a.stripe_payment_intent_id
                );
                crate::invoices::note_on(&mut tx.conn(), &api_cause(&row), &row, &note).await?;
                tx.commit().await?;
            }
        }
        // Canceled (by us or before): the attempt is void, whatever reason
        // Stripe's answer carried.
        let mut h = ctx.store().acquire().await?;
        h.conn()
            .void_invoice_attempt(&a.id, "replaced", ctx.now())
            .await?;
    }
    new_attempt(ctx, &actor, &row).await
}

fn api_cause(row: &InvoiceRow) -> Cause<'_> {
    Cause {
        kind: "api",
        reference: Some("POST /v1/public/invoices/{token}/payment-intent"),
        account_id: &row.account_id,
    }
}

async fn new_attempt(ctx: &Ctx, actor: &Actor, row: &InvoiceRow) -> Result<InvoiceIntentOut> {
    let account = row.account();
    let (attempts, customer) = {
        let mut h = ctx.store().acquire().await?;
        let mut conn = h.conn();
        let n = conn.list_invoice_attempts(&row.id).await?.len();
        let customer = conn
            .get_customer(&account, &CustomerId::from_db(row.customer_id.clone()))
            .await?;
        (n, customer)
    };
    let currency = Currency::parse(&row.currency)?;
    let amount = chargeable(row.total - row.amount_paid, currency)?;
    let params = Params::new()
        .set("amount", amount.to_stripe_amount())
        .set("currency", currency.as_str())
        .set("automatic_payment_methods[enabled]", "true")
        .set("description", format!("Invoice {}", row.number))
        .set("metadata[obol_invoice_id]", &row.id)
        .set("metadata[obol_invoice_number]", &row.number)
        .set("metadata[obol_customer_id]", &row.customer_id)
        .set_opt(
            "receipt_email",
            customer.as_ref().and_then(|c| c.email.as_deref()),
        );
    let attempt = attempts.to_string();
    let intent: Value = ctx
        .stripe_for(actor)
        .await?
        .post(
            "/v1/payment_intents",
            &params,
            &IdempotencyKey::for_op("invoice-intent", &[&row.id, &attempt]),
        )
        .await?;
    let intent_id = intent["id"]
        .as_str()
        .ok_or_else(|| Error::internal("Stripe answered an intent without an id"))?
        .to_string();
    let now = ctx.now();
    let new = AttemptRow {
        id: InvoiceAttemptId::generate().into(),
        account_id: row.account_id.clone(),
        invoice_id: row.id.clone(),
        stripe_payment_intent_id: intent_id.clone(),
        amount: amount.minor(),
        fee_amount: row.fee_amount.unwrap_or(0).min(amount.minor()),
        status: OPEN.into(),
        void_reason: None,
        created_at: now,
        updated_at: now,
    };
    let inserted = {
        let mut tx = ctx.store().begin().await?;
        let mut conn = tx.conn();
        conn.lock_invoice(&row.id).await?;
        let current = conn
            .get_invoice(&account, &row.id)
            .await?
            .ok_or(Error::NotFound(Resource::Invoice))?;
        let payable = invoice::payable(current.status, current.amount_paid);
        let inserted = match payable {
            Ok(()) => conn.insert_invoice_attempt(&new).await?,
            Err(_) => None,
        };
        if inserted.is_some() {
            let note = format!("payment intent {intent_id} created");
            crate::invoices::note_on(&mut conn, &api_cause(row), &current, &note).await?;
        }
        tx.commit().await?;
        if let Err(why) = payable {
            // Paid or voided while Stripe made the intent: it must not be paid.
            let _ = ctx
                .stripe_for(actor)
                .await?
                .post::<Value>(
                    &format!("/v1/payment_intents/{intent_id}/cancel"),
                    &Params::new().set("cancellation_reason", "abandoned"),
                    &IdempotencyKey::for_op("invoice-attempt-cancel", &[&new.id]),
                )
                .await;
            return Err(not_payable(why.message()));
        }
        inserted
    };
    match inserted {
        Some(_) => {
            checkout::observe(
                ctx,
                &account,
                &intent,
                "POST /v1/public/invoices/payment-intent",
            )
            .await?;
            tracing::info!(invoice = %row.id, intent = %intent_id, "invoice payment intent created");
            Ok(intent_out(ctx, row, &intent, true))
        }
        // A concurrent call recorded the invoice's live intent first (the
        // same one when both used the same attempt number).
        None => {
            let theirs = {
                let mut h = ctx.store().acquire().await?;
                h.conn().get_open_attempt(&row.id).await?
            };
            match theirs {
                Some(t) if t.stripe_payment_intent_id == intent_id => {
                    Ok(intent_out(ctx, row, &intent, false))
                }
                Some(t) => {
                    let _ = ctx
                        .stripe_for(actor)
                        .await?
                        .post::<Value>(
                            &format!("/v1/payment_intents/{intent_id}/cancel"),
                            &Params::new().set("cancellation_reason", "duplicate"),
                            &IdempotencyKey::for_op("invoice-attempt-cancel", &[&new.id]),
                        )
                        .await;
                    let intent: Value = ctx
                        .stripe_for(actor)
                        .await?
                        .get(
                            &format!("/v1/payment_intents/{}", t.stripe_payment_intent_id),
                            &Params::new(),
                        )
                        .await?;
                    Ok(intent_out(ctx, row, &intent, false))
                }
                None => Err(Error::internal(
                    "the invoice's live intent vanished; try again",
                )),
            }
        }
    }
}

fn intent_out(ctx: &Ctx, row: &InvoiceRow, intent: &Value, created: bool) -> InvoiceIntentOut {
    InvoiceIntentOut {
        id: intent["id"].as_str().unwrap_or_default().to_string(),
        client_secret: intent["client_secret"].as_str().map(str::to_string),
        publishable_key: ctx.stripe_info().publishable_key.clone(),
        amount: intent["amount"].as_i64().unwrap_or(row.total),
        currency: row.currency.clone(),
        status: intent["status"].as_str().unwrap_or_default().to_string(),
        invoice_id: row.id.clone(),
        created,
    }
}

/// `GET /v1/public/invoices/{token}`: what the page shows. While a
/// payment is in flight, Stripe is asked once, so a page polling after
/// the card was confirmed sees `paid` without waiting for the webhook.
pub async fn get_public(ctx: &Ctx, token: &str) -> Result<PublicInvoiceOut> {
    let mut row = open_by_token(ctx, token).await?;
    if row.status == InvoiceStatus::Processed {
        let open = {
            let mut h = ctx.store().acquire().await?;
            h.conn().get_open_attempt(&row.id).await?
        };
        if let Some(a) = open {
            let actor = payer(&row, token, None)?;
            let intent: Value = ctx
                .stripe_for(&actor)
                .await?
                .get(
                    &format!("/v1/payment_intents/{}", a.stripe_payment_intent_id),
                    &Params::new(),
                )
                .await?;
            if matches!(intent["status"].as_str(), Some("succeeded" | "canceled")) {
                checkout::observe(ctx, &row.account(), &intent, "GET /v1/public/invoices").await?;
                let mut h = ctx.store().acquire().await?;
                if let Some(now) = h.conn().get_invoice(&row.account(), &row.id).await? {
                    row = now;
                }
            }
        }
    }
    let business_name = match &ctx.settings().business_name {
        Some(n) => Some(n.clone()),
        None => ctx.stripe_info().account().await.and_then(|a| a.name),
    };
    Ok(PublicInvoiceOut {
        payable: invoice::payable(row.status, row.amount_paid).is_ok(),
        line_items: lines_of(&row),
        fee: fee_of(&row),
        amount_due: row.total - row.amount_paid,
        number: row.number,
        status: row.status,
        business_name,
        currency: row.currency,
        subtotal: row.subtotal,
        total: row.total,
        amount_paid: row.amount_paid,
        due_date: row.due_date,
        memo: row.memo,
        paid_at: row.paid_at,
    })
}

/// What a sweep did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SweepReport {
    pub checked: usize,
    /// Found paid or canceled at Stripe and recorded.
    pub reconciled: usize,
    /// Canceled because they stayed incomplete too long.
    pub canceled: usize,
}

/// Settles every invoice intent left open longer than
/// `invoices.stale_intent_seconds`: one Stripe paid or canceled is
/// recorded (the webhook was lost), one still incomplete is canceled at
/// Stripe, and the invoice's timeline says which and why. One still
/// processing is left to finish.
pub async fn sweep_stale(ctx: &Ctx, account: &AccountId) -> Result<SweepReport> {
    let age = i64::try_from(ctx.settings().invoice_stale_after).unwrap_or(86_400);
    let before = ctx.now() - chrono::Duration::seconds(age);
    let stale = {
        let mut h = ctx.store().acquire().await?;
        h.conn().list_stale_attempts(account, before, 100).await?
    };
    let mut report = SweepReport::default();
    let actor = Actor::Secret {
        account: account.clone(),
    };
    for a in stale {
        report.checked += 1;
        let intent: Value = ctx
            .stripe_of(account)
            .await?
            .get(
                &format!("/v1/payment_intents/{}", a.stripe_payment_intent_id),
                &Params::new(),
            )
            .await?;
        let status = intent["status"].as_str().unwrap_or_default().to_string();
        let cause = Cause {
            kind: "job",
            reference: Some("invoice_sweep"),
            account_id: &a.account_id,
        };
        match status.as_str() {
            "succeeded" | "canceled" => {
                checkout::observe(ctx, account, &intent, "invoice sweep").await?;
                report.reconciled += 1;
                let note = format!(
                    "payment intent {} found {status} at Stripe by the stale-intent sweep (its webhook was not applied)",
                    a.stripe_payment_intent_id
                );
                let mut tx = ctx.store().begin().await?;
                if let Some(inv) = tx.conn().get_invoice(account, &a.invoice_id).await? {
                    crate::invoices::note_on(&mut tx.conn(), &cause, &inv, &note).await?;
                }
                tx.commit().await?;
            }
            "processing" => continue,
            _ => {
                let note = format!(
                    "payment intent {} was {status} for more than {age} s: canceled by the stale-intent sweep; the invoice can be paid again",
                    a.stripe_payment_intent_id
                );
                match cancel_attempt(ctx, &actor, &a, "stale", Some((&cause, &note))).await {
                    Ok(()) => {}
                    Err(Error::Rule { .. }) => {
                        report.reconciled += 1;
                        continue;
                    }
                    Err(e) => return Err(e),
                }
                report.canceled += 1;
            }
        }
        tracing::info!(intent = %a.stripe_payment_intent_id, invoice = %a.invoice_id, %status, "stale invoice intent settled");
    }
    Ok(report)
}
