"""Enforce mode follows the operator's allow-list while the gateway runs (polled from the store)."""

from __future__ import annotations

import asyncio
import datetime as dt

import structlog

from chargeguard.allowlist import AllowEntry, AllowList
from chargeguard.errors import ChargeguardError
from chargeguard.events import Alert
from chargeguard.live import LiveDetection
from chargeguard.sources.ocpp.gateway.cache_clear import AuthorizationCacheClearer
from chargeguard.store import Store

log = structlog.get_logger("chargeguard.gateway.allowlist")


class AllowListWatch:
    """Enforce mode follows the operator's allow-list while running: a token allow-listed for the kind of its open
    alert is no longer blocked, and the caches that hold its rewritten answers are cleared (polled from the store)."""

    def __init__(
        self, store: Store, live: LiveDetection, clearer: AuthorizationCacheClearer, interval_s: float = 5.0
    ) -> None:
        self.store = store
        self.live = live
        self.clearer = clearer
        self.interval_s = interval_s
        self.entries: list[AllowEntry] = store.allow_entries()

    def verdict(self, raw_or_ref: str) -> Alert | None:
        alert = self.live.token_verdict(raw_or_ref)
        if alert is None or alert.token_ref is None:
            return None
        now = dt.datetime.now(dt.UTC)
        ref = alert.token_ref.lower()
        for entry in self.entries:
            if (
                entry.subject == "token"
                and entry.value.lower() == ref
                and entry.matches_kind(alert.kind)
                and entry.expires > now
            ):
                return None
        return alert

    def refresh(self) -> None:
        self.entries = self.store.allow_entries()
        self.live.engine.allowlist = AllowList(self.entries)  # new findings are suppressed at once, too
        self.clearer.check_allowlist(self.entries, dt.datetime.now(dt.UTC))

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                self.refresh()
            except ChargeguardError as exc:
                log.error("gateway.allowlist.refresh_failed", error=str(exc))
