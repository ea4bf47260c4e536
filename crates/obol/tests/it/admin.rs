//! The admin dashboard over real HTTP: sign-in (password from
//! `obol admin set-password`, or a secret key), CSRF, idle sessions,
//! throttled sign-ins, organisation scope, and a refund from the page.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::json;

use crate::checkout::authorize;
use crate::helpers::{Backend, Obol};
use crate::inbox::{eventually, sandbox, stripe_post};
use crate::on_both_backends;

on_both_backends!(
    an_operator_finds_a_payment_by_email_and_refunds_part_of_it,
    an_idle_session_is_sent_back_to_sign_in,
    a_key_session_sees_only_its_organisation,
    an_operator_reads_orders_customers_disputes_invoices_and_organisations,
    the_payments_plot_stays_true_for_closed_days,
);

pub const PASSWORD: &str = "correct horse battery staple";

/// The hash `obol admin set-password` prints for `password`.
pub fn password_hash(password: &str) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_obol"))
        .args(["admin", "set-password"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let hash = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("OBOL_ADMIN__PASSWORD_HASH="),
        "says what to configure"
    );
    hash
}

/// A browser without redirects or a cookie jar: each step is visible.
pub struct Browser {
    pub http: reqwest::Client,
    pub base: String,
    pub cookie: Option<String>,
}

pub struct Answer {
    pub status: u16,
    pub location: Option<String>,
    pub set_cookie: Option<String>,
    pub body: String,
}

impl Answer {
    /// The value of the `data-code` the page shows its error with.
    pub fn code(&self) -> Option<&str> {
        let at = self.body.find("data-code=\"")? + "data-code=\"".len();
        self.body[at..].split('"').next()
    }
}

impl Browser {
    pub fn new(obol: &Obol) -> Browser {
        Browser {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            base: obol.base_url.clone(),
            cookie: None,
        }
    }

