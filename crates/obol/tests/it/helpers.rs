//! Test support: per-test databases on both backends, and `obol serve`
//! started as a real process on a free port.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Generates one `#[tokio::test]` per backend for each named async fn
/// taking a `Backend`: `sqlite::name` and `postgres::name`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::helpers::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::helpers::Backend::Postgres).await
                }
            )*
        }
    };
}

/// A fresh, empty database for one test; a PostgreSQL one is dropped when
/// the `TestDb` is (the SQLite file goes with `dir`).
pub struct TestDb {
    pub url: String,
    pub dir: tempfile::TempDir,
    /// PostgreSQL: (admin URL, database name) to drop at the end.
    pg: Option<(String, String)>,
}

/// The admin connection the PostgreSQL tests create databases with.
pub fn postgres_admin_url() -> String {
    std::env::var("POSTGRES_TEST_URL")
        .unwrap_or_else(|_| "postgres://postgres:postgres@127.0.0.1:5432/postgres".to_string())
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some((admin, name)) = self.pg.take() else {
            return;
        };
        // Drop is synchronous and usually runs on a tokio worker thread,
        // where blocking on the test's runtime is not allowed: a thread of
        // its own with a small runtime does it. FORCE ends sessions still
        // open (a test's pool, an obol killed a moment ago).
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            rt.block_on(async {
                use sqlx::Connection;
                let mut conn = sqlx::PgConnection::connect(&admin)
                    .await
                    .map_err(|e| e.to_string())?;
                sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut conn)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok::<_, String>(())
            })
        })
        .join();
        match dropped {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("could not drop test database {}: {e}", self.url),
            Err(_) => eprintln!("dropping test database {} panicked", self.url),
        }
    }
}

impl TestDb {
    pub async fn new(backend: Backend) -> TestDb {
        let dir = tempfile::tempdir().unwrap();
        let url = match backend {
            Backend::Sqlite => {
                format!("sqlite://{}?mode=rwc", dir.path().join("obol.db").display())
            }
            Backend::Postgres => {
                let admin = postgres_admin_url();
                let name = format!("obol_test_{}", uuid::Uuid::new_v4().simple());
                use sqlx::Connection;
                let mut conn = sqlx::PgConnection::connect(&admin)
                    .await
                    .unwrap_or_else(|e| {
                        panic!(
                            "PostgreSQL is needed for the postgres tests ({admin}): {e}. \
                         Run ./scripts/test.sh, which starts it."
                        )
                    });
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&mut conn)
                    .await
                    .unwrap();
                let base = admin.rsplit_once('/').unwrap().0;
                let url = format!("{base}/{name}");
                return TestDb {
                    url,
                    dir,
                    pg: Some((admin, name)),
                };
            }
        };
        TestDb { url, dir, pg: None }
    }

    /// The same database for a second process, with its own working
    /// directory (two `obol serve` on one PostgreSQL database). The copy
    /// does not own the database: the original drops it.
    pub fn share(&self) -> TestDb {
        TestDb {
            url: self.url.clone(),
            dir: tempfile::tempdir().unwrap(),
            pg: None,
        }
    }

    pub fn config(&self, extra_yaml: &str) -> obol::config::Config {
        let yaml = format!(
            "database_url: \"{}\"\nlisten: 127.0.0.1:0\nsandbox:\n  db: memory\n{extra_yaml}",
            self.url
        );
        obol::config::Config::from_yaml(&yaml).unwrap()
    }

    pub async fn store(&self) -> obol::storage::Store {
        let store = obol::storage::Store::connect(&self.config(""))
            .await
            .unwrap();
        store.migrate().await.unwrap();
        store
    }
}

pub fn random_api_key() -> String {
    format!("obol_sk_test{}", uuid::Uuid::new_v4().simple())
}

/// A running `obol serve` process. Its `Drop` kills the process before
/// the fields drop, so `db` (and with it a PostgreSQL database) goes only
/// once nothing uses it.
pub struct Obol {
    child: Child,
    pub base_url: String,
    pub api_key: String,
    pub db: TestDb,
    pub output: Arc<Mutex<String>>,
    /// Checks every response against the OpenAPI document (`openapi_check`).
    pub http: reqwest_middleware::ClientWithMiddleware,
}

pub struct ObolBuilder {
    backend: Backend,
    env: Vec<(String, String)>,
    api_key: Option<String>,
    db: Option<TestDb>,
}

impl ObolBuilder {
    pub fn env(mut self, k: &str, v: &str) -> Self {
        if k == "OBOL_API_KEYS" {
            self.api_key = Some(v.split(',').next().unwrap_or_default().to_string());
        }
        self.env.push((k.into(), v.into()));
        self
    }

    /// Start without configured API keys (the sandbox development key).
    pub fn without_api_keys(mut self) -> Self {
        self.api_key = None;
        self
    }

    /// Reuse the database of an earlier process (restart tests).
    pub fn with_db(mut self, db: TestDb) -> Self {
        self.db = Some(db);
        self
    }

