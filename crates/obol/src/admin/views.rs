//! The dashboard's pages (maud: every value is escaped). Amounts are
//! formatted per currency by `crate::money` (JPY without decimals, KWD
//! with three); times are `<time datetime=…>` in UTC, which the served
//! script rewrites in the viewer's zone; Stripe ids link to the Stripe
//! dashboard (`/test` unless live, `/{acct}` for a connected account).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use maud::{html, Markup, DOCTYPE};

use super::ListQuery;
use crate::error::Error;
use crate::money::{Currency, Money};
use crate::ops::admin::{CustomerDetail, DailyPayments, LagPoint, OrderDetail, PaymentQuery};
use crate::ops::charge_runs::ChargeRunOut;
use crate::ops::customers::CustomerOut;
use crate::ops::disputes::DisputeOut;
use crate::ops::disputes::TaskOut;
use crate::ops::endpoints::{DeliveryOut, EndpointOut};
use crate::ops::invoices::InvoiceOut;
use crate::ops::jobs::JobOut;
use crate::ops::orders::OrderOut;
use crate::ops::organizations::OrganizationOut;
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

const NAV: [(&str, &str); 10] = [
    ("/admin/payments", "Payments"),
    ("/admin/orders", "Orders"),
    ("/admin/customers", "Customers"),
    ("/admin/disputes", "Disputes"),
    ("/admin/invoices", "Invoices"),
    ("/admin/webhook-events", "Webhook inbox"),
    ("/admin/notifications", "Notifications"),
    ("/admin/jobs", "Jobs"),
    ("/admin/charge-runs", "Charge runs"),
    ("/admin/organizations", "Organisations"),
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
    lag: &[LagPoint],
    failed: usize,
    dead: usize,
    now: DateTime<Utc>,
) -> Markup {
    layout(
        f,
        "Overview",
        html! {
            (payments_plot(days, now))
            (lag_plot(lag))
            ul class="attention" {
                li { a href="/admin/webhook-events?status=failed" { "Failed webhook events: " strong { (failed) @if failed >= 5 { "+" } } } }
                li { a href="/admin/jobs?status=dead" { "Dead jobs: " strong { (dead) @if dead >= 5 { "+" } } } }
            }
        },
    )
}

/// Server-rendered SVG: the inbox lag (age of the oldest event waiting
/// to be applied) per minute over the last hour.
pub fn lag_plot(points: &[LagPoint]) -> Markup {
    let (w, h) = (610i64, 100i64);
    let max = points.iter().map(|p| p.seconds).max().unwrap_or(0);
    let top = max.max(60);
    let step = if points.len() > 1 {
        w / (points.len() as i64 - 1)
    } else {
        w
    };
    let xy = |i: usize, s: i64| (i as i64 * step, h - s * h / top);
    let line: String = points
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let (x, y) = xy(i, p.seconds);
            format!("{x},{y}")
        })
        .collect::<Vec<_>>()
        .join(" ");
    let now = points.last().map_or(0, |p| p.seconds);
    html! {
        figure class="plot" {
            svg id="lag-plot" xmlns="http://www.w3.org/2000/svg" viewBox={"0 0 " (w + 10) " " (h + 20)} role="img" aria-label="Webhook lag over the last hour" {
                line class="axis-line" x1="0" y1=(h) x2=(w) y2=(h) {}
                polyline class="lag" fill="none" points=(line) {}
                @for (i, p) in points.iter().enumerate() {
                    @let (x, y) = xy(i, p.seconds);
                    circle class="lag-point" cx=(x) cy=(y) r="2" data-seconds=(p.seconds) {
                        title { (p.at.format("%H:%M UTC")) ": " (duration(p.seconds)) }
                    }
                }
                text x="0" y=(h + 15) class="axis" { "−60 min" }
                text x=(w - 30) y=(h + 15) class="axis" { "now" }
            }
            figcaption id="lag-caption" {
                "Webhook lag over the last hour (the oldest event waiting to be applied): now "
                strong id="lag-now" { (duration(now)) } ", most " (duration(max)) "."
            }
        }
    }
}

