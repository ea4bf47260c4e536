//! `obol serve` as a process: health, the development key, configuration
//! errors, secrets kept out of the logs, and graceful shutdown.

use serde_json::json;

use crate::helpers::{run_obol, Backend, Obol};

#[tokio::test]
async fn health_reports_the_sandbox_and_storage() {
    let obol = Obol::start(Backend::Sqlite).await;
    let r = obol.http.get(obol.url("/health")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r
        .headers()
        .get("x-request-id")
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("req_"));
    let h: serde_json::Value = r.json().await.unwrap();
    assert_eq!(h["status"], "ok");
    assert_eq!(h["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(h["stripe"]["mode"], "sandbox");
    assert!(h["stripe"]["api_base"]
        .as_str()
        .unwrap()
        .starts_with("http://127.0.0.1:"));
    assert!(h["publishable_key"]
        .as_str()
        .unwrap()
        .starts_with("pk_test_"));
    assert_eq!(h["storage"]["backend"], "sqlite");
    assert!(h["checked_at"].is_string());
    assert!(h["stripe"].get("account").is_some());
}

#[tokio::test]
async fn health_on_postgres_names_the_backend() {
    let obol = Obol::start(Backend::Postgres).await;
    let (status, h) = obol.get("/health").await;
    assert_eq!(status, 200);
    assert_eq!(h["storage"]["backend"], "postgres");
}

#[tokio::test]
async fn the_development_key_is_printed_once_and_survives_a_restart() {
    let obol = Obol::builder(Backend::Sqlite)
        .without_api_keys()
        .start()
        .await;
    assert!(
        obol.api_key.starts_with("obol_sk_"),
        "no key printed:\n{}",
        obol.output()
    );
    let key = obol.api_key.clone();
    obol.create_customer("first").await;
    let (status, db, _) = obol.terminate();
    assert!(status.success());

    let again = Obol::builder(Backend::Sqlite)
        .without_api_keys()
        .with_db(db)
        .start()
        .await;
    assert!(
        again.api_key.is_empty(),
        "printed a second time:\n{}",
        again.output()
    );
    assert!(!again.output().contains(&key));
    let (status, _) = again
        .get_as("/v1/customers/cus_01jzzzzzzzzzzzzzzzzzzzzzzz", &key)
        .await;
    assert_eq!(status, 404, "the stored key still authenticates");
}

#[tokio::test]
async fn sigterm_stops_cleanly_with_exit_code_zero() {
    let obol = Obol::start(Backend::Sqlite).await;
    obol.create_customer("ana").await;
    let (status, _, output) = obol.terminate();
    assert!(status.success(), "{status:?}\n{output}");
    assert!(output.contains("stopped"), "{output}");
}

#[tokio::test]
async fn secrets_never_reach_the_logs() {
    let key = crate::helpers::random_api_key();
    let webhook_secret = "whsec_LOGLEAKCHECKxxxxxxxxxxxxxxxx";
    let obol = Obol::builder(Backend::Sqlite)
        .env("OBOL_API_KEYS", &key)
        .env("OBOL_STRIPE__WEBHOOK_SECRETS", webhook_secret)
        .env("OBOL_LOG", "trace")
        .env("OBOL_LOG_FORMAT", "json")
        .start()
        .await;
    let ana = obol.create_customer("ana").await;
    let token = obol.customer_token(ana["id"].as_str().unwrap(), 60).await;
    obol.get_as(
        &format!("/v1/customers/{}", ana["id"].as_str().unwrap()),
        &token,
    )
    .await;
    obol.get_as(
        "/v1/customers/x",
        "obol_sk_WRONGKEYxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    )
    .await;
    obol.post("/v1/customers", json!({"external_id": "ana"}))
        .await;
    let (_, _, output) = obol.terminate();
    assert!(
        output.contains("\"level\""),
        "JSON logs expected:\n{output}"
    );
    for secret in [&key[8..], &webhook_secret[6..], &token[8..], "WRONGKEY"] {
        assert!(
            !output.contains(secret),
            "secret {secret} leaked into the log:\n{output}"
        );
    }
}

#[test]
fn bad_configuration_names_the_key_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("obol.yaml"), "listen: nowhere\n").unwrap();
    let (code, _, stderr) = run_obol(&["config", "check"], &[], dir.path());
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("listen"), "{stderr}");

    let (code, _, stderr) = run_obol(
        &["serve"],
        &[("OBOL_STRIPE__SECRET_KEY", "pk_live_wrong")],
        dir.path(),
    );
    assert_eq!(code, 2, "{stderr}");

    std::fs::write(dir.path().join("obol.yaml"), "").unwrap();
    let (code, _, stderr) = run_obol(
        &["serve"],
        &[("OBOL_STRIPE__SECRET_KEY", "pk_live_wrong")],
        dir.path(),
    );
    assert_eq!(code, 2);
    assert!(stderr.contains("stripe.secret_key"), "{stderr}");
    assert!(
        !stderr.contains("pk_live_wrong"),
        "the bad secret is echoed: {stderr}"
    );

    let (code, stdout, stderr) = run_obol(&["config", "check"], &[], dir.path());
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("configuration ok"));
    assert!(stdout.contains("Sandbox"));
}