    async fn answer(r: reqwest::Response) -> Answer {
        let header = |n: &str| {
            r.headers()
                .get(n)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let (location, set_cookie) = (header("location"), header("set-cookie"));
        let status = r.status().as_u16();
        Answer {
            status,
            location,
            set_cookie,
            body: r.text().await.unwrap(),
        }
    }

    pub async fn get(&self, path: &str) -> Answer {
        let mut req = self.http.get(format!("{}{path}", self.base));
        if let Some(c) = &self.cookie {
            req = req.header("cookie", format!("obol_admin={c}"));
        }
        Self::answer(req.send().await.unwrap()).await
    }

    pub async fn post(&self, path: &str, form: &[(&str, &str)]) -> Answer {
        self.post_from(path, form, None).await
    }

    pub async fn post_from(
        &self,
        path: &str,
        form: &[(&str, &str)],
        origin: Option<&str>,
    ) -> Answer {
        let mut req = self.http.post(format!("{}{path}", self.base)).form(form);
        if let Some(c) = &self.cookie {
            req = req.header("cookie", format!("obol_admin={c}"));
        }
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        Self::answer(req.send().await.unwrap()).await
    }

    /// Signs in; panics unless it worked.
    pub async fn sign_in(&mut self, password: &str, organization: &str) {
        let a = self
            .post(
                "/admin/login",
                &[("password", password), ("organization", organization)],
            )
            .await;
        assert_eq!(
            (a.status, a.location.as_deref()),
            (303, Some("/admin")),
            "{}",
            a.body
        );
        let cookie = a.set_cookie.expect("a session cookie");
        for attribute in ["HttpOnly", "SameSite=Strict", "Path=/admin"] {
            assert!(cookie.contains(attribute), "{cookie}");
        }
        assert!(!cookie.contains("Secure"), "plain http: {cookie}");
        let value = cookie
            .split(';')
            .next()
            .unwrap()
            .strip_prefix("obol_admin=")
            .unwrap();
        self.cookie = Some(value.to_string());
    }

    /// The CSRF token the page's forms carry.
    pub fn csrf(page: &str) -> String {
        let at = page
            .find("name=\"csrf\" value=\"")
            .expect("a form with a CSRF token")
            + "name=\"csrf\" value=\"".len();
        page[at..].split('"').next().unwrap().to_string()
    }
}

/// A captured 49.99 EUR payment of an order placed by ana@example.com.
pub async fn paid_order(obol: &Obol, email: &str) -> (String, String) {
    let pi = authorize(obol, 4999).await;
    let (status, order) = obol
        .post(
            "/v1/orders",
            json!({
                "email": email, "currency": "eur",
                "line_items": [{"name": "Riesling 2022", "unit_amount": 2000, "quantity": 2}],
                "shipping": {"name": "Standard", "amount": 999},
                "payment_reference": pi
            }),
        )
        .await;
    assert_eq!(status, 201, "{order}");
    let payment_id = order["payment_id"].as_str().unwrap().to_string();
    eventually(obol, &format!("/v1/payments/{payment_id}"), |b| {
        b["status"] == "completed"
    })
    .await;
    (payment_id, order["number"].as_str().unwrap().to_string())
}

pub async fn start_with_password(backend: Backend, extra: &[(&str, &str)]) -> Obol {
    let mut b = Obol::builder(backend).env("OBOL_ADMIN__PASSWORD_HASH", &password_hash(PASSWORD));
    for (k, v) in extra {
        b = b.env(k, v);
    }
    b.start().await
}

async fn an_operator_finds_a_payment_by_email_and_refunds_part_of_it(backend: Backend) {
    let obol = start_with_password(backend, &[]).await;
    let (payment_id, number) = paid_order(&obol, "Ana.Lopez@example.com").await;
    let mut browser = Browser::new(&obol);

    // Without a session every page sends the browser to sign in.
    let a = browser.get("/admin/payments").await;
    assert_eq!(
        (a.status, a.location.as_deref()),
        (303, Some("/admin/login?ended=1"))
    );

    // A wrong password is refused and says so.
    let a = browser
        .post("/admin/login", &[("password", "wrong password!")])
        .await;
    assert_eq!(
        (a.status, a.code()),
        (401, Some("admin_sign_in_failed")),
        "{}",
        a.body
    );
    assert!(a.set_cookie.is_none());

    browser.sign_in(PASSWORD, "").await;
    let overview = browser.get("/admin").await;
    assert_eq!(overview.status, 200);
    assert!(overview.body.contains("id=\"payments-plot\""), "the plot");

    // Found by the customer's e-mail, whatever its case; by the order
    // number; by the amount typed as a decimal.
    for q in [
        "ana.lopez@example.com",
        number.as_str(),
        "49.99",
        "4999",
        payment_id.as_str(),
    ] {
        let a = browser
            .get(&format!("/admin/payments?q={}", urlencode(q)))
            .await;
        assert_eq!(a.status, 200, "{q}: {}", a.body);
        assert!(a.body.contains(&payment_id), "{q} finds the payment");
        assert!(a.body.contains("49.99 EUR"), "{q}: amount formatted");
    }
    let a = browser.get("/admin/payments?q=nobody@example.com").await;
    assert!(a.body.contains("id=\"no-payments\"") && !a.body.contains(&payment_id));
    let a = browser.get("/admin/payments?status=refunded").await;
    assert!(!a.body.contains(&payment_id), "the status filter");
    let a = browser.get("/admin/payments?q=%3Cscript%3E").await;
    assert_eq!((a.status, a.code()), (400, Some("invalid_query")));
    assert!(!a.body.contains("<script>"), "escaped");

    // Its page: the timeline and a refund form.
    let page = browser.get(&format!("/admin/payments/{payment_id}")).await;
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("→ <strong>completed</strong>"),
        "{}",
        page.body
    );
    let timeline_len = page.body.matches("<li><time").count();
    let csrf = Browser::csrf(&page.body);
    let refund = format!("/admin/payments/{payment_id}/refunds");

