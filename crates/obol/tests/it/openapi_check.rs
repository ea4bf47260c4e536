//! The test suite's OpenAPI validator: every response obol sends to a
//! test through `Obol::http` (and every notification a `TestReceiver`
//! gets) is checked against the document obol serves, and counted.
//!
//! A response is checked for: a documented path and method (an
//! undocumented route may only answer 404 `route_not_found` or 405), a
//! documented status, the response's required headers, the JSON body
//! against the status's schema (JSON Schema 2020-12, formats asserted), and
//! an error's `code` against the status's `x-error-codes`. A mismatch
//! fails the test that got the response.
//!
//! `OPENAPI_CHECK_TALLY=<file>` appends one line per checked response
//! (`METHOD template status`); `scripts/test.sh` counts them.

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, LazyLock, Mutex};

use serde_json::{json, Value};

/// The document under test: what `GET /openapi.json` serves.
pub fn document() -> &'static Value {
    obol::openapi::document()
}

type Compiled = Arc<jsonschema::Validator>;

static SCHEMAS: LazyLock<Mutex<HashMap<String, Compiled>>> = LazyLock::new(Default::default);

/// A validator for `schema` (any schema of the document: `$ref`s resolve
/// against the document's `components`).
fn compiled(key: &str, schema: &Value) -> Result<Compiled, String> {
    if let Some(v) = SCHEMAS.lock().unwrap().get(key) {
        return Ok(v.clone());
    }
    let mut root = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "components": document()["components"].clone(),
    });
    match schema.as_object() {
        Some(obj) => {
            for (k, v) in obj {
                root[k] = v.clone();
            }
        }
        None => return Err(format!("{key}: schema is not an object")),
    }
    let v = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .build(&root)
        .map_err(|e| format!("{key}: the document's schema does not compile: {e}"))?;
    let v = Arc::new(v);
    SCHEMAS.lock().unwrap().insert(key.to_string(), v.clone());
    Ok(v)
}

fn validate(key: &str, schema: &Value, instance: &Value) -> Result<(), String> {
    let v = compiled(key, schema)?;
    let errors: Vec<String> = v
        .iter_errors(instance)
        .take(5)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

/// The documented path template `path` matches; literal segments win
/// over parameters.
fn template_of(path: &str) -> Option<&'static str> {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    let mut best: Option<(&'static str, usize)> = None;
    for template in document()["paths"].as_object()?.keys() {
        let t: Vec<&str> = template.split('/').collect();
        if t.len() != segments.len() {
            continue;
        }
        let mut literal = 0;
        let matches = t.iter().zip(&segments).all(|(t, s)| {
            if t.starts_with('{') {
                !s.is_empty()
            } else {
                literal += 1;
                t == s
            }
        });
        if matches && best.is_none_or(|(_, l)| literal > l) {
            best = Some((template.as_str(), literal));
        }
    }
    best.map(|(t, _)| t)
}

fn tally(line: &str) {
    if let Ok(path) = std::env::var("OPENAPI_CHECK_TALLY") {
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            // One write per line: with O_APPEND, lines from parallel tests
            // do not interleave.
            let _ = f.write_all(format!("{line}\n").as_bytes());
        }
    }
}

