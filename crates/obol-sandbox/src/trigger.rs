//! `trigger`: like `stripe trigger`, creates over HTTP the objects that make
//! an event happen, against any Stripe-compatible API base.

use anyhow::{anyhow, bail, Context};
use serde_json::Value;

/// Events [`trigger`] knows how to cause.
pub const SUPPORTED_TRIGGERS: &[&str] = &[
    "customer.created",
    "customer.updated",
    "customer.deleted",
    "payment_method.attached",
    "payment_method.detached",
    "payment_intent.created",
    "payment_intent.succeeded",
    "payment_intent.payment_failed",
    "payment_intent.canceled",
    "payment_intent.requires_action",
    "payment_intent.amount_capturable_updated",
    "charge.succeeded",
    "charge.failed",
    "charge.captured",
    "charge.refunded",
    "charge.dispute.created",
    "charge.dispute.closed",
    "refund.created",
    "setup_intent.created",
    "setup_intent.succeeded",
    "setup_intent.requires_action",
    "setup_intent.setup_failed",
    "setup_intent.canceled",
];

struct Client<'a> {
    http: reqwest::Client,
    base: String,
    key: &'a str,
    ids: Vec<String>,
}

impl Client<'_> {
    /// POSTs a form; a 402 (a decline the trigger wanted) still counts.
    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> anyhow::Result<Value> {
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(self.key)
            .form(form)
            .send()
            .await
            .with_context(|| format!("POST {path}"))?;
        let status = resp.status();
        let body: Value = resp
            .json()
            .await
            .with_context(|| format!("POST {path}: reading the response"))?;
        let obj = if status.is_success() {
            body
        } else if status.as_u16() == 402 {
            let err = &body["error"];
            err.get("payment_intent")
                .or_else(|| err.get("setup_intent"))
                .cloned()
                .ok_or_else(|| anyhow!("POST {path}: {status}: {body}"))?
        } else {
            bail!("POST {path}: {status}: {body}");
        };
        if let Some(id) = obj.get("id").and_then(Value::as_str) {
            if !self.ids.iter().any(|i| i == id) {
                self.ids.push(id.to_string());
            }
        }
        if let Some(ch) = obj.get("latest_charge").and_then(Value::as_str) {
            if !self.ids.iter().any(|i| i == ch) {
                self.ids.push(ch.to_string());
            }
        }
        Ok(obj)
    }

    async fn intent(&mut self, extra: &[(&str, &str)]) -> anyhow::Result<Value> {
        let mut form = vec![
            ("amount", "2000"),
            ("currency", "usd"),
            ("payment_method_types[]", "card"),
        ];
        form.extend_from_slice(extra);
        self.post("/v1/payment_intents", &form).await
    }
}