/// `42 s`, `3 min`, `2 h 5 min`.
fn duration(s: i64) -> String {
    match s {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s => format!("{} h {} min", s / 3600, (s % 3600) / 60),
    }
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

pub fn webhook_events(f: &Frame, q: &ListQuery, list: &Page<WebhookEventOut>) -> Markup {
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

pub fn jobs(f: &Frame, q: &ListQuery, list: &Page<JobOut>) -> Markup {
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
    q: &ListQuery,
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

// ---------------------------------------------------------------- orders

fn search_box(action: &str, q: &ListQuery, placeholder: &str, statuses: &[(&str, &str)]) -> Markup {
    html! {
        form method="get" action=(action) class="search" {
            input type="search" name="q" id="q" value=(q.q.as_deref().unwrap_or_default()) placeholder=(placeholder);
            @if !statuses.is_empty() { (select("status", q.status.as_deref(), statuses)) }
            button type="submit" id="search" { "Search" }
        }
    }
}

/// `base?q=…&status=…`, for the next page's link.
fn list_url(base: &str, q: &ListQuery) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in [("q", &q.q), ("status", &q.status)] {
        if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
            s.append_pair(k, v);
        }
    }
    let query = s.finish();
    if query.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{query}")
    }
}

const ORDER_STATES: [(&str, &str); 6] = [
    ("", "any status"),
    ("pending", "pending"),
    ("confirmed", "confirmed"),
    ("shipped", "shipped"),
    ("delivered", "delivered"),
    ("cancelled", "cancelled"),
];

fn link_or_dash(base: &str, id: Option<&str>) -> Markup {
    html! {
        @match id {
            Some(id) => { a href={(base) (id)} { (id) } }
            None => { "—" }
        }
    }
}

pub fn orders(f: &Frame, q: &ListQuery, list: &Page<OrderOut>) -> Markup {
    layout(
        f,
        "Orders",
        html! {
            (search_box("/admin/orders", q, "ORD-…, e-mail", &ORDER_STATES))
            @if list.data.is_empty() { p class="empty" id="no-orders" { "No orders match." } }
            @else {
                table id="orders" {
                    thead { tr { th { "Order" } th { "Status" } th { "Total" } th { "E-mail" } th { "Customer" } th { "Created" } } }
                    tbody {
                        @for o in &list.data {
                            tr data-id=(o.id) {
                                td { a href={"/admin/orders/" (o.id)} { (o.number) } }
                                td { (status_badge(&json_str(&o.status))) }
                                td class="num" { (money(o.total.minor(), &o.currency)) }
                                td { (o.email) }
                                td { (link_or_dash("/admin/customers/", o.customer_id.as_deref())) }
                                td { (time(o.created_at)) }
                            }
                        }
                    }
                }
            }
            (next_link(&list_url("/admin/orders", q), &list.next_cursor))
        },
    )
}

fn cause_text(c: &crate::ops::payments::Cause) -> String {
    match &c.reference {
        Some(r) => format!("{} {r}", c.kind),
        None => c.kind.clone(),
    }
}

pub fn order(f: &Frame, d: &OrderDetail) -> Markup {
    let o = &d.order;
    layout(
        f,
        &format!("Order {}", o.number),
        html! {
            dl class="facts" {
                dt { "Status" } dd id="status" { (status_badge(&json_str(&o.status))) }
                dt { "Total" } dd id="total" { (money(o.total.minor(), &o.currency)) }
                dt { "Subtotal" } dd { (money(o.subtotal.minor(), &o.currency)) }
                dt { "E-mail" } dd { (o.email) }
                dt { "Customer" } dd { (link_or_dash("/admin/customers/", o.customer_id.as_deref())) }
                dt { "Id" } dd { code { (o.id) } }
                dt { "Created" } dd { (time(o.created_at)) }
            }
            h2 { "Lines" }
            table id="lines" {
                thead { tr { th { "Item" } th { "Unit" } th { "Quantity" } th { "Amount" } } }
                tbody {
                    @for l in &o.line_items {
                        tr { td { (l.name) } td class="num" { (money(l.unit_amount, &o.currency)) } td class="num" { (l.quantity) } td class="num" { (money(l.amount, &o.currency)) } }
                    }
                }
            }
            h2 { "Status history" }
            ol class="timeline" id="timeline" {
                @for t in o.timeline.iter().flatten() {
                    li { (time(t.at)) " " (t.from.as_deref().unwrap_or("·")) " → " strong { (t.to) } " " span class="cause" { (cause_text(&t.cause)) } }
                }
            }
            h2 { "Payments" }
            @if d.payments.is_empty() { p class="empty" id="no-payments" { "No payments yet." } }
            table id="payments" {
                thead { tr { th { "Payment" } th { "Status" } th { "Amount" } th { "Refunds" } th { "Created" } } }
                tbody {
                    @for (p, refunds) in &d.payments {
                        tr data-id=(p.id) {
                            td { a href={"/admin/payments/" (p.id)} { (p.id) } }
                            td { (status_badge(&json_str(&p.status))) }
                            td class="num" { (money(p.amount, &p.currency)) }
                            td class="refunds" {
                                @for r in refunds { (money(r.amount, &r.currency)) " " (status_badge(&json_str(&r.status))) " " }
                            }
                            td { (time(p.created_at)) }
                        }
                    }
                }
            }
        },
    )
}

