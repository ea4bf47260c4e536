//! The dashboard's pages (maud: every value is escaped). Amounts are
//! formatted per currency by `crate::money` (JPY without decimals, KWD
//! with three); times are `<time datetime=…>` in UTC, which the served
//! script rewrites in the viewer's zone; Stripe ids link to the Stripe
//! dashboard (`/test` unless live, `/{acct}` for a connected account).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use maud::{html, Markup, DOCTYPE};

use super::StatusQuery;
use crate::error::Error;
use crate::money::{Currency, Money};
use crate::ops::admin::{DailyPayments, PaymentQuery};
use crate::ops::charge_runs::ChargeRunOut;
use crate::ops::disputes::DisputeOut;
use crate::ops::endpoints::{DeliveryOut, EndpointOut};
use crate::ops::jobs::JobOut;
use crate::ops::pagination::Page;
use crate::ops::payments::PaymentOut;
use crate::ops::refunds::RefundOut;
use crate::ops::webhook_events::WebhookEventOut;

/// What every signed-in page's frame shows.
pub struct Frame {
    pub csrf: String,
    /// The account the session acts in (`default` or `org_…`).
    pub account: String,
    pub may_switch: bool,
    /// (id, name) of every organisation, for the password admin.
    pub organizations: Vec<(String, String)>,
    pub live: bool,
    /// The connected Stripe account of the organisation, if any.
    pub stripe_account: Option<String>,
}

impl Frame {
    /// A Stripe dashboard URL for `path` (`payments/pi_…`).
    pub fn stripe_url(&self, path: &str) -> String {
        let mut url = String::from("https://dashboard.stripe.com");
        if let Some(acct) = &self.stripe_account {
            url.push('/');
            url.push_str(acct);
        }
        if !self.live {
            url.push_str("/test");
        }
        url.push('/');
        url.push_str(path);
        url
    }
}

/// `12.50 EUR`, `1234 JPY`, `1.230 KWD`.
pub fn money(amount: i64, currency: &str) -> String {
    Currency::parse(currency)
        .ok()
        .and_then(|c| Money::balance(amount, c).ok())
        .map(|m| format!("{} {}", m.format_decimal(), m.currency().iso_code()))
        .unwrap_or_else(|| format!("{amount} {}", currency.to_ascii_uppercase()))
}

/// A time the script shows in the viewer's zone.
pub fn time(at: DateTime<Utc>) -> Markup {
    html! {
        time datetime=(at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)) {
            (at.format("%Y-%m-%d %H:%M:%S UTC"))
        }
    }
}

fn opt_time(at: Option<DateTime<Utc>>) -> Markup {
    match at {
        Some(at) => time(at),
        None => html! { "—" },
    }
}

const NAV: [(&str, &str); 5] = [
    ("/admin/payments", "Payments"),
    ("/admin/webhook-events", "Webhook inbox"),
    ("/admin/notifications", "Notifications"),
    ("/admin/jobs", "Jobs"),
    ("/admin/charge-runs", "Charge runs"),
];

fn document(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="robots" content="noindex";
                link rel="icon" href="data:,";
                title { (title) " · obol admin" }
                link rel="stylesheet" href="/admin/assets/admin.css";
            }
            body { (body) script src="/admin/assets/admin.js" {} }
        }
    }
}

/// A signed-in page: the navigation, the organisation, sign-out.
fn layout(f: &Frame, title: &str, body: Markup) -> Markup {
    document(
        title,
        html! {
            header class="top" {
                a class="brand" href="/admin" { "obol" }
                nav { @for (href, label) in NAV { a href=(href) { (label) } } }
                @if f.may_switch {
                    form method="post" action="/admin/organization" class="org" {
                        input type="hidden" name="csrf" value=(f.csrf);
                        label { "Organisation "
                            select name="organization" id="organization" {
                                option value="default" selected[f.account == "default"] { "Platform" }
                                @for (id, name) in &f.organizations {
                                    option value=(id) selected[&f.account == id] { (name) " (" (id) ")" }
                                }
                            }
                        }
                        button type="submit" { "Switch" }
                    }
                } @else {
                    span class="org" id="organization" { "Organisation " code { (f.account) } }
                }
                form method="post" action="/admin/logout" {
                    input type="hidden" name="csrf" value=(f.csrf);
                    button type="submit" id="sign-out" { "Sign out" }
                }
            }
            main {
                h1 { (title) }
                (body)
            }
        },
    )
}