fn id(v: &Value) -> String {
    v.get("id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// Creates, over HTTP, the objects that make `event` happen; returns their ids.
pub async fn trigger(api_base: &str, secret_key: &str, event: &str) -> anyhow::Result<Vec<String>> {
    if !SUPPORTED_TRIGGERS.contains(&event) {
        bail!(
            "unsupported event {event:?}; supported: {}",
            SUPPORTED_TRIGGERS.join(", ")
        );
    }
    let mut c = Client {
        http: reqwest::Client::new(),
        base: api_base.trim_end_matches('/').to_string(),
        key: secret_key,
        ids: Vec::new(),
    };
    let ok = [("payment_method", "pm_card_visa"), ("confirm", "true")];
    match event {
        "customer.created" => {
            c.post(
                "/v1/customers",
                &[("description", "(created by obol trigger)")],
            )
            .await?;
        }
        "customer.updated" => {
            let cus = c.post("/v1/customers", &[]).await?;
            c.post(
                &format!("/v1/customers/{}", id(&cus)),
                &[("metadata[foo]", "bar")],
            )
            .await?;
        }
        "customer.deleted" => {
            let cus = c.post("/v1/customers", &[]).await?;
            let resp = c
                .http
                .delete(format!("{}/v1/customers/{}", c.base, id(&cus)))
                .bearer_auth(c.key)
                .send()
                .await?;
            if !resp.status().is_success() {
                bail!("DELETE customer: {}", resp.status());
            }
        }
        "payment_method.attached" | "payment_method.detached" => {
            let cus = c.post("/v1/customers", &[]).await?;
            let pm = c
                .post(
                    "/v1/payment_methods/pm_card_visa/attach",
                    &[("customer", &id(&cus))],
                )
                .await?;
            if event == "payment_method.detached" {
                c.post(&format!("/v1/payment_methods/{}/detach", id(&pm)), &[])
                    .await?;
            }
        }
        "payment_intent.created" => {
            c.intent(&[]).await?;
        }
        "payment_intent.succeeded" | "charge.succeeded" => {
            c.intent(&ok).await?;
        }
        "payment_intent.payment_failed" | "charge.failed" => {
            c.intent(&[
                ("payment_method", "pm_card_visa_chargeDeclined"),
                ("confirm", "true"),
            ])
            .await?;
        }
        "payment_intent.canceled" => {
            let pi = c.intent(&[]).await?;
            c.post(&format!("/v1/payment_intents/{}/cancel", id(&pi)), &[])
                .await?;
        }
        "payment_intent.requires_action" => {
            c.intent(&[
                ("payment_method", "pm_card_threeDSecure2Required"),
                ("confirm", "true"),
                ("return_url", "https://example.com/return"),
            ])
            .await?;
        }
        "payment_intent.amount_capturable_updated" | "charge.captured" => {
            let pi = c
                .intent(&[
                    ("payment_method", "pm_card_visa"),
                    ("confirm", "true"),
                    ("capture_method", "manual"),
                ])
                .await?;
            if event == "charge.captured" {
                c.post(&format!("/v1/payment_intents/{}/capture", id(&pi)), &[])
                    .await?;
            }
        }
        "charge.refunded" | "refund.created" => {
            let pi = c.intent(&ok).await?;
            c.post("/v1/refunds", &[("payment_intent", &id(&pi))])
                .await?;
        }
        "charge.dispute.created" | "charge.dispute.closed" => {
            let pi = c
                .intent(&[
                    ("payment_method", "pm_card_createDispute"),
                    ("confirm", "true"),
                ])
                .await?;
            let list = c
                .http
                .get(format!("{}/v1/disputes", c.base))
                .bearer_auth(c.key)
                .query(&[("payment_intent", id(&pi))])
                .send()
                .await?
                .json::<Value>()
                .await?;
            let dp = list["data"].get(0).map(id).unwrap_or_default();
            if dp.is_empty() {
                bail!("no dispute was opened for {}", id(&pi));
            }
            c.ids.push(dp.clone());
            if event == "charge.dispute.closed" {
                c.post(&format!("/v1/disputes/{dp}/close"), &[]).await?;
            }
        }
        "setup_intent.created" => {
            c.post("/v1/setup_intents", &[("payment_method_types[]", "card")])
                .await?;
        }
        "setup_intent.succeeded" => {
            let cus = c.post("/v1/customers", &[]).await?;
            c.post(
                "/v1/setup_intents",
                &[
                    ("customer", &id(&cus)),
                    ("payment_method", "pm_card_visa"),
                    ("confirm", "true"),
                ],
            )
            .await?;
        }
        "setup_intent.requires_action" => {
            c.post(
                "/v1/setup_intents",
                &[
                    ("payment_method", "pm_card_authenticationRequired"),
                    ("confirm", "true"),
                    ("return_url", "https://example.com/return"),
                ],
            )
            .await?;
        }
        "setup_intent.setup_failed" => {
            c.post(
                "/v1/setup_intents",
                &[
                    ("payment_method", "pm_card_visa_chargeDeclined"),
                    ("confirm", "true"),
                ],
            )
            .await?;
        }
        "setup_intent.canceled" => {
            let si = c.post("/v1/setup_intents", &[]).await?;
            c.post(&format!("/v1/setup_intents/{}/cancel", id(&si)), &[])
                .await?;
        }
        other => bail!(
            "unsupported event {other:?}; supported: {}",
            SUPPORTED_TRIGGERS.join(", ")
        ),
    }
    Ok(c.ids)
}
