"""Shared fixtures: a StripeClient pointed at the sandbox (STRIPE_API_BASE)
whose HTTP client records every response body for schema validation, and a
local webhook receiver."""

import json
import os
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import stripe

API_KEY = "sk_test_obolconformance"
RECORDED = []  # (method, url, status, body dict)


class RecordingClient(stripe.RequestsClient):
    def request(self, method, url, headers, post_data=None):
        content, status, rheaders = super().request(method, url, headers, post_data)
        try:
            body = json.loads(content)
        except ValueError:
            body = None
        RECORDED.append((method, url, status, body, dict(rheaders)))
        return content, status, rheaders


@pytest.fixture(scope="session")
def api_base():
    base = os.environ.get("STRIPE_API_BASE")
    if not base:
        pytest.fail("STRIPE_API_BASE is not set; run conformance/run.sh")
    return base.rstrip("/")


@pytest.fixture(scope="session")
def client(api_base):
    return stripe.StripeClient(
        API_KEY,
        base_addresses={"api": api_base},
        http_client=RecordingClient(),
        max_network_retries=2,
    )


@pytest.fixture
def tag():
    """A unique marker to find this test's objects in shared lists."""
    return uuid.uuid4().hex[:12]


class Receiver:
    def __init__(self):
        self.got = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(length)
                outer.got.append((dict(self.headers), body))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d/hook" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def wait_for(self, pred, timeout=10):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if pred(self.got):
                return list(self.got)
            time.sleep(0.05)
        raise AssertionError("timed out; got %d deliveries" % len(self.got))

    def close(self):
        self.server.shutdown()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()