    pub async fn start(self) -> Obol {
        let db = match self.db {
            Some(db) => db,
            None => TestDb::new(self.backend).await,
        };
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_obol"));
        cmd.arg("serve")
            .current_dir(db.dir.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("OBOL_LISTEN", "127.0.0.1:0")
            .env("OBOL_DATABASE_URL", &db.url)
            .env("OBOL_SANDBOX__DB", "memory")
            .env("OBOL_LOG", "info,obol=debug")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(key) = &self.api_key {
            cmd.env("OBOL_API_KEYS", key);
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start obol");
        let output = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = output.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut o = sink.lock().unwrap();
                o.push_str(&line);
                o.push('\n');
            }
        });
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        let sink = output.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                {
                    let mut o = sink.lock().unwrap();
                    o.push_str(&line);
                    o.push('\n');
                }
                let _ = tx.send(line);
            }
        });
        let mut dev_key = None;
        let deadline = Instant::now() + Duration::from_secs(60);
        let addr = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(k) = line.split("stored hashed): ").nth(1) {
                        dev_key = Some(k.trim().to_string());
                    }
                    if let Some(a) = line.split("listening on http://").nth(1) {
                        break a.trim().to_string();
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    panic!("obol did not start:\n{}", output.lock().unwrap());
                }
            }
        };
        let api_key = self.api_key.or(dev_key).unwrap_or_default();
        let base_url = format!("http://{addr}");
        Obol {
            child,
            http: crate::openapi_check::client(&base_url),
            base_url,
            api_key,
            db,
            output,
        }
    }
}

impl Obol {
    pub fn builder(backend: Backend) -> ObolBuilder {
        ObolBuilder {
            backend,
            env: Vec::new(),
            api_key: Some(random_api_key()),
            db: None,
        }
    }

    pub async fn start(backend: Backend) -> Obol {
        Self::builder(backend).start().await
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url, path)
    }

    /// A request with the secret API key.
    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .http
            .post(self.url(path))
            .bearer_auth(&self.api_key)
            .json(&body)
            .send()
            .await
            .unwrap();
        status_json(r).await
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.get_as(path, &self.api_key.clone()).await
    }

    pub async fn get_as(&self, path: &str, bearer: &str) -> (u16, Value) {
        let r = self
            .http
            .get(self.url(path))
            .bearer_auth(bearer)
            .send()
            .await
            .unwrap();
        status_json(r).await
    }

    pub async fn create_customer(&self, external_id: &str) -> Value {
        let (status, body) = self
            .post(
                "/v1/customers",
                serde_json::json!({"external_id": external_id, "email": format!("{external_id}@example.com"), "name": "Ana"}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body
    }

    pub async fn customer_token(&self, customer_id: &str, ttl: u64) -> String {
        let (status, body) = self
            .post(
                "/v1/customer-tokens",
                serde_json::json!({"customer_id": customer_id, "ttl_seconds": ttl}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body["token"].as_str().unwrap().to_string()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    /// SIGTERM (again, if already sent), then wait for the exit status.
    pub fn terminate(mut self) -> (std::process::ExitStatus, TestDb, String) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            assert!(Instant::now() < deadline, "obol did not stop after SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        };
        let output = self.output();
        let db = std::mem::replace(
            &mut self.db,
            TestDb {
                url: String::new(),
                dir: tempfile::tempdir().unwrap(),
                pg: None,
            },
        );
        (status, db, output)
    }
}

impl Drop for Obol {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub async fn status_json(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body)
}

/// Runs the obol binary with arguments and environment; returns (code, stdout, stderr).
pub fn run_obol(
    args: &[&str],
    env: &[(&str, &str)],
    dir: &std::path::Path,
) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_obol"))
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// One request a `TestReceiver` got.
#[derive(Clone, Debug)]
pub struct Received {
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

/// An HTTP receiver on a free port for obol's outbound notifications:
/// answers 503 to the first `fail_first` requests, 204 afterwards.
pub struct TestReceiver {
    pub url: String,
    got: Arc<Mutex<Vec<Received>>>,
}

impl TestReceiver {
    pub async fn start(fail_first: usize) -> TestReceiver {
        use axum::http::{HeaderMap, StatusCode};
        let got: Arc<Mutex<Vec<Received>>> = Arc::default();
        let sink = got.clone();
        let app = axum::Router::new().route(
            "/hooks",
            axum::routing::post(move |headers: HeaderMap, body: String| {
                let sink = sink.clone();
                async move {
                    let mut g = sink.lock().unwrap();
                    g.push(Received {
                        headers: headers
                            .iter()
                            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
                            .collect(),
                        body,
                    });
                    if g.len() <= fail_first {
                        StatusCode::SERVICE_UNAVAILABLE
                    } else {
                        StatusCode::NO_CONTENT
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hooks", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        TestReceiver { url, got }
    }

    /// What was received so far; each notification is checked against
    /// the OpenAPI document's `webhooks` (`openapi_check`).
    pub fn received(&self) -> Vec<Received> {
        let got = self.got.lock().unwrap().clone();
        for r in &got {
            if let Err(e) = crate::openapi_check::check_notification(&r.body) {
                panic!("OpenAPI: {e}");
            }
        }
        got
    }

    /// Waits (at most 20 s) until `done` holds for what was received.
    pub async fn until(&self, what: &str, done: impl Fn(&[Received]) -> bool) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let got = self.received();
            if done(&got) {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; received {got:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
