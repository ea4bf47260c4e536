//! The OpenAPI document itself: served as `obol openapi` prints it, valid
//! OpenAPI 3.1 by an independent validator, and good enough for a
//! standard generator's client to run the README's quickstart.

use std::process::Command;

use crate::helpers::{run_obol, Backend, Obol};

fn venv_bin(name: &str) -> String {
    format!(
        "{}/../../conformance/.venv/bin/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_served_document_is_the_one_obol_openapi_prints() {
    let obol = Obol::start(Backend::Sqlite).await;
    // No credential needed.
    let r = obol
        .http
        .get(obol.url("/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let served: serde_json::Value = r.json().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (code, stdout, stderr) = run_obol(&["openapi"], &[], dir.path());
    assert_eq!(code, 0, "{stderr}");
    let printed: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(served, printed);
    assert_eq!(served["openapi"], "3.1.0");
    // Every route the README documents is in it, with its credentials.
    let paths = served["paths"].as_object().unwrap();
    assert!(paths.len() >= 35, "{} paths", paths.len());
    assert_eq!(
        served["paths"]["/v1/payments/{id}/refunds"]["post"]["security"],
        serde_json::json!([{"secret_key": []}])
    );
    let schemes = served["components"]["securitySchemes"].as_object().unwrap();
    for s in ["secret_key", "customer_token", "guest_token"] {
        assert!(schemes.contains_key(s), "{s}");
    }
    assert_eq!(
        served["webhooks"].as_object().unwrap().len(),
        // and the two ACP order events sent to the agent platform
        obol::outbox::EVENT_TYPES.len() + 2
    );
    assert_eq!(
        served["components"]["schemas"]["OrderId"]["pattern"],
        "^ord_[0-9a-z]{26}$"
    );
}

#[test]
fn the_document_is_valid_openapi_3_1() {
    let doc = serde_json::to_string(crate::openapi_check::document()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("openapi.json");
    std::fs::write(&path, doc).unwrap();
    let out = Command::new(venv_bin("python"))
        .args([
            "-c",
            "import json, sys\n\
             from openapi_spec_validator.validation import OpenAPIV31SpecValidator\n\
             d = json.load(open(sys.argv[1]))\n\
             errors = list(OpenAPIV31SpecValidator(d).iter_errors())\n\
             [print(e.message[:500], list(e.path)) for e in errors[:20]]\n\
             print(f'{len(errors)} errors')\n\
             sys.exit(1 if errors else 0)",
        ])
        .arg(&path)
        .output()
        .expect("the conformance venv exists (scripts/test.sh creates it)");
    assert!(
        out.status.success(),
        "openapi-spec-validator: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `openapi-python-client` generates a client from the served document;
/// `clients/python/quickstart.py` runs the README's quickstart with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generated_python_client_runs_the_quickstart() {
    let obol = Obol::builder(Backend::Sqlite)
        .without_api_keys()
        .start()
        .await;
    let doc = obol
        .http
        .get(obol.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("openapi.json"), doc).unwrap();
    let gen = Command::new(venv_bin("openapi-python-client"))
        .args(["generate", "--path", "openapi.json", "--meta", "none"])
        .args(["--output-path", "obol_client", "--config"])
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../clients/python/generator.yaml"
        ))
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        gen.status.success() && dir.path().join("obol_client/client.py").exists(),
        "generation failed: {}{}",
        String::from_utf8_lossy(&gen.stdout),
        String::from_utf8_lossy(&gen.stderr)
    );
    let run = Command::new(venv_bin("python"))
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../clients/python/quickstart.py"
        ))
        .env("PYTHONPATH", dir.path())
        .env("OBOL", &obol.base_url)
        .env("KEY", &obol.api_key)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "quickstart with the generated client failed:\n{stdout}{}\nobol:\n{}",
        String::from_utf8_lossy(&run.stderr),
        obol.output()
    );
    assert!(stdout.contains("payment completed"), "{stdout}");
}