fn notice(n: Option<&str>) -> Markup {
    let text = match n {
        Some("refunded") => "Refund submitted.",
        Some("replayed") => "Event queued to be applied again.",
        Some("retried") => "Job queued again.",
        Some("redriven") => "Delivery queued again.",
        _ => return html! {},
    };
    html! { p class="notice" role="status" id="notice" { (text) } }
}

/// The sign-in page, with what went wrong last.
pub fn login(note: Option<&str>, error: Option<&Error>) -> Markup {
    document(
        "Sign in",
        html! {
            main class="login" {
                h1 { "obol admin" }
                @if let Some(n) = note { p class="notice" id="notice" { (n) } }
                @if let Some(e) = error {
                    p class="error" role="alert" id="error" data-code=(e.code()) { (e.to_string()) }
                }
                form method="post" action="/admin/login" {
                    label { "Password or secret API key"
                        input type="password" name="password" id="password" autocomplete="current-password" required autofocus;
                    }
                    label { "Organisation (optional, org_…)"
                        input type="text" name="organization" id="organization";
                    }
                    button type="submit" id="sign-in" { "Sign in" }
                }
            }
        },
    )
}

/// An error page: the status, the stable code and the message.
pub fn error(e: &Error) -> Markup {
    document(
        "Error",
        html! {
            main {
                h1 { (e.status().as_u16()) " " (e.status().canonical_reason().unwrap_or("Error")) }
                p class="error" role="alert" id="error" data-code=(e.code()) { (e.to_string()) }
                p { a href="/admin" { "Back to the dashboard" } }
            }
        },
    )
}

fn status_badge(s: &str) -> Markup {
    html! { span class={"badge " (s)} { (s) } }
}

fn json_str<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

// ---------------------------------------------------------------- overview

/// Server-rendered SVG: payments per day, stacked by outcome.
pub fn payments_plot(days: &[DailyPayments], now: DateTime<Utc>) -> Markup {
    let outcomes = [
        "completed",
        "authorized",
        "refunded",
        "partially_refunded",
        "failed",
        "canceled",
        "pending",
        "requires_action",
    ];
    /// One day's bar: (day, total, [(outcome, x, y, height)]).
    type PlotBar<'a> = (String, i64, Vec<(&'a str, i64, i64, i64)>);
    let mut per_day: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
    for n in 0..30 {
        let d = (now - chrono::Duration::days(29 - n))
            .format("%Y-%m-%d")
            .to_string();
        per_day.entry(d).or_default();
    }
    let mut amounts: BTreeMap<String, i64> = BTreeMap::new();
    for d in days {
        *per_day
            .entry(d.day.clone())
            .or_default()
            .entry(d.status.clone())
            .or_default() += d.payments;
        *amounts.entry(d.currency.clone()).or_default() += d.amount;
    }
    let max = per_day
        .values()
        .map(|m| m.values().sum::<i64>())
        .max()
        .unwrap_or(0)
        .max(1);
    let (w, h, bar) = (620i64, 160i64, 20i64);
    // (day, total, [(outcome, x, y, height)]) per bar, stacked bottom up.
    let bars: Vec<PlotBar> = per_day
        .iter()
        .enumerate()
        .map(|(i, (day, by))| {
            let x = i as i64 * (bar + 1);
            let mut y = h;
            let mut rects = Vec::new();
            for o in outcomes {
                let n = by.get(o).copied().unwrap_or(0);
                if n > 0 {
                    let bh = (n * h / max).max(1);
                    y -= bh;
                    rects.push((o, x, y, bh));
                }
            }
            (day.clone(), by.values().sum::<i64>(), rects)
        })
        .collect();
    html! {
        figure class="plot" {
            svg id="payments-plot" xmlns="http://www.w3.org/2000/svg" viewBox={"0 0 " (w) " " (h + 20)} role="img" aria-label="Payments per day by outcome" {
                @for (day, total, rects) in &bars {
                    g {
                        title { (day) ": " (total) " payments" }
                        @for (o, x, y, bh) in rects {
                            rect class={"o-" (o)} x=(x) y=(y) width=(bar) height=(bh) {}
                        }
                    }
                }
                text x="0" y=(h + 15) class="axis" { (per_day.keys().next().cloned().unwrap_or_default()) }
                text x=(w - 70) y=(h + 15) class="axis" { (per_day.keys().last().cloned().unwrap_or_default()) }
            }
            figcaption {
                "Payments per day over 30 days (most: " (max) "). "
                @for o in outcomes { span class={"key o-" (o)} { (o) } " " }
                br;
                "Amounts: "
                @for (c, a) in &amounts { (money(*a, c)) "; " }
            }
        }
    }
}

