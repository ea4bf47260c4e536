//! Test harness: an in-process sandbox on port 0 driven over real HTTP, and
//! a webhook receiver that records (and optionally refuses) deliveries.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use obol_sandbox::{ChaosConfig, Sandbox, SandboxConfig, SandboxDb};
use serde_json::Value;

pub const KEY: &str = "sk_test_obolsandboxtests";

pub struct TestSandbox {
    pub base: String,
    pub http: reqwest::Client,
    pub key: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

pub struct Resp {
    pub status: u16,
    pub body: Value,
    pub headers: reqwest::header::HeaderMap,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    pub fn id(&self) -> String {
        self.body["id"].as_str().unwrap_or_default().to_string()
    }
    pub fn ok(self) -> Value {
        assert_eq!(self.status, 200, "unexpected response: {}", self.body);
        self.body
    }
    pub fn err(&self) -> &Value {
        &self.body["error"]
    }
}

pub fn config() -> SandboxConfig {
    SandboxConfig {
        db: SandboxDb::Memory,
        chaos: ChaosConfig::default(),
        public_url: None,
        webhook_retry_base: Duration::from_millis(50),
        rate_limit_per_second: None,
    }
}

pub async fn spawn() -> TestSandbox {
    spawn_with(config()).await
}

pub async fn spawn_with(config: SandboxConfig) -> TestSandbox {
    let sandbox = Sandbox::bind("127.0.0.1:0".parse().unwrap(), config)
        .await
        .unwrap();
    let base = format!("http://{}", sandbox.local_addr());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(sandbox.run_until(async {
        let _ = rx.await;
    }));
    TestSandbox {
        base,
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        key: KEY.to_string(),
        stop: Some(tx),
        task: Some(task),
    }
}

impl TestSandbox {
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.unwrap().unwrap();
        }
    }

    async fn read(r: reqwest::Response) -> Resp {
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let text = r.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Resp {
            status,
            body,
            headers,
        }
    }

    pub async fn post(&self, path: &str, form: &[(&str, &str)]) -> Resp {
        self.post_with(path, form, &[]).await
    }

    pub async fn post_with(
        &self,
        path: &str,
        form: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> Resp {
        let mut req = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.key)
            .form(form);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        Self::read(req.send().await.unwrap()).await
    }

    pub async fn get(&self, path: &str) -> Resp {
        Self::read(
            self.http
                .get(format!("{}{path}", self.base))
                .bearer_auth(&self.key)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    pub async fn delete(&self, path: &str) -> Resp {
        Self::read(
            self.http
                .delete(format!("{}{path}", self.base))
                .bearer_auth(&self.key)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    pub async fn raw_get(&self, url: &str) -> reqwest::Response {
        self.http.get(url).send().await.unwrap()
    }

    pub async fn stats(&self) -> Value {
        self.http
            .get(format!("{}/_sandbox/stats", self.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub async fn events_of(&self, etype: &str) -> Vec<Value> {
        let r = self
            .get(&format!("/v1/events?type={etype}&limit=100"))
            .await
            .ok();
        r["data"].as_array().cloned().unwrap_or_default()
    }

    /// Confirms an intent with `pm` and returns the response.
    pub async fn pay(&self, amount: &str, pm: &str, extra: &[(&str, &str)]) -> Resp {
        let mut form = vec![
            ("amount", amount),
            ("currency", "eur"),
            ("payment_method", pm),
            ("confirm", "true"),
        ];
        form.extend_from_slice(extra);
        self.post("/v1/payment_intents", &form).await
    }
}

#[derive(Clone, Debug)]
pub struct Delivery {
    pub signature: String,
    pub body: String,
}

#[derive(Clone, Default)]
struct ReceiverState {
    got: Arc<Mutex<Vec<Delivery>>>,
    refuse_first: Arc<Mutex<usize>>,
}

/// A local webhook endpoint recording every POST; the first `refuse_first`
/// deliveries get a 500.
pub struct Receiver {
    pub url: String,
    state: ReceiverState,
    _task: tokio::task::JoinHandle<()>,
}

async fn receive(State(s): State<ReceiverState>, headers: HeaderMap, body: Bytes) -> StatusCode {
    {
        let mut refuse = s.refuse_first.lock().unwrap();
        if *refuse > 0 {
            *refuse -= 1;
            return StatusCode::INTERNAL_SERVER_ERROR;
        }
    }
    let signature = headers
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    s.got.lock().unwrap().push(Delivery {
        signature,
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    StatusCode::OK
}

impl Receiver {
    pub async fn start(refuse_first: usize) -> Receiver {
        Self::start_on("127.0.0.1:0".parse().unwrap(), refuse_first).await
    }

    pub async fn start_on(addr: SocketAddr, refuse_first: usize) -> Receiver {
        let state = ReceiverState {
            got: Default::default(),
            refuse_first: Arc::new(Mutex::new(refuse_first)),
        };
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let app = Router::new()
            .route("/hook", post(receive))
            .with_state(state.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver {
            url,
            state,
            _task: task,
        }
    }

    pub fn deliveries(&self) -> Vec<Delivery> {
        self.state.got.lock().unwrap().clone()
    }

    pub fn event_types(&self) -> Vec<String> {
        self.deliveries()
            .iter()
            .map(|d| {
                serde_json::from_str::<Value>(&d.body).unwrap()["type"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect()
    }

    /// Waits until `pred` holds over the deliveries, or panics after 10 s.
    pub async fn wait_for(&self, what: &str, pred: impl Fn(&[Delivery]) -> bool) -> Vec<Delivery> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let got = self.deliveries();
            if pred(&got) {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; got {:?}",
                self.event_types()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Polls `f` until it returns `Some`, or panics after 10 s.
pub async fn eventually<T, F, Fut>(what: &str, f: F) -> T
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