// ---------------------------------------------------------------- customers

pub fn customers(f: &Frame, q: &ListQuery, list: &Page<CustomerOut>) -> Markup {
    layout(
        f,
        "Customers",
        html! {
            (search_box("/admin/customers", q, "e-mail or the start of a name", &[]))
            @if list.data.is_empty() { p class="empty" id="no-customers" { "No customers match." } }
            @else {
                table id="customers" {
                    thead { tr { th { "Customer" } th { "E-mail" } th { "Name" } th { "Stripe" } th { "Created" } } }
                    tbody {
                        @for c in &list.data {
                            tr data-id=(c.id) {
                                td { a href={"/admin/customers/" (c.id)} { (c.id) } }
                                td { (c.email.as_deref().unwrap_or("—")) }
                                td { (c.name.as_deref().unwrap_or("—")) }
                                td { (c.stripe_customer_id.as_deref().unwrap_or("—")) }
                                td { (time(c.created_at)) }
                            }
                        }
                    }
                }
            }
            (next_link(&list_url("/admin/customers", q), &list.next_cursor))
        },
    )
}

pub fn customer(f: &Frame, d: &CustomerDetail) -> Markup {
    let c = &d.customer;
    layout(
        f,
        &format!(
            "Customer {}",
            c.name.as_deref().or(c.email.as_deref()).unwrap_or(&c.id)
        ),
        html! {
            dl class="facts" {
                dt { "Id" } dd { code { (c.id) } }
                dt { "E-mail" } dd id="email" { (c.email.as_deref().unwrap_or("—")) }
                dt { "Name" } dd { (c.name.as_deref().unwrap_or("—")) }
                dt { "External id" } dd { (c.external_id.as_deref().unwrap_or("—")) }
                dt { "Stripe customer" } dd id="stripe-customer" {
                    @match &c.stripe_customer_id {
                        Some(s) => { a href=(f.stripe_url(&format!("customers/{s}"))) rel="noreferrer" target="_blank" { (s) } }
                        None => { "—" }
                    }
                    @if let Some(at) = c.stripe_customer_deleted_at { " (deleted " (time(at)) ")" }
                }
                dt { "Source" } dd { (c.source) }
                dt { "Created" } dd { (time(c.created_at)) }
            }
            h2 { "Saved cards" }
            @match &d.cards {
                Ok(cards) if cards.is_empty() => { p class="empty" id="no-cards" { "No saved cards." } }
                Ok(cards) => { table id="cards" {
                    thead { tr { th { "Brand" } th { "Number" } th { "Expires" } th { "Default" } } }
                    tbody {
                        @for card in cards {
                            tr data-id=(card.id) {
                                td { (crate::ops::payment_methods::brand_name(&card.brand)) }
                                td { "•••• " (card.last4) }
                                td { (format!("{:02}/{}", card.exp_month, card.exp_year)) }
                                td { @if card.default { span class="badge default" { "default" } } }
                            }
                        }
                    }
                } }
                Err(e) => { p class="error" id="cards-error" data-code=(e.code()) { "The cards could not be read: " (e.to_string()) } }
            }
            h2 { "Subscriptions" }
            @if d.subscriptions.is_empty() { p class="empty" id="no-subscriptions" { "No subscriptions." } }
            @else {
                table id="subscriptions" {
                    thead { tr { th { "Subscription" } th { "Status" } th { "Amount" } th { "Every" } th { "Next payment" } } }
                    tbody {
                        @for s in &d.subscriptions {
                            tr data-id=(s.id) {
                                td { code { (s.id) } " " (s.description.as_deref().unwrap_or("")) }
                                td { (status_badge(&s.status)) }
                                td class="num" { (money(s.amount.minor(), s.amount.currency().as_str())) }
                                td { (s.interval_count) " " (s.interval) }
                                td { (opt_time(s.next_payment_at)) }
                            }
                        }
                    }
                }
            }
            @if !d.scheduled.is_empty() {
                h2 { "Scheduled payments" }
                table id="scheduled" {
                    thead { tr { th { "Scheduled" } th { "Status" } th { "Amount" } th { "Charged at" } } }
                    tbody {
                        @for s in &d.scheduled {
                            tr data-id=(s.id) {
                                td { code { (s.id) } " " (s.description.as_deref().unwrap_or("")) }
                                td { (status_badge(&s.status)) }
                                td class="num" { (money(s.amount.minor(), s.amount.currency().as_str())) }
                                td { (time(s.charge_at)) }
                            }
                        }
                    }
                }
            }
            h2 { "Payments" }
            @if d.payments.data.is_empty() { p class="empty" id="no-payments" { "No payments." } }
            @else {
                table id="payments" {
                    thead { tr { th { "Payment" } th { "Status" } th { "Amount" } th { "Order" } th { "Created" } } }
                    tbody {
                        @for p in &d.payments.data {
                            tr data-id=(p.id) {
                                td { a href={"/admin/payments/" (p.id)} { (p.id) } }
                                td { (status_badge(&json_str(&p.status))) }
                                td class="num" { (money(p.amount, &p.currency)) }
                                td { (link_or_dash("/admin/orders/", p.order_id.as_deref())) }
                                td { (time(p.created_at)) }
                            }
                        }
                    }
                }
                @if d.payments.has_more { p class="more" { "The newest " (d.payments.data.len()) " payments; " a href={"/admin/payments?q=" (url::form_urlencoded::byte_serialize(c.email.as_deref().unwrap_or_default().as_bytes()).collect::<String>())} { "search for all" } "." } }
            }
        },
    )
}