pub fn overview(
    f: &Frame,
    days: &[DailyPayments],
    failed: usize,
    dead: usize,
    now: DateTime<Utc>,
) -> Markup {
    layout(
        f,
        "Overview",
        html! {
            (payments_plot(days, now))
            ul class="attention" {
                li { a href="/admin/webhook-events?status=failed" { "Failed webhook events: " strong { (failed) @if failed >= 5 { "+" } } } }
                li { a href="/admin/jobs?status=dead" { "Dead jobs: " strong { (dead) @if dead >= 5 { "+" } } } }
            }
        },
    )
}

// ---------------------------------------------------------------- payments

fn select(name: &str, current: Option<&str>, options: &[(&str, &str)]) -> Markup {
    html! {
        select name=(name) id=(name) {
            @for (v, label) in options {
                option value=(v) selected[current == Some(*v)] { (label) }
            }
        }
    }
}

const PAYMENT_STATES: [(&str, &str); 9] = [
    ("", "any status"),
    ("pending", "pending"),
    ("requires_action", "requires action"),
    ("authorized", "authorized"),
    ("completed", "completed"),
    ("partially_refunded", "partially refunded"),
    ("refunded", "refunded"),
    ("failed", "failed"),
    ("canceled", "canceled"),
];

fn search_form(q: &PaymentQuery) -> Markup {
    html! {
        form method="get" action="/admin/payments" class="search" {
            input type="search" name="q" id="q" value=(q.q.as_deref().unwrap_or_default())
                placeholder="pay_…, pi_…, e-mail, ORD-…, amount";
            (select("status", q.status.as_deref(), &PAYMENT_STATES))
            (select("disputed", q.disputed.as_deref(), &[("", "disputed or not"), ("yes", "disputed"), ("no", "not disputed")]))
            input type="text" name="currency" id="currency" size="4" placeholder="eur" value=(q.currency.as_deref().unwrap_or_default());
            label { "from " input type="date" name="from" id="from" value=(q.from.as_deref().unwrap_or_default()); }
            label { "to " input type="date" name="to" id="to" value=(q.to.as_deref().unwrap_or_default()); }
            button type="submit" id="search" { "Search" }
        }
    }
}

fn next_link(base: &str, cursor: &Option<String>) -> Markup {
    html! {
        @if let Some(c) = cursor {
            @let sep = if base.contains('?') { "&" } else { "?" };
            p class="more" { a id="next-page" href={(base) (sep) "cursor=" (c)} { "Next page →" } }
        }
    }
}

fn payment_query_string(q: &PaymentQuery) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in [
        ("q", &q.q),
        ("status", &q.status),
        ("disputed", &q.disputed),
        ("currency", &q.currency),
        ("from", &q.from),
        ("to", &q.to),
    ] {
        if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
            s.append_pair(k, v);
        }
    }
    format!("/admin/payments?{}", s.finish())
}

pub fn payments(f: &Frame, q: &PaymentQuery, list: &Page<PaymentOut>) -> Markup {
    layout(
        f,
        "Payments",
        html! {
            (search_form(q))
            @if list.data.is_empty() { p class="empty" id="no-payments" { "No payments match." } }
            @else {
                table id="payments" {
                    thead { tr { th { "Payment" } th { "Status" } th { "Amount" } th { "Refunded" } th { "Customer" } th { "Order" } th { "Created" } } }
                    tbody {
                        @for p in &list.data {
                            tr data-id=(p.id) {
                                td { a href={"/admin/payments/" (p.id)} { (p.id) } }
                                td { (status_badge(&json_str(&p.status))) @if p.disputed { " " span class="badge disputed" { "disputed" } } }
                                td class="num" { (money(p.amount, &p.currency)) }
                                td class="num" { @if p.amount_refunded > 0 { (money(p.amount_refunded, &p.currency)) } }
                                td { (p.customer_id.as_deref().unwrap_or("—")) }
                                td { (p.order_id.as_deref().unwrap_or("—")) }
                                td { (time(p.created_at)) }
                            }
                        }
                    }
                }
            }
            (next_link(&payment_query_string(q), &list.next_cursor))
        },
    )
}

pub fn payments_error(f: &Frame, q: &PaymentQuery, e: &Error) -> Markup {
    layout(
        f,
        "Payments",
        html! {
            (search_form(q))
            p class="error" role="alert" id="error" data-code=(e.code()) { (e.to_string()) }
        },
    )
}

