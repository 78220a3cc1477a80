"""Enforce mode's clean-up: ClearCache to every station that got a rewritten answer once its token is released.

A ``Blocked`` answer the gateway wrote in place of the CSMS's ``Accepted`` lands in the station's authorisation
cache (OCPP 1.6 section 3.5.1 / 2.0.1 C10: Authorize, StartTransaction and TransactionEvent answers update it) and
would keep refusing the card after the alert is gone. The :class:`AuthorizationCacheClearer` remembers, per token
pseudonym, which stations received a rewritten answer (never the raw token) and releases the token when

* the alert that caused the rewrites closes and no other enforceable alert holds the token (:meth:`on_alert`, an
  alert sink of live detection), or
* the operator allow-lists the token for that alert's kind (:meth:`check_allowlist`, polled from the store).

Releasing sends ``ClearCache`` (the same action and empty payload in 1.6, 2.0.1 and 2.1) as a gateway-originated
CALL on each station leg (``Session.send_own_call``): its answer goes to no one but the gateway and is recorded as
an ``action`` line (``clear_cache_sent`` then ``clear_cache_answered``). A station that is not connected at that
moment gets it when it next connects. ClearCache empties the whole cache, not one entry: the price is that
stations ask the CSMS again for other cards once.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import OrderedDict
from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import structlog

from chargeguard.allowlist import AllowEntry
from chargeguard.events import Alert

log = structlog.get_logger("chargeguard.gateway.cache_clear")


class CacheHolder(Protocol):
    """What the clearer needs from a relayed connection (``Session`` implements it)."""

    @property
    def identity(self) -> str: ...

    async def send_own_call(self, action: str, payload: dict[str, Any], detail: dict[str, Any]) -> None: ...


@dataclass(frozen=True, slots=True)
class Release:
    """Why a token's rewritten answers are withdrawn (the action lines' detail)."""

    token_ref: str
    reason: str  # alert_closed | allow_listed
    alert: str
    kind: str


class AuthorizationCacheClearer:
    """Tracks stations holding a rewritten answer per token; sends ClearCache when the token is released."""

    def __init__(
        self,
        still_enforced: Callable[[str], Alert | None] | None = None,
        *,
        max_tokens: int = 10_000,
        max_stations_per_token: int = 1_000,
    ) -> None:
        self.still_enforced = still_enforced
        self._max_tokens = max_tokens
        self._max_stations = max_stations_per_token
        # token pseudonym -> (alert id, kind) of the latest rewrite, stations that received one
        self._held: OrderedDict[str, tuple[str, str, dict[str, None]]] = OrderedDict()
        self._owed: OrderedDict[str, Release] = OrderedDict()  # station -> release it missed while offline
        self._sessions: Mapping[str, CacheHolder] = {}
        self._spawn: Callable[[Coroutine[Any, Any, None]], None] | None = None
        self.releases = 0

    def bind(
        self, sessions: Mapping[str, CacheHolder], spawn: Callable[[Coroutine[Any, Any, None]], None]
    ) -> None:
        """Called by the gateway: where live sessions are, and how to run a background send."""
        self._sessions = sessions
        self._spawn = spawn

    def held_by(self, token_ref: str) -> tuple[str, ...]:
        """Stations holding a rewritten answer for ``token_ref``."""
        entry = self._held.get(token_ref)
        return tuple(entry[2]) if entry is not None else ()

    # ---- inputs -------------------------------------------------------------------------------------------
    def rewritten(self, station: str, detail: Mapping[str, Any]) -> None:
        """A rewrite was sent to ``station`` (``detail`` is the rewrite's action-line detail)."""
        token_ref = detail.get("token_ref")
        if not isinstance(token_ref, str) or not token_ref:
            return
        entry = self._held.pop(token_ref, None)
        stations = entry[2] if entry is not None else {}
        if len(stations) < self._max_stations:
            stations[station] = None
        self._held[token_ref] = (str(detail.get("alert", "")), str(detail.get("kind", "")), stations)
        if len(self._held) > self._max_tokens:
            oldest, (alert, kind, lost) = self._held.popitem(last=False)
            log.warning("gateway.cache_clear.evicted", stations=len(lost))
            self._release(Release(oldest, "evicted", alert, kind), lost)

    def on_alert(self, alert: Alert) -> None:
        """Alert sink: a closed alert releases its token unless another enforceable alert still holds it."""
        if alert.status != "closed" or not alert.token_ref or alert.token_ref not in self._held:
            return
        if self.still_enforced is not None and self.still_enforced(alert.token_ref) is not None:
            return
        _, _, stations = self._held.pop(alert.token_ref)
        self._release(Release(alert.token_ref, "alert_closed", alert.id, alert.kind), stations)

    def check_allowlist(self, entries: Iterable[AllowEntry], now: dt.datetime) -> int:
        """Release tokens the operator allow-listed for the kind that caused their rewrites; returns how many."""
        allowed: dict[str, list[AllowEntry]] = {}
        for entry in entries:
            if entry.subject == "token" and entry.expires > now:
                allowed.setdefault(entry.value.lower(), []).append(entry)
        released = 0
        for token_ref in [t for t in self._held if t.lower() in allowed]:
            alert, kind, stations = self._held[token_ref]
            if any(e.matches_kind(kind) for e in allowed[token_ref.lower()]):
                del self._held[token_ref]
                self._release(Release(token_ref, "allow_listed", alert, kind), stations)
                released += 1
        return released

    def connected(self, session: CacheHolder) -> None:
        """Called when a station connects: deliver a release it missed while offline."""
        release = self._owed.pop(session.identity, None)
        if release is not None and self._spawn is not None:
            self._spawn(self._clear(session, release))

    # ---- output -------------------------------------------------------------------------------------------
    def _release(self, release: Release, stations: Iterable[str]) -> None:
        self.releases += 1
        log.info("gateway.cache_clear.released", reason=release.reason, kind=release.kind)
        for station in stations:
            session = self._sessions.get(station)
            if session is None or self._spawn is None:
                self._owed.pop(station, None)
                self._owed[station] = release
                if len(self._owed) > self._max_tokens:
                    self._owed.popitem(last=False)
            else:
                self._spawn(self._clear(session, release))

    async def _clear(self, session: CacheHolder, release: Release) -> None:
        detail = {
            "reason": release.reason,
            "alert": release.alert,
            "kind": release.kind,
            "token_ref": release.token_ref,
        }
        try:
            await session.send_own_call("ClearCache", {}, detail)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a closed leg: owe it to the next connection
            log.info("gateway.cache_clear.deferred", error=type(exc).__name__)
            self._owed[session.identity] = release