// ---------------------------------------------------------------- disputes

fn tasks_table(tasks: &[TaskOut]) -> Markup {
    html! {
        table id="tasks" {
            thead { tr { th { "Task" } th { "Status" } th { "Due" } th { "About" } th { "Closed" } } }
            tbody {
                @for t in tasks {
                    tr data-id=(t.id) {
                        td { (t.title) }
                        td { (status_badge(&json_str(&t.status))) }
                        td { (opt_time(t.due_at)) }
                        td { @if t.subject_type == "dispute" { a href={"/admin/disputes/" (t.subject_id)} { (t.subject_id) } } @else { (t.subject_id) } }
                        td { (opt_time(t.closed_at)) }
                    }
                }
            }
        }
    }
}

const DISPUTE_STATES: [&str; 7] = [
    "warning_needs_response",
    "warning_under_review",
    "warning_closed",
    "needs_response",
    "under_review",
    "won",
    "lost",
];

pub fn disputes(
    f: &Frame,
    q: &ListQuery,
    list: &Page<DisputeOut>,
    tasks: &Page<TaskOut>,
) -> Markup {
    let status = q.status.as_deref().filter(|s| !s.is_empty());
    layout(
        f,
        "Disputes",
        html! {
            (status_links("/admin/disputes", status, &DISPUTE_STATES))
            @if list.data.is_empty() { p class="empty" id="no-disputes" { "No disputes." } }
            @else {
                table id="disputes" {
                    thead { tr { th { "Dispute" } th { "Status" } th { "Amount" } th { "Reason" } th { "Evidence due" } th { "Payment" } th { "Created" } } }
                    tbody {
                        @for d in &list.data {
                            tr data-id=(d.id) {
                                td { a href={"/admin/disputes/" (d.id)} { (d.id) } }
                                td { (status_badge(&json_str(&d.status))) }
                                td class="num" { (money(d.amount, &d.currency)) }
                                td { (d.reason) }
                                td { (opt_time(d.evidence_due_by)) }
                                td { a href={"/admin/payments/" (d.payment_id)} { (d.payment_id) } }
                                td { (time(d.created_at)) }
                            }
                        }
                    }
                }
            }
            (next_link(&list_url("/admin/disputes", q), &list.next_cursor))
            h2 { "Open tasks" }
            @if tasks.data.is_empty() { p class="empty" id="no-tasks" { "No open tasks." } }
            @else { (tasks_table(&tasks.data)) }
            @if tasks.has_more { p class="more" { "The newest " (tasks.data.len()) " open tasks." } }
        },
    )
}