/// Checks one response obol sent.
pub fn check_response(
    method: &str,
    path: &str,
    status: u16,
    headers: &http::HeaderMap,
    body: &[u8],
) -> Result<(), String> {
    let what = format!("{method} {path} → {status}");
    let json_body = || -> Result<Value, String> {
        serde_json::from_slice(body).map_err(|e| {
            format!(
                "{what}: body is not JSON ({e}): {}",
                String::from_utf8_lossy(body)
            )
        })
    };
    let Some(template) = template_of(path) else {
        // Not a documented route: only "no such route" may answer.
        let code = json_body()?["error"]["code"].clone();
        if status == 404 && code == "route_not_found" {
            tally(&format!("{method} (no route) {status}"));
            return Ok(());
        }
        return Err(format!(
            "{what}: the route is not in the OpenAPI document (answered {code})"
        ));
    };
    let lower = method.to_ascii_lowercase();
    let Some(op) = document()["paths"][template].get(&lower) else {
        let code = json_body()?["error"]["code"].clone();
        if status == 405 && code == "method_not_allowed" {
            tally(&format!("{method} {template} {status}"));
            return Ok(());
        }
        return Err(format!("{what}: {method} {template} is not documented"));
    };
    let responses = &op["responses"];
    let response = responses
        .get(status.to_string())
        .or_else(|| responses.get(format!("{}XX", status / 100)))
        .or_else(|| responses.get("default"))
        .ok_or_else(|| {
            format!(
                "{what}: status {status} is not documented for {method} {template} (documented: {:?}); body {}",
                responses.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>()).unwrap_or_default(),
                String::from_utf8_lossy(body)
            )
        })?;
    for (name, header) in response["headers"].as_object().into_iter().flatten() {
        let value = headers.get(name.as_str()).and_then(|v| v.to_str().ok());
        match value {
            None if header["required"] == true => {
                return Err(format!("{what}: required header {name} is missing"))
            }
            None => {}
            Some(v) => {
                let schema = &header["schema"];
                let instance = if schema["type"] == "integer" {
                    v.parse::<i64>().map(Value::from).unwrap_or(json!(v))
                } else {
                    json!(v)
                };
                validate(
                    &format!("{template} {lower} {status} header {name}"),
                    schema,
                    &instance,
                )
                .map_err(|e| format!("{what}: header {name}: {e}"))?;
            }
        }
    }
    let ct = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let media: Vec<&String> = response["content"]
        .as_object()
        .map(|c| c.keys().collect())
        .unwrap_or_default();
    if !media.is_empty() && !media.iter().any(|m| ct.starts_with(m.as_str())) {
        return Err(format!("{what}: content-type {ct:?}, documented {media:?}"));
    }
    let is_json = media.iter().any(|m| m.as_str() == "application/json");
    match response["content"]["application/json"].get("schema") {
        None if !media.is_empty() && !is_json => {}
        None => {
            if !body.is_empty() {
                return Err(format!(
                    "{what}: documented without a body, answered {}",
                    String::from_utf8_lossy(body)
                ));
            }
        }
        Some(schema) => {
            let ct = headers
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            if !ct.starts_with("application/json") {
                return Err(format!(
                    "{what}: content-type {ct:?}, documented application/json"
                ));
            }
            let value = json_body()?;
            validate(&format!("{template} {lower} {status}"), schema, &value).map_err(|e| {
                format!("{what}: body does not match the document: {e}; body {value}")
            })?;
            if let Some(codes) = response["x-error-codes"].as_array() {
                // obol's `{"error": {"code"}}`, or ACP's flat `{"code"}` (/acp).
                let code = if value["error"].is_object() {
                    &value["error"]["code"]
                } else {
                    &value["code"]
                };
                if !codes.contains(code) {
                    return Err(format!(
                        "{what}: error code {code} is not among the codes documented for {status}: {codes:?}"
                    ));
                }
            }
        }
    }
    tally(&format!("{method} {template} {status}"));
    Ok(())
}

/// Checks one notification a receiver got against the document's
/// `webhooks` entry for its type.
pub fn check_notification(body: &str) -> Result<(), String> {
    let value: Value =
        serde_json::from_str(body).map_err(|e| format!("notification is not JSON: {e}"))?;
    let kind = value["type"].as_str().unwrap_or_default();
    let hook = document()["webhooks"]
        .get(kind)
        .ok_or_else(|| format!("notification type {kind:?} is not in the document's webhooks"))?;
    let schema = &hook["post"]["requestBody"]["content"]["application/json"]["schema"];
    validate(&format!("webhook {kind}"), schema, &value)
        .map_err(|e| format!("notification {kind}: {e}; body {value}"))?;
    // A receiver's list is read again and again while a test waits;
    // each notification counts once.
    static SEEN: LazyLock<Mutex<std::collections::HashSet<String>>> =
        LazyLock::new(Default::default);
    if SEEN.lock().unwrap().insert(body.to_string()) {
        tally(&format!("WEBHOOK {kind} -"));
    }
    Ok(())
}

/// reqwest middleware: checks every response from `base` (one obol).
pub struct Checked {
    pub base: String,
}

#[async_trait::async_trait]
impl reqwest_middleware::Middleware for Checked {
    async fn handle(
        &self,
        req: reqwest::Request,
        extensions: &mut http::Extensions,
        next: reqwest_middleware::Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        let method = req.method().to_string();
        let url = req.url().clone();
        let response = next.run(req, extensions).await?;
        if !url.as_str().starts_with(&self.base) || method == "HEAD" {
            return Ok(response);
        }
        let status = response.status();
        let version = response.version();
        let headers = response.headers().clone();
        let body = response.bytes().await?;
        if let Err(e) = check_response(&method, url.path(), status.as_u16(), &headers, &body) {
            panic!("OpenAPI: {e}");
        }
        let mut rebuilt = http::Response::builder().status(status).version(version);
        if let Some(h) = rebuilt.headers_mut() {
            *h = headers;
        }
        let rebuilt = rebuilt
            .body(body)
            .map_err(|e| reqwest_middleware::Error::Middleware(e.into()))?;
        Ok(reqwest::Response::from(rebuilt))
    }
}

/// An HTTP client whose every response from `base` is checked.
pub fn client(base: &str) -> reqwest_middleware::ClientWithMiddleware {
    checked(reqwest::Client::new(), base)
}

/// `inner` (with its own timeouts, …), checking every response from `base`.
pub fn checked(inner: reqwest::Client, base: &str) -> reqwest_middleware::ClientWithMiddleware {
    reqwest_middleware::ClientBuilder::new(inner)
        .with(Checked {
            base: base.to_string(),
        })
        .build()
}