#[test]
fn migrate_reports_applied_migrations() {
    let dir = tempfile::tempdir().unwrap();
    let (code, stdout, stderr) = run_obol(&["migrate"], &[], dir.path());
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("sqlite"), "{stdout}");
    let (code, stdout, _) = run_obol(&["migrate"], &[], dir.path());
    assert_eq!(code, 0);
    assert!(stdout.contains(" 0 migration"), "{stdout}");
}

#[tokio::test]
async fn sigterm_lets_an_in_flight_request_finish() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let obol = Obol::start(Backend::Sqlite).await;
    let addr = obol.base_url.trim_start_matches("http://").to_string();
    let body = br#"{"external_id": "in-flight", "email": "late@example.com"}"#;
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /v1/customers HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        obol.api_key,
        body.len()
    );
    // Headers and half the body are in; the handler is waiting for the rest.
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&body[..10]).await.unwrap();
    stream.flush().await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    let pid = obol.pid();
    std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    // The rest of the body goes once obol is shutting down (its log says
    // so), not after a guessed pause: the request must still finish.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !obol
        .output()
        .contains("shutting down: finishing in-flight requests")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "obol never began shutting down:\n{}",
            obol.output()
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    stream.write_all(&body[10..]).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 201"), "{response}");

    let (status, db, output) = obol.terminate();
    assert!(status.success(), "{output}");
    // The row is there after a restart.
    let again = Obol::builder(Backend::Sqlite).with_db(db).start().await;
    let (status, body) = again
        .post("/v1/customers", json!({"external_id": "in-flight"}))
        .await;
    assert_eq!(status, 409, "{body}");
}

#[tokio::test]
async fn register_webhook_adds_one_endpoint_and_reports_duplicates() {
    let sandbox = obol_sandbox::Sandbox::bind(
        "127.0.0.1:0".parse().unwrap(),
        obol_sandbox::SandboxConfig::default(),
    )
    .await
    .unwrap();
    let base = format!("http://{}", sandbox.local_addr());
    tokio::spawn(sandbox.run_until(std::future::pending()));
    let dir = tempfile::tempdir().unwrap();
    let key = crate::helpers::random_api_key();
    let env = [
        ("OBOL_STRIPE__SECRET_KEY", "sk_test_obol_register"),
        ("OBOL_STRIPE__PUBLISHABLE_KEY", "pk_test_obol_register"),
        ("OBOL_STRIPE__API_BASE", base.as_str()),
        ("OBOL_PUBLIC_URL", "https://pay.example.com"),
        ("OBOL_API_KEYS", key.as_str()),
    ];
    let rerun = |dir: std::path::PathBuf, env: Vec<(String, String)>| {
        tokio::task::spawn_blocking(move || {
            let env: Vec<(&str, &str)> =
                env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            run_obol(&["stripe", "register-webhook"], &env, &dir)
        })
    };
    let owned: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let (code, out, err) = rerun(dir.path().to_path_buf(), owned.clone())
        .await
        .unwrap();
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("registered we_"), "{out}");
    assert!(out.contains("whsec_"), "{out}");

    let (code, out, _) = rerun(dir.path().to_path_buf(), owned.clone())
        .await
        .unwrap();
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("already registered"), "{out}");

    // Someone added a second endpoint for the same URL by hand.
    reqwest::Client::new()
        .post(format!("{base}/v1/webhook_endpoints"))
        .bearer_auth("sk_test_obol_register")
        .form(&[
            ("url", "https://pay.example.com/webhooks/stripe"),
            ("enabled_events[]", "*"),
        ])
        .send()
        .await
        .unwrap();
    let (code, out, _) = rerun(dir.path().to_path_buf(), owned).await.unwrap();
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("2 platform webhook endpoints deliver"),
        "{out}"
    );
    let list: serde_json::Value = reqwest::Client::new()
        .get(format!("{base}/v1/webhook_endpoints"))
        .bearer_auth("sk_test_obol_register")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        list["data"].as_array().unwrap().len(),
        2,
        "obol added none itself"
    );
}

#[tokio::test]
async fn obol_trigger_makes_the_event_happen_and_obol_applies_it() {
    let obol = Obol::start(Backend::Sqlite).await;
    let (_, h) = obol.get("/health").await;
    let base = h["stripe"]["api_base"].as_str().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) = tokio::task::spawn_blocking(move || {
        run_obol(
            &["trigger", "payment_intent.succeeded", "--api-base", &base],
            &[],
            dir.path(),
        )
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "{err}");
    let pi = out
        .lines()
        .find(|l| l.starts_with("pi_"))
        .expect("an intent id printed");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let (_, list) = obol.get("/v1/payments?status=completed").await;
        if list["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["stripe_payment_intent_id"] == pi)
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{pi} never reached the ledger: {list}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (code, _, err) = run_obol(
        &[
            "trigger",
            "nothing.happened",
            "--api-base",
            "http://127.0.0.1:9",
        ],
        &[],
        std::path::Path::new("/tmp"),
    );
    assert_ne!(code, 0);
    assert!(
        err.contains("payment_intent.succeeded"),
        "lists the supported events: {err}"
    );
}