pub fn dispute(f: &Frame, d: &DisputeOut, tasks: &[TaskOut]) -> Markup {
    layout(
        f,
        &format!("Dispute {}", d.id),
        html! {
            dl class="facts" {
                dt { "Status" } dd id="status" { (status_badge(&json_str(&d.status))) }
                dt { "Amount" } dd { (money(d.amount, &d.currency)) }
                dt { "Reason" } dd { (d.reason) }
                dt { "Evidence due" } dd id="due" { (opt_time(d.evidence_due_by)) }
                dt { "Payment" } dd { a href={"/admin/payments/" (d.payment_id)} { (d.payment_id) } }
                dt { "In Stripe" } dd { a id="stripe-link" href=(f.stripe_url(&format!("disputes/{}", d.stripe_dispute_id))) rel="noreferrer" target="_blank" { (d.stripe_dispute_id) } " (respond with evidence there)" }
                dt { "Created" } dd { (time(d.created_at)) }
            }
            h2 { "Timeline" }
            ol class="timeline" id="timeline" {
                @for t in d.timeline.iter().flatten() {
                    li { (time(t.at)) " " (t.from.as_deref().unwrap_or("·")) " → " strong { (t.to) } " " span class="cause" { (cause_text(&t.cause)) } }
                }
            }
            h2 { "Tasks" }
            p class="note" { "A task is done when its dispute closes (Stripe's event)." }
            @if tasks.is_empty() { p class="empty" id="no-tasks" { "No tasks." } }
            @else { (tasks_table(tasks)) }
        },
    )
}

// ---------------------------------------------------------------- invoices

pub fn invoices(f: &Frame, q: &ListQuery, list: &Page<InvoiceOut>) -> Markup {
    let status = q.status.as_deref().filter(|s| !s.is_empty());
    layout(
        f,
        "Invoices",
        html! {
            (status_links("/admin/invoices", status, &["draft", "processed", "partially_paid", "paid", "void"]))
            @if list.data.is_empty() { p class="empty" id="no-invoices" { "No invoices." } }
            @else {
                table id="invoices" {
                    thead { tr { th { "Invoice" } th { "Status" } th { "Total" } th { "Due" } th { "Customer" } th { "Due date" } th { "Created" } } }
                    tbody {
                        @for i in &list.data {
                            tr data-id=(i.id) {
                                td { a href={"/admin/invoices/" (i.id)} { (i.number) } }
                                td { (status_badge(&json_str(&i.status))) }
                                td class="num" { (money(i.total, &i.currency)) }
                                td class="num" { (money(i.amount_due, &i.currency)) }
                                td { a href={"/admin/customers/" (i.customer_id)} { (i.customer_id) } }
                                td { (i.due_date) }
                                td { (time(i.created_at)) }
                            }
                        }
                    }
                }
            }
            (next_link(&list_url("/admin/invoices", q), &list.next_cursor))
        },
    )
}