/// One line of a payment's timeline, from any source.
struct Entry {
    at: DateTime<Utc>,
    what: Markup,
    cause: String,
}

pub fn payment(
    f: &Frame,
    p: &PaymentOut,
    refunds: &[RefundOut],
    disputes: &[DisputeOut],
    n: Option<&str>,
) -> Markup {
    let mut entries: Vec<Entry> = Vec::new();
    for t in p.timeline.iter().flatten() {
        entries.push(Entry {
            at: t.at,
            what: html! { (t.from.as_deref().unwrap_or("·")) " → " strong { (t.to) } },
            cause: format!(
                "{}{}",
                t.cause.kind,
                t.cause
                    .reference
                    .as_deref()
                    .map(|r| format!(" {r}"))
                    .unwrap_or_default()
            ),
        });
    }
    for r in refunds {
        entries.push(Entry {
            at: r.created_at,
            what: html! { "refund " (money(r.amount, &r.currency)) " " (status_badge(&json_str(&r.status))) },
            cause: r.stripe_refund_id.clone().unwrap_or_else(|| r.id.clone()),
        });
    }
    for d in disputes {
        entries.push(Entry {
            at: d.created_at,
            what: html! { "dispute " (money(d.amount, &d.currency)) " (" (d.reason) ") " (status_badge(&json_str(&d.status))) },
            cause: d.stripe_dispute_id.clone(),
        });
    }
    entries.sort_by_key(|e| e.at);
    let left = p.amount_captured - p.amount_refunded;
    let left_text = money(left.max(0), &p.currency);
    layout(
        f,
        &format!("Payment {}", p.id),
        html! {
            (notice(n))
            dl class="facts" {
                dt { "Status" } dd id="status" { (status_badge(&json_str(&p.status))) @if p.disputed { " " span class="badge disputed" { "disputed" } } }
                dt { "Amount" } dd id="amount" { (money(p.amount, &p.currency)) }
                dt { "Captured" } dd { (money(p.amount_captured, &p.currency)) }
                dt { "Refunded" } dd id="refunded" { (money(p.amount_refunded, &p.currency)) }
                dt { "PaymentIntent" } dd { a href=(f.stripe_url(&format!("payments/{}", p.stripe_payment_intent_id))) rel="noreferrer" target="_blank" { (p.stripe_payment_intent_id) } }
                dt { "Customer" } dd { (p.customer_id.as_deref().unwrap_or("—")) }
                dt { "Order" } dd { (p.order_id.as_deref().unwrap_or("—")) }
                @if let Some(c) = &p.charge {
                    dt { "Card" } dd { (c.card_brand.as_deref().unwrap_or("")) " " (c.card_last4.as_deref().map(|l| format!("•••• {l}")).unwrap_or_default()) }
                    @if let Some(code) = &c.failure_code { dt { "Declined" } dd { (code) " " (c.decline_code.as_deref().unwrap_or("")) } }
                }
                dt { "Created" } dd { (time(p.created_at)) }
            }
            h2 { "Timeline" }
            ol class="timeline" id="timeline" {
                @for e in &entries {
                    li { (time(e.at)) " " (e.what) " " span class="cause" { (e.cause) } }
                }
            }
            h2 { "Refund" }
            @if left > 0 {
                form method="post" action={"/admin/payments/" (p.id) "/refunds"} id="refund-form" {
                    input type="hidden" name="csrf" value=(f.csrf);
                    label { "Amount (" (p.currency.to_ascii_uppercase()) ", empty: all " (left_text) ")"
                        input type="text" name="amount" id="refund-amount" inputmode="decimal";
                    }
                    label { "Reason "
                        (select("reason", None, &[("", "none"), ("requested_by_customer", "requested by customer"), ("duplicate", "duplicate"), ("fraudulent", "fraudulent")]))
                    }
                    button type="submit" id="refund" { "Refund" }
                }
            } @else {
                p { "Nothing left to refund." }
            }
        },
    )
}

// ---------------------------------------------------------------- inbox

fn status_links(base: &str, current: Option<&str>, statuses: &[&str]) -> Markup {
    html! {
        p class="filters" {
            a href=(base) class=[current.is_none().then_some("on")] { "all" }
            @for s in statuses {
                " " a href={(base) "?status=" (s)} class=[(current == Some(*s)).then_some("on")] id={"filter-" (s)} { (s) }
            }
        }
    }
}