    // A form posted without its token, with another session's, or from
    // another origin is refused, and refunds nothing.
    for form in [
        vec![("amount", "10.00")],
        vec![("amount", "10.00"), ("csrf", "forged")],
    ] {
        let a = browser.post(&refund, &form).await;
        assert_eq!(
            (a.status, a.code()),
            (403, Some("csrf_token_invalid")),
            "{}",
            a.body
        );
    }
    let a = browser
        .post_from(
            &refund,
            &[("amount", "10.00"), ("csrf", &csrf)],
            Some("https://evil.example"),
        )
        .await;
    assert_eq!((a.status, a.code()), (403, Some("csrf_token_invalid")));
    let (_, p) = obol.get(&format!("/v1/payments/{payment_id}")).await;
    assert_eq!(p["amount_refunded"], 0);

    // Too much is the refund rule's error, on a page.
    let a = browser
        .post(&refund, &[("amount", "60.00"), ("csrf", &csrf)])
        .await;
    assert_eq!(
        (a.status, a.code()),
        (422, Some("refund_exceeds_remaining")),
        "{}",
        a.body
    );

    let a = browser
        .post(
            &refund,
            &[
                ("amount", "10.00"),
                ("reason", "requested_by_customer"),
                ("csrf", &csrf),
            ],
        )
        .await;
    assert_eq!(a.status, 303, "{}", a.body);
    let back = a.location.unwrap();
    assert_eq!(
        back,
        format!("/admin/payments/{payment_id}?notice=refunded")
    );
    eventually(&obol, &format!("/v1/payments/{payment_id}"), |b| {
        b["status"] == "partially_refunded"
    })
    .await;
    let page = browser.get(&back).await;
    assert!(page.body.contains("Refund submitted."));
    assert!(page.body.contains("refund 10.00 EUR"), "{}", page.body);
    assert!(
        page.body.matches("<li><time").count() > timeline_len,
        "the timeline grew"
    );
    // The API sees the same refund: one ops function behind both.
    let (_, refunds) = obol
        .get(&format!("/v1/payments/{payment_id}/refunds"))
        .await;
    assert_eq!(refunds["data"][0]["amount"], 1000);

