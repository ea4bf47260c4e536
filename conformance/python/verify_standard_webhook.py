"""Verifies one obol notification with the `standardwebhooks` reference library.

Reads {"secret", "headers", "body"} as JSON on stdin; exits 0 and prints the
verified payload's type when the signature holds, exits 1 otherwise.
Used by obol's Rust integration tests.
"""
import json
import sys

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

msg = json.load(sys.stdin)
try:
    payload = Webhook(msg["secret"]).verify(msg["body"], msg["headers"])
except WebhookVerificationError as e:
    print(f"rejected: {e}")
    sys.exit(1)
print(payload["type"])