pub fn webhook_events(f: &Frame, q: &StatusQuery, list: &Page<WebhookEventOut>) -> Markup {
    let status = q.status.as_deref().filter(|s| !s.is_empty());
    let base = match status {
        Some(s) => format!("/admin/webhook-events?status={s}"),
        None => "/admin/webhook-events".to_string(),
    };
    layout(
        f,
        "Webhook inbox",
        html! {
            (status_links("/admin/webhook-events", status, &["received", "applied", "ignored", "failed"]))
            table id="webhook-events" {
                thead { tr { th { "Event" } th { "Type" } th { "Status" } th { "Reason" } th { "Attempts" } th { "Received" } th { "Lag" } } }
                tbody {
                    @for e in &list.data {
                        tr data-id=(e.id) {
                            td { a href={"/admin/webhook-events/" (e.id)} { (e.stripe_event_id) } }
                            td { (e.event_type) }
                            td { (status_badge(&json_str(&e.status))) }
                            td { (e.reason.as_deref().unwrap_or("")) }
                            td class="num" { (e.attempts) }
                            td { (time(e.received_at)) }
                            td class="num" { @if let Some(a) = e.applied_at { (lag(e.stripe_created, a)) } }
                        }
                    }
                }
            }
            (next_link(&base, &list.next_cursor))
        },
    )
}

/// Seconds from Stripe creating an event to obol applying it.
fn lag(created: i64, applied: DateTime<Utc>) -> String {
    let s = applied.timestamp() - created;
    if s < 120 {
        format!("{s} s")
    } else {
        format!("{} min", s / 60)
    }
}

pub fn webhook_event(f: &Frame, e: &WebhookEventOut, raw: &str, n: Option<&str>) -> Markup {
    layout(
        f,
        &format!("Event {}", e.stripe_event_id),
        html! {
            (notice(n))
            dl class="facts" {
                dt { "Type" } dd { (e.event_type) }
                dt { "Status" } dd id="status" { (status_badge(&json_str(&e.status))) }
                dt { "Reason" } dd id="reason" { (e.reason.as_deref().unwrap_or("—")) }
                dt { "Account" } dd { (e.account_id) }
                dt { "Source" } dd { (e.source) }
                dt { "Attempts" } dd { (e.attempts) }
                dt { "Received" } dd { (time(e.received_at)) }
                dt { "Applied" } dd { (opt_time(e.applied_at)) }
                dt { "In Stripe" } dd { a href=(f.stripe_url(&format!("events/{}", e.stripe_event_id))) rel="noreferrer" target="_blank" { (e.stripe_event_id) } }
            }
            form method="post" action={"/admin/webhook-events/" (e.id) "/replay"} {
                input type="hidden" name="csrf" value=(f.csrf);
                button type="submit" id="replay" { "Replay" }
            }
            h2 { "Raw event" }
            pre id="raw" { (raw) }
        },
    )
}

// ---------------------------------------------------------------- jobs