pub fn invoice(f: &Frame, i: &InvoiceOut) -> Markup {
    layout(
        f,
        &format!("Invoice {}", i.number),
        html! {
            dl class="facts" {
                dt { "Status" } dd id="status" { (status_badge(&json_str(&i.status))) }
                dt { "Total" } dd { (money(i.total, &i.currency)) }
                dt { "Paid" } dd id="paid" { (money(i.amount_paid, &i.currency)) }
                dt { "Due" } dd { (money(i.amount_due, &i.currency)) " by " (i.due_date) }
                dt { "Customer" } dd { a href={"/admin/customers/" (i.customer_id)} { (i.customer_id) } }
                @if let Some(fee) = &i.fee { dt { "Fee" } dd { (money(fee.amount, &i.currency)) } }
                @if let Some(m) = &i.memo { dt { "Memo" } dd { (m) } }
                dt { "Id" } dd { code { (i.id) } }
                dt { "Created" } dd { (time(i.created_at)) }
            }
            h2 { "Lines" }
            table id="lines" {
                thead { tr { th { "Item" } th { "Unit" } th { "Quantity" } th { "Amount" } } }
                tbody {
                    @for l in &i.line_items {
                        tr { td { (l.description) } td class="num" { (money(l.unit_amount, &i.currency)) } td class="num" { (l.quantity) } td class="num" { (money(l.amount, &i.currency)) } }
                    }
                }
            }
            h2 { "Payment attempts" }
            @let attempts = i.payment_attempts.as_deref().unwrap_or_default();
            @if attempts.is_empty() { p class="empty" id="no-attempts" { "No payment attempts." } }
            @else {
                table id="attempts" {
                    thead { tr { th { "PaymentIntent" } th { "Status" } th { "Amount" } th { "Fee" } th { "Created" } } }
                    tbody {
                        @for a in attempts {
                            tr {
                                td { a href=(f.stripe_url(&format!("payments/{}", a.payment_intent_id))) rel="noreferrer" target="_blank" { (a.payment_intent_id) } }
                                td { (status_badge(&a.status)) @if let Some(r) = &a.void_reason { " " (r) } }
                                td class="num" { (money(a.amount, &i.currency)) }
                                td class="num" { (money(a.fee_amount, &i.currency)) }
                                td { (time(a.created_at)) }
                            }
                        }
                    }
                }
            }
            h2 { "Timeline" }
            ol class="timeline" id="timeline" {
                @for t in i.timeline.iter().flatten() {
                    li { (time(t.at)) " " (t.from.as_ref().map(json_str).unwrap_or_else(|| "·".into())) " → " strong { (json_str(&t.to)) } " " (t.note.as_deref().unwrap_or("")) " " span class="cause" { (t.cause) " " (t.cause_ref.as_deref().unwrap_or("")) } }
                }
            }
        },
    )
}

// ---------------------------------------------------------------- organisations

pub fn organizations(f: &Frame, list: &Page<OrganizationOut>) -> Markup {
    layout(
        f,
        "Organisations",
        html! {
            @if list.data.is_empty() { p class="empty" id="no-organizations" { "No organisations." } }
            @else {
                table id="organizations" {
                    thead { tr { th { "Organisation" } th { "Stripe" } th { "Account" } th { "Mode" } th { "Connected" } th { "Created" } } }
                    tbody {
                        @for o in &list.data {
                            tr data-id=(o.id) {
                                td { a href={"/admin/organizations/" (o.id)} { (o.name) } " " code { (o.id) } }
                                td { (status_badge(&json_str(&o.stripe.status))) }
                                td { (o.stripe.account_name.as_deref().unwrap_or("")) @if let Some(l) = &o.stripe.account_id_last4 { " (acct_…" (l) ")" } }
                                td { (mode(o.stripe.livemode)) }
                                td { (opt_time(o.stripe.connected_at)) }
                                td { (time(o.created_at)) }
                            }
                        }
                    }
                }
            }
            (next_link("/admin/organizations", &list.next_cursor))
        },
    )
}

fn mode(livemode: Option<bool>) -> &'static str {
    match livemode {
        Some(true) => "live",
        Some(false) => "test",
        None => "—",
    }
}

pub fn organization(f: &Frame, o: &OrganizationOut) -> Markup {
    layout(
        f,
        &format!("Organisation {}", o.name),
        html! {
            dl class="facts" {
                dt { "Id" } dd { code { (o.id) } }
                dt { "External id" } dd { (o.external_id.as_deref().unwrap_or("—")) }
                dt { "Stripe" } dd id="stripe-status" { (status_badge(&json_str(&o.stripe.status))) }
                dt { "Account" } dd { (o.stripe.account_name.as_deref().unwrap_or("—")) @if let Some(l) = &o.stripe.account_id_last4 { " (acct_…" (l) ")" } }
                dt { "Mode" } dd { (mode(o.stripe.livemode)) }
                dt { "Connected" } dd { (opt_time(o.stripe.connected_at)) }
                dt { "Disconnected" } dd { (opt_time(o.stripe.disconnected_at)) }
                dt { "Created" } dd { (time(o.created_at)) }
            }
        },
    )
}
