"""Test helpers that wait for a server started in another process: poll until ready, fail early when it died."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx

START_TIMEOUT_S = 120.0  # a serve process imports the web stack: seconds on a loaded CI machine


def wait_until(
    ready: Callable[[], bool],
    *,
    died: Callable[[], str | None],
    what: str,
    timeout_s: float = START_TIMEOUT_S,
) -> None:
    """Poll ``ready()`` every 0.1 s until it is true; ``died()`` names why the server is gone (None: alive)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        gone = died()
        if gone is not None:
            raise AssertionError(f"{what}: {gone}")
        if ready():
            return
        time.sleep(0.1)
    raise AssertionError(f"{what}: not within {timeout_s:.0f} s")


def answers(url: str) -> bool:
    """Whether an HTTP server answers at ``url`` (any status)."""
    try:
        httpx.get(url, timeout=2)
    except httpx.TransportError:
        return False
    return True