pub fn jobs(f: &Frame, q: &StatusQuery, list: &Page<JobOut>) -> Markup {
    let status = q.status.as_deref().filter(|s| !s.is_empty());
    let base = match status {
        Some(s) => format!("/admin/jobs?status={s}"),
        None => "/admin/jobs".to_string(),
    };
    layout(
        f,
        "Jobs",
        html! {
            (notice(q.notice.as_deref()))
            (status_links("/admin/jobs", status, &["queued", "running", "succeeded", "dead"]))
            table id="jobs" {
                thead { tr { th { "Job" } th { "Kind" } th { "Status" } th { "Attempts" } th { "Last error" } th { "Next attempt" } th {} } }
                tbody {
                    @for j in &list.data {
                        tr data-id=(j.id) {
                            td { code { (j.id) } }
                            td { (j.kind) }
                            td { (status_badge(&j.status)) }
                            td class="num" { (j.attempts) "/" (j.max_attempts) }
                            td { (j.last_error.as_deref().unwrap_or("")) }
                            td { (time(j.next_attempt_at)) }
                            td {
                                @if j.status == "dead" {
                                    form method="post" action={"/admin/jobs/" (j.id) "/retry"} {
                                        input type="hidden" name="csrf" value=(f.csrf);
                                        button type="submit" class="retry" { "Retry" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            (next_link(&base, &list.next_cursor))
        },
    )
}

// ---------------------------------------------------------------- notifications

pub fn notifications(
    f: &Frame,
    q: &StatusQuery,
    endpoints: &[EndpointOut],
    chosen: Option<&str>,
    deliveries: Option<&Page<DeliveryOut>>,
) -> Markup {
    let status = q.status.as_deref().filter(|s| !s.is_empty());
    layout(
        f,
        "Notifications",
        html! {
            (notice(q.notice.as_deref()))
            h2 { "Endpoints" }
            @if endpoints.is_empty() { p class="empty" { "No endpoints." } }
            ul id="endpoints" {
                @for e in endpoints {
                    li class=[(chosen == Some(e.id.as_str())).then_some("on")] {
                        a href={"/admin/notifications?endpoint=" (e.id)} { (e.url) } " " code { (e.id) } " " (status_badge(&json_str(&e.status)))
                    }
                }
            }
            @if let (Some(id), Some(list)) = (chosen, deliveries) {
                h2 { "Deliveries" }
                (status_links(&format!("/admin/notifications?endpoint={id}&"), status, &["pending", "succeeded", "failed", "canceled"]))
                table id="deliveries" {
                    thead { tr { th { "Delivery" } th { "Status" } th { "Attempts" } th { "Last answer" } th { "Created" } th {} } }
                    tbody {
                        @for d in &list.data {
                            tr data-id=(d.id) {
                                td { code { (d.id) } }
                                td { (status_badge(&json_str(&d.status))) }
                                td class="num" { (d.attempts) }
                                td { (d.last_status_code.map(|c| c.to_string()).unwrap_or_default()) " " (d.last_error.as_deref().unwrap_or("")) }
                                td { (time(d.created_at)) }
                                td {
                                    form method="post" action={"/admin/deliveries/" (d.id) "/redrive"} {
                                        input type="hidden" name="csrf" value=(f.csrf);
                                        input type="hidden" name="endpoint" value=(id);
                                        button type="submit" class="redrive" { "Redrive" }
                                    }
                                }
                            }
                        }
                    }
                }
                @if list.has_more { p class="more" { "Showing the newest " (list.data.len()) "; filter by status to see others." } }
            }
        },
    )
}

// ---------------------------------------------------------------- charge runs

fn progress_bar(run: &ChargeRunOut) -> Markup {
    let pct = (run.progress * 100.0).round().clamp(0.0, 100.0) as i64;
    html! {
        svg class="progress" viewBox="0 0 100 6" preserveAspectRatio="none" role="progressbar"
            aria-valuemin="0" aria-valuemax="100" aria-valuenow=(pct) data-progress=(pct) {
            rect class="track" x="0" y="0" width="100" height="6" {}
            rect class="done" x="0" y="0" width=(pct) height="6" {}
        }
        span class="pct" { (pct) " %" }
    }
}

pub fn charge_runs(f: &Frame, list: &Page<ChargeRunOut>) -> Markup {
    layout(
        f,
        "Charge runs",
        html! {
            table id="charge-runs" {
                thead { tr { th { "Run" } th { "Status" } th { "Items" } th { "Progress" } th { "Created" } } }
                tbody {
                    @for r in &list.data {
                        tr data-id=(r.id) {
                            td { a href={"/admin/charge-runs/" (r.id)} { (r.name) } " " code { (r.id) } }
                            td { (status_badge(&json_str(&r.status))) }
                            td class="num" { (r.item_count) }
                            td { (progress_bar(r)) }
                            td { (time(r.created_at)) }
                        }
                    }
                }
            }
            (next_link("/admin/charge-runs", &list.next_cursor))
        },
    )
}

pub fn charge_run(f: &Frame, run: &ChargeRunOut) -> Markup {
    layout(
        f,
        &format!("Charge run {}", run.name),
        html! {
            section id="run" data-run=(run.id) data-status=(json_str(&run.status)) data-currency=(run.currency) {
                p { "Status " strong id="run-status" { (json_str(&run.status)) } " · " (run.item_count) " items · "
                    span id="rate" { (run.rate_per_second) } " charges/s" }
                div id="progress" { (progress_bar(run)) }
                table id="outcomes" {
                    thead { tr { th { "Outcome" } th { "Items" } th { "Amount" } } }
                    tbody {
                        @for (o, n) in &run.counts {
                            tr data-outcome=(o) {
                                td { (o) }
                                td class="num count" { (n) }
                                td class="num amount" { (money(run.amounts.get(o).copied().unwrap_or(0), &run.currency)) }
                            }
                        }
                    }
                }
                p { "Created " (time(run.created_at)) " · started " (opt_time(run.started_at)) " · completed " (opt_time(run.completed_at)) }
            }
        },
    )
}
