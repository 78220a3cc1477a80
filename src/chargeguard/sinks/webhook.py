"""Signed webhook sink: POSTs each alert (the Alerts JSON format) to an operator endpoint, off the hot path.

Each request carries ``X-Chargeguard-Timestamp`` (Unix seconds) and ``X-Chargeguard-Signature: sha256=<hex>``, an
HMAC-SHA256 over ``"<timestamp>." + body`` with the shared secret, so the receiver can check origin and freshness
(reject old timestamps to stop replays). Delivery runs in one background thread with a bounded queue; failures are
retried with exponential back-off (3 attempts) and then counted and logged - never raised into the engine.
"""

from __future__ import annotations

import hashlib
import hmac
import queue
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

import structlog

from chargeguard.events import Alert
from chargeguard.sinks.jsonl import encode_alert
from chargeguard.vault.redact import redact_url

log = structlog.get_logger("chargeguard.sinks.webhook")


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """The signature header value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={mac}"


@dataclass(slots=True)
class WebhookStats:
    delivered: int = 0
    failed: int = 0
    dropped: int = 0


class WebhookSink:
    """Queue alerts and deliver them from a worker thread; ``close()`` drains the queue (bounded by ``timeout_s``)."""

    def __init__(
        self, url: str, secret: bytes, *, timeout_s: float = 5.0, max_queue: int = 10_000, attempts: int = 3
    ) -> None:
        if not url.startswith(("https://", "http://")):
            raise ValueError("webhook URL must be http(s)")
        self.url = url
        self._secret = secret
        self.timeout_s = timeout_s
        self.attempts = attempts
        self.stats = WebhookStats()
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=max_queue)
        self._thread = threading.Thread(target=self._run, name="chargeguard-webhook", daemon=True)
        self._thread.start()

    def __call__(self, alert: Alert) -> None:
        try:
            self._queue.put_nowait(encode_alert(alert))
        except queue.Full:
            self.stats.dropped += 1
            log.warning("webhook.queue.full", url=redact_url(self.url)[0])

    def _deliver(self, body: bytes) -> bool:
        stamp = str(int(time.time()))
        request = urllib.request.Request(  # noqa: S310 - scheme checked in __init__
            self.url,
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                "X-Chargeguard-Timestamp": stamp,
                "X-Chargeguard-Signature": sign(self._secret, stamp, body),
            },
        )
        with urllib.request.urlopen(request, timeout=self.timeout_s) as response:  # noqa: S310
            return 200 <= int(response.status) < 300

    def _run(self) -> None:
        while True:
            body = self._queue.get()
            if body is None:
                return
            for attempt in range(self.attempts):
                try:
                    if self._deliver(body):
                        self.stats.delivered += 1
                        break
                except (urllib.error.URLError, OSError, ValueError) as exc:
                    log.warning(
                        "webhook.delivery.failed",
                        attempt=attempt + 1,
                        error=type(exc).__name__,
                        url=redact_url(self.url)[0],
                    )
                time.sleep(min(2.0**attempt * 0.2, 5.0))
            else:
                self.stats.failed += 1

    def close(self, timeout_s: float = 10.0) -> None:
        self._queue.put(None)
        self._thread.join(timeout_s)
