//! obol's Stripe-Signature verifier against Stripe's own Node library:
//! headers made by `stripe.webhooks.generateTestHeaderString` must pass.

use secrecy::SecretString;

use obol::stripe::signature::{verify, DEFAULT_TOLERANCE_SECONDS};

fn node_signed() -> serde_json::Value {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../conformance/node");
    let out = std::process::Command::new("node")
        .arg("sign.mjs")
        .current_dir(dir)
        .output()
        .expect("node is installed (scripts/test.sh installs it)");
    assert!(
        out.status.success(),
        "sign.mjs failed (run scripts/test.sh, which installs conformance/node): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn headers_from_stripes_node_library_verify() {
    let signed = node_signed();
    let payload = signed["payload"].as_str().unwrap();
    let header = signed["header"].as_str().unwrap();
    let secret = SecretString::from(signed["secret"].as_str().unwrap().to_string());
    let now = chrono::Utc::now().timestamp();
    let t = verify(
        payload.as_bytes(),
        Some(header),
        std::slice::from_ref(&secret),
        now,
        DEFAULT_TOLERANCE_SECONDS,
    );
    assert!(t.is_ok(), "{header}: {t:?}");

    let tampered = payload.replace("evt_", "evt_x");
    assert!(verify(
        tampered.as_bytes(),
        Some(header),
        &[secret],
        now,
        DEFAULT_TOLERANCE_SECONDS
    )
    .is_err());
    let other = SecretString::from("whsec_someone_else".to_string());
    assert!(verify(
        payload.as_bytes(),
        Some(header),
        &[other],
        now,
        DEFAULT_TOLERANCE_SECONDS
    )
    .is_err());
}
