use obol_sandbox::{trigger, SUPPORTED_TRIGGERS};

use crate::helpers::*;

#[tokio::test]
async fn every_supported_trigger_causes_its_event() {
    let sb = spawn().await;
    for event in SUPPORTED_TRIGGERS {
        let ids = trigger(&sb.base, KEY, event)
            .await
            .unwrap_or_else(|e| panic!("{event}: {e:#}"));
        assert!(!ids.is_empty(), "{event}");
        assert!(
            !sb.events_of(event).await.is_empty(),
            "{event} did not happen"
        );
    }
    let err = trigger(&sb.base, KEY, "invoice.paid")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("payment_intent.succeeded"), "{err}");
    sb.stop().await;
}
