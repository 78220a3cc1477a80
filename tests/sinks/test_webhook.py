"""The webhook sink delivers signed alerts to a real HTTP server on loopback and survives a dead endpoint."""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import orjson

from chargeguard.events import Alert, Severity
from chargeguard.sinks.webhook import WebhookSink
from chargeguard.testing import BASE_TS

SECRET = b"shared-secret-for-tests"


def _alert() -> Alert:
    return Alert(
        id="al_1",
        kind="token.concurrent_use",
        severity=Severity.HIGH,
        confidence=0.9,
        ts=BASE_TS,
        station="CP-1",
        stations=("CP-1",),
        transactions=("1",),
        token_ref=None,
        summary="s",
        evidence={},
    )


def test_signed_delivery() -> None:
    received: list[tuple[dict[str, str], bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((dict(self.headers), body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            return None

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        sink = WebhookSink(f"http://127.0.0.1:{server.server_port}/hook", SECRET)
        sink(_alert())
        deadline = time.monotonic() + 10
        while not received and time.monotonic() < deadline:
            time.sleep(0.02)
        sink.close()
    finally:
        server.shutdown()
        server.server_close()
    headers, body = received[0]
    assert orjson.loads(body)["kind"] == "token.concurrent_use"
    stamp = headers["X-Chargeguard-Timestamp"]
    expected = hmac.new(SECRET, stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    assert headers["X-Chargeguard-Signature"] == f"sha256={expected}"
    assert sink.stats.delivered == 1


def test_dead_endpoint_is_counted_not_raised() -> None:
    sink = WebhookSink("http://127.0.0.1:9/nothing-listens", SECRET, timeout_s=0.5, attempts=2)
    sink(_alert())
    sink.close(timeout_s=10)
    assert sink.stats.failed == 1 and sink.stats.delivered == 0