    // Signing out ends the session for good.
    let a = browser.post("/admin/logout", &[("csrf", &csrf)]).await;
    assert_eq!(a.status, 303);
    let a = browser.get("/admin/payments").await;
    assert_eq!(a.location.as_deref(), Some("/admin/login?ended=1"));
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

async fn an_idle_session_is_sent_back_to_sign_in(backend: Backend) {
    let obol = start_with_password(backend, &[("OBOL_ADMIN__SESSION_IDLE_MINUTES", "1")]).await;
    let mut browser = Browser::new(&obol);
    browser.sign_in(PASSWORD, "").await;
    assert_eq!(browser.get("/admin/payments").await.status, 200);
    // Two minutes pass without a request (the session's last request is
    // moved back rather than the test waiting).
    let store = obol.db.store().await;
    let hash = obol::ids::TokenHash::of(browser.cookie.as_deref().unwrap());
    let mut h = store.acquire().await.unwrap();
    h.conn()
        .touch_admin_session(&hash, obol::storage::now() - chrono::Duration::minutes(2))
        .await
        .unwrap();
    let a = browser.get("/admin/payments").await;
    assert_eq!(
        (a.status, a.location.as_deref()),
        (303, Some("/admin/login?ended=1"))
    );
    // And it stays ended: the row is gone.
    assert!(h.conn().get_admin_session(&hash).await.unwrap().is_none());
    let a = browser.get("/admin/login?ended=1").await;
    assert!(a.body.contains("Your session has ended"));
}

async fn a_key_session_sees_only_its_organisation(backend: Backend) {
    let obol = start_with_password(backend, &[]).await;
    let (status, org) = obol
        .post("/v1/organizations", json!({"name": "Bodega Bob"}))
        .await;
    assert_eq!(status, 201, "{org}");
    let org_id = org["id"].as_str().unwrap();
    let (payment_id, _) = paid_order(&obol, "ana@example.com").await;

    let mut bob = Browser::new(&obol);
    bob.sign_in(&obol.api_key, org_id).await;
    let a = bob.get(&format!("/admin/payments/{payment_id}")).await;
    assert_eq!(
        (a.status, a.code()),
        (404, Some("payment_not_found")),
        "{}",
        a.body
    );
    let a = bob.get("/admin/payments").await;
    assert!(!a.body.contains(&payment_id));
    assert!(a.body.contains(org_id), "the page says where it is");
    // It cannot switch to the platform.
    let csrf = Browser::csrf(&a.body);
    let a = bob
        .post(
            "/admin/organization",
            &[("csrf", &csrf), ("organization", "default")],
        )
        .await;
    assert_eq!((a.status, a.code()), (404, Some("organization_not_found")));
    assert_eq!(
        bob.get(&format!("/admin/payments/{payment_id}"))
            .await
            .status,
        404
    );

    // The password admin sees the platform's, and switches organisations.
    let mut admin = Browser::new(&obol);
    admin.sign_in(PASSWORD, "").await;
    let a = admin.get(&format!("/admin/payments/{payment_id}")).await;
    assert_eq!(a.status, 200);
    assert!(
        a.body
            .contains("https://dashboard.stripe.com/test/payments/pi_"),
        "a test-mode Stripe link"
    );
    let csrf = Browser::csrf(&a.body);
    let a = admin
        .post(
            "/admin/organization",
            &[("csrf", &csrf), ("organization", org_id)],
        )
        .await;
    assert_eq!(a.status, 303);
    assert_eq!(
        admin
            .get(&format!("/admin/payments/{payment_id}"))
            .await
            .status,
        404
    );

    // A key with an unknown organisation does not sign in at all.
    let a = Browser::new(&obol)
        .post(
            "/admin/login",
            &[("password", &obol.api_key), ("organization", "org_nope")],
        )
        .await;
    assert_eq!((a.status, a.code()), (404, Some("organization_not_found")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_sign_ins_are_throttled_but_a_right_key_still_works() {
    let obol = start_with_password(
        Backend::Sqlite,
        &[("OBOL_HTTP__AUTH_FAILURES_PER_MINUTE", "3")],
    )
    .await;
    let browser = Browser::new(&obol);
    let mut codes = Vec::new();
    for _ in 0..6 {
        let a = browser
            .post("/admin/login", &[("password", "guess guess guess")])
            .await;
        codes.push(a.status);
    }
    assert_eq!(&codes[..3], &[401, 401, 401], "{codes:?}");
    assert_eq!(codes[5], 429, "{codes:?}");
    // Throttled, even the right password is not checked from here...
    let a = browser
        .post("/admin/login", &[("password", PASSWORD)])
        .await;
    assert_eq!((a.status, a.code()), (429, Some("rate_limited")));
    // ...but a valid secret key is never refused for others' failures.
    let mut b = Browser::new(&obol);
    b.sign_in(&obol.api_key, "").await;
    assert_eq!(b.get("/admin/jobs").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_carry_the_security_headers() {
    let obol = start_with_password(Backend::Sqlite, &[]).await;
    let mut b = Browser::new(&obol);
    b.sign_in(PASSWORD, "").await;
    let r = b
        .http
        .get(format!("{}/admin/payments", b.base))
        .header(
            "cookie",
            format!("obol_admin={}", b.cookie.as_deref().unwrap()),
        )
        .send()
        .await
        .unwrap();
    let h = |n: &str| r.headers().get(n).unwrap().to_str().unwrap().to_string();
    let csp = h("content-security-policy");
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(h("x-frame-options"), "DENY");
    assert_eq!(h("cache-control"), "no-store");
    let body = r.text().await.unwrap();
    assert!(!body.contains("<script>"), "no inline script");
}

#[test]
fn set_password_refuses_a_short_password() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_obol"))
        .args(["admin", "set-password"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "short").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
}

async fn an_operator_reads_orders_customers_disputes_invoices_and_organisations(backend: Backend) {
    let obol = start_with_password(backend, &[]).await;
    let (payment_id, number) = paid_order(&obol, "Ana.Lopez@example.com").await;
    let (_, p) = obol.get(&format!("/v1/payments/{payment_id}")).await;
    let order_id = p["order_id"].as_str().unwrap().to_string();
    // A member with a saved card.
    let customer = crate::invoices::customer(&obol).await;
    let (token, _) = crate::saved_cards::link(&obol, &customer).await;
    crate::saved_cards::save_card(&obol, &token, "pm_card_visa").await;
    // An invoice for them.
    let (invoice, _) = crate::invoices::issued(
        &obol,
        json!({"customer_id": customer, "currency": "eur", "due_date": "2026-12-31",
               "number": "W-2026-042", "line_items": [{"description": "Court fee", "unit_amount": 12000, "quantity": 1}]}),
    )
    .await;
    let invoice_id = invoice["id"].as_str().unwrap().to_string();
    // A disputed payment.
    let base = sandbox(&obol).await;
    let pi = stripe_post(
        &base,
        "/v1/payment_intents",
        &[
            ("amount", "3000"),
            ("currency", "eur"),
            ("payment_method", "pm_card_createDispute"),
            ("confirm", "true"),
            ("payment_method_types[]", "card"),
        ],
    )
    .await;
    assert_eq!(pi["status"], "succeeded", "{pi}");
    let disputes = eventually(&obol, "/v1/disputes", |b| {
        b["data"].as_array().is_some_and(|d| !d.is_empty())
    })
    .await;
    let dispute_id = disputes["data"][0]["id"].as_str().unwrap().to_string();
    let dp = disputes["data"][0]["stripe_dispute_id"]
        .as_str()
        .unwrap()
        .to_string();
    eventually(&obol, "/v1/tasks?status=open", |b| {
        b["data"].as_array().is_some_and(|d| !d.is_empty())
    })
    .await;
    let (status, org) = obol
        .post("/v1/organizations", json!({"name": "Bodega <Bob>"}))
        .await;
    assert_eq!(status, 201, "{org}");

    let mut browser = Browser::new(&obol);
    browser.sign_in(PASSWORD, "").await;
    let overview = browser.get("/admin").await;
    assert!(overview.body.contains("id=\"lag-plot\""), "the lag plot");
    // The lag is whatever the inbox shows at that moment (events of the
    // set-up may still wait for a retry): a number of seconds.
    let lag = overview
        .body
        .split("id=\"lag-now\">")
        .nth(1)
        .and_then(|rest| rest.split(" s<").next())
        .unwrap_or_default();
    assert!(lag.parse::<u64>().is_ok(), "{}", overview.body);
    for href in [
        "orders",
        "customers",
        "disputes",
        "invoices",
        "organizations",
    ] {
        assert!(
            overview.body.contains(&format!("href=\"/admin/{href}\"")),
            "{href} in the nav"
        );
    }

    // Orders: by the e-mail in any case, by the number; the filter.
    for q in ["ana.lopez@EXAMPLE.com", number.as_str()] {
        let a = browser
            .get(&format!("/admin/orders?q={}", urlencode(q)))
            .await;
        assert_eq!(a.status, 200, "{q}: {}", a.body);
        assert!(
            a.body.contains(&number) && a.body.contains(&order_id),
            "{q}"
        );
        assert!(a.body.contains("49.99 EUR"), "{q}: the total");
    }
    let a = browser.get("/admin/orders?status=cancelled").await;
    assert!(a.body.contains("id=\"no-orders\"") && !a.body.contains(&order_id));
    let a = browser.get("/admin/orders?q=nobody@example.com").await;
    assert!(!a.body.contains(&order_id));
    for bad in [
        "/admin/orders?q=hello",
        "/admin/orders?status=lost",
        "/admin/orders?cursor=x",
    ] {
        let a = browser.get(bad).await;
        assert_eq!((a.status, a.code()), (400, Some("invalid_query")), "{bad}");
    }
    let a = browser.get(&format!("/admin/orders/{order_id}")).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(a.body.contains(&payment_id), "its payment");
    assert!(a.body.contains("Riesling 2022"), "its lines");
    assert!(
        a.body.contains("→ <strong>"),
        "its status history: {}",
        a.body
    );

    // Customers: by e-mail in any case, by the start of the name.
    for q in ["ANA@example.com", "ana l"] {
        let a = browser
            .get(&format!("/admin/customers?q={}", urlencode(q)))
            .await;
        assert_eq!(a.status, 200, "{q}: {}", a.body);
        assert!(a.body.contains(&customer), "{q} finds the customer");
    }
    let a = browser.get("/admin/customers?q=%25").await;
    assert!(
        a.body.contains("id=\"no-customers\""),
        "% is a character, not a wildcard"
    );
    let a = browser.get(&format!("/admin/customers/{customer}")).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(a.body.contains("<td>Visa</td>"), "{}", a.body);
    assert!(a.body.contains("•••• 4242"), "{}", a.body);
    assert!(a.body.contains("badge default"), "the default card");
    assert!(
        a.body
            .contains("https://dashboard.stripe.com/test/customers/cus_"),
        "the Stripe customer, linked"
    );

    // Disputes and their tasks.
    let a = browser.get("/admin/disputes").await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(a.body.contains(&dispute_id) && a.body.contains("30.00 EUR"));
    assert!(a.body.contains("Respond to dispute"), "the open task");
    let a = browser.get("/admin/disputes?status=won").await;
    assert!(a.body.contains("id=\"no-disputes\""));
    let a = browser.get("/admin/disputes?status=bogus").await;
    assert_eq!((a.status, a.code()), (400, Some("invalid_query")));
    let a = browser.get(&format!("/admin/disputes/{dispute_id}")).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(a
        .body
        .contains(&format!("https://dashboard.stripe.com/test/disputes/{dp}")));
    assert!(a.body.contains("Respond to dispute") && a.body.contains("badge open"));

    // Invoices and their attempts.
    let a = browser.get("/admin/invoices?status=processed").await;
    assert!(
        a.body.contains("W-2026-042") && a.body.contains("120.00 EUR"),
        "{}",
        a.body
    );
    let a = browser.get("/admin/invoices?status=paid").await;
    assert!(!a.body.contains("W-2026-042"));
    let a = browser.get(&format!("/admin/invoices/{invoice_id}")).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(a.body.contains("Court fee") && a.body.contains("Payment attempts"));

    // Organisations, their names escaped.
    let a = browser.get("/admin/organizations").await;
    assert!(a.body.contains("Bodega &lt;Bob&gt;"), "{}", a.body);
    assert!(!a.body.contains("Bodega <Bob>"));
    let org_id = org["id"].as_str().unwrap();
    let a = browser.get(&format!("/admin/organizations/{org_id}")).await;
    assert_eq!(a.status, 200);
    assert!(a.body.contains("badge not_connected") || a.body.contains("id=\"stripe-status\""));

    // Another organisation's session sees none of it.
    let mut bob = Browser::new(&obol);
    bob.sign_in(&obol.api_key, org_id).await;
    for (path, code) in [
        (format!("/admin/orders/{order_id}"), "order_not_found"),
        (format!("/admin/customers/{customer}"), "customer_not_found"),
        (format!("/admin/disputes/{dispute_id}"), "dispute_not_found"),
        (format!("/admin/invoices/{invoice_id}"), "invoice_not_found"),
    ] {
        let a = bob.get(&path).await;
        assert_eq!((a.status, a.code()), (404, Some(code)), "{path}");
    }
    for (path, id) in [
        ("/admin/orders", order_id.as_str()),
        ("/admin/customers", customer.as_str()),
        ("/admin/disputes", dispute_id.as_str()),
        ("/admin/invoices", invoice_id.as_str()),
    ] {
        let a = bob.get(path).await;
        assert_eq!(a.status, 200, "{path}");
        assert!(!a.body.contains(id), "{path} shows none of the platform's");
    }
    let a = bob.get("/admin/organizations").await;
    assert!(a.body.contains(org_id) && a.body.matches("data-id=\"org_").count() == 1);
}

/// Moves a payment's creation `days_ago` days back, the way a payment of
/// an earlier day looks (no API creates one in the past).
async fn move_payment_back(obol: &Obol, payment_id: &str, days_ago: i64) {
    use sqlx::Connection;
    let day = (chrono::Utc::now() - chrono::Duration::days(days_ago))
        .format("%Y-%m-%d")
        .to_string();
    let n = if obol.db.url.starts_with("sqlite") {
        let mut c = sqlx::SqliteConnection::connect(&obol.db.url).await.unwrap();
        sqlx::query("UPDATE payments SET created_at = $1 || substr(created_at, 11) WHERE id = $2")
            .bind(&day)
            .bind(payment_id)
            .execute(&mut c)
            .await
            .unwrap()
            .rows_affected()
    } else {
        let mut c = sqlx::PgConnection::connect(&obol.db.url).await.unwrap();
        sqlx::query(
            "UPDATE payments SET created_at = created_at - make_interval(days => $1) WHERE id = $2",
        )
        .bind(i32::try_from(days_ago).unwrap())
        .bind(payment_id)
        .execute(&mut c)
        .await
        .unwrap()
        .rows_affected()
    };
    assert_eq!(n, 1, "{payment_id} moved");
}

/// The overview plot's bar of `day`: its number of payments and the
/// outcomes stacked in it; and the number of payments of all bars.
fn plot_bar(body: &str, day: &str) -> ((i64, Vec<String>), i64) {
    let plot = body
        .split("id=\"payments-plot\"")
        .nth(1)
        .and_then(|p| p.split("</svg>").next())
        .expect("the plot");
    let mut bar = (0, Vec::new());
    let mut all = 0;
    for g in plot.split("<g>").skip(1) {
        let title = g
            .split("<title>")
            .nth(1)
            .and_then(|t| t.split("</title>").next())
            .unwrap();
        let (d, rest) = title.split_once(": ").unwrap();
        let n: i64 = rest.trim_end_matches(" payments").parse().unwrap();
        all += n;
        if d == day {
            let outcomes = g
                .split("class=\"o-")
                .skip(1)
                .map(|c| c.split('"').next().unwrap().to_string())
                .collect();
            bar = (n, outcomes);
        }
    }
    (bar, all)
}

/// A closed day's totals are summed once and kept; a refund of one of its
/// payments, or a payment moved into it, shows on the next load all the
/// same.
async fn the_payments_plot_stays_true_for_closed_days(backend: Backend) {
    let obol = start_with_password(backend, &[]).await;
    let (old, _) = paid_order(&obol, "old.day@example.com").await;
    let (later, _) = paid_order(&obol, "later@example.com").await;
    paid_order(&obol, "today@example.com").await;
    move_payment_back(&obol, &old, 3).await;
    let day = (chrono::Utc::now() - chrono::Duration::days(3))
        .format("%Y-%m-%d")
        .to_string();
    let mut browser = Browser::new(&obol);
    browser.sign_in(PASSWORD, "").await;
    let completed = || vec!["completed".to_string()];

    let first = browser.get("/admin").await;
    assert_eq!(first.status, 200);
    assert_eq!(
        plot_bar(&first.body, &day),
        ((1, completed()), 3),
        "{}",
        first.body
    );
    assert!(first.body.contains("Amounts: 149.97 EUR"), "{}", first.body);
    // The second load reads the kept totals and draws the same plot.
    let second = browser.get("/admin").await;
    assert_eq!(plot_bar(&second.body, &day), ((1, completed()), 3));
    assert!(second.body.contains("Amounts: 149.97 EUR"));

    // A refund of the closed day's payment changes its bar.
    let (status, refund) = obol
        .post(&format!("/v1/payments/{old}/refunds"), json!({}))
        .await;
    assert_eq!(status, 201, "{refund}");
    eventually(&obol, &format!("/v1/payments/{old}"), |b| {
        b["status"] == "refunded"
    })
    .await;
    let third = browser.get("/admin").await;
    assert_eq!(
        plot_bar(&third.body, &day),
        ((1, vec!["refunded".to_string()]), 3),
        "{}",
        third.body
    );

    // A payment that joins the closed day, after its totals were kept.
    move_payment_back(&obol, &later, 3).await;
    let fourth = browser.get("/admin").await;
    assert_eq!(
        plot_bar(&fourth.body, &day),
        (
            (2, vec!["completed".to_string(), "refunded".to_string()]),
            3
        ),
        "{}",
        fourth.body
    );
    assert!(fourth.body.contains("Amounts: 149.97 EUR"));
}
