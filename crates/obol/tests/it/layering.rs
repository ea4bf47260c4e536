//! The layering rule, checked on the source: HTTP handlers parse, call one
//! `ops::` use case and render. A file under `src/api/` that names storage,
//! SQL or the Stripe client fails here, so a use case cannot grow back
//! into a handler (where an MCP tool or a job could not call it).

use std::path::Path;

/// What a file under `api/` must not name.
const FORBIDDEN: &[&str] = &[
    "crate::storage",
    "storage::",
    "sqlx",
    ".store()",
    ".conn()",
    ".begin()",
    ".acquire()",
    "crate::stripe",
    "StripeClient",
    ".stripe()",
    "crate::inbox",
    "crate::payments",
    "crate::orders",
];

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn api_handlers_touch_neither_storage_nor_stripe() {
    let api = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/api");
    let mut files = Vec::new();
    rust_files(&api, &mut files);
    // The admin dashboard's handlers follow the same rule.
    rust_files(&api.with_file_name("admin"), &mut files);
    assert!(
        files.len() >= 10,
        "found only {} files under src/api",
        files.len()
    );
    let mut offences = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for word in FORBIDDEN {
                if code.contains(word) {
                    offences.push(format!(
                        "{}:{}: names {word:?}: {}",
                        file.strip_prefix(&api).unwrap().display(),
                        n + 1,
                        line.trim()
                    ));
                }
            }
        }
    }
    assert!(
        offences.is_empty(),
        "api/ must call ops/ instead of storage or Stripe:\n{}",
        offences.join("\n")
    );
}

/// `ops/` and `inbox/` must not import each other's use cases: the inbox
/// applies events through the payment writer, and ops calls that writer
/// too; neither reaches into the other.
#[test]
fn the_inbox_does_not_call_use_cases() {
    let inbox = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/inbox");
    let mut files = Vec::new();
    rust_files(&inbox, &mut files);
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        assert!(
            !text.contains("crate::ops"),
            "{} calls ops/",
            file.display()
        );
    }
}

/// Every route is registered with `utoipa_axum`'s `routes!`, which takes
/// the handler's `#[utoipa::path]` description with it: a handler without
/// one does not compile. A plain axum `.route(…)` would bypass that, so
/// none may appear under `api/`; and every handler there is described.
#[test]
fn every_route_is_registered_with_its_description() {
    let api = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/api");
    let mut files = Vec::new();
    rust_files(&api, &mut files);
    rust_files(&api.with_file_name("admin"), &mut files);
    let mut offences = Vec::new();
    let mut described = 0;
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        described += text.matches("#[utoipa::path(").count();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            if code.contains(".route(") || code.contains(".nest(") || code.contains("routing::") {
                offences.push(format!(
                    "{}:{}: {}",
                    file.strip_prefix(&api).unwrap().display(),
                    n + 1,
                    line.trim()
                ));
            }
        }
    }
    assert!(
        offences.is_empty(),
        "routes go through `routes!(handler)` so they carry their OpenAPI description:\n{}",
        offences.join("\n")
    );
    let operations: usize = obol::openapi::document()["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|item| item.as_object().unwrap().len())
        .sum();
    assert_eq!(
        described, operations,
        "every #[utoipa::path] is one documented operation"
    );
}
