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

With a state file (``enforce_state`` in the gateway configuration; mode 0600, replaced atomically on every
change) the debts survive a restart: stations still owed a ClearCache are owed it after the restart, and stations
holding a rewritten answer are owed one too (``gateway_restarted``): the restarted gateway no longer holds the
alert that justified the rewrite. The file names token pseudonyms, station identities and alert ids, never a raw
token::

    {"version": 1, "owed": {"CP-1": {"token_ref": "tok1_...", "reason": "alert_closed", "alert": "al_...",
                                     "kind": "token.concurrent_use"}},
     "held": {"tok1_...": {"alert": "al_...", "kind": "token.concurrent_use", "stations": ["CP-2"]}}}

An unreadable state file is moved aside (``<name>.unreadable-<time>``, kept for the operator) and the gateway
starts without debts rather than refusing to relay.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import OrderedDict
from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import orjson
import structlog

from chargeguard.allowlist import AllowEntry
from chargeguard.events import Alert
from chargeguard.private_file import write_private_file

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
        state_file: Path | None = None,
    ) -> None:
        self.still_enforced = still_enforced
        self._max_tokens = max_tokens
        self._max_stations = max_stations_per_token
        # token pseudonym -> (alert id, kind) of the latest rewrite, stations that received one
        self._held: OrderedDict[str, tuple[str, str, dict[str, None]]] = OrderedDict()
        self._owed: OrderedDict[str, Release] = OrderedDict()  # station -> release it missed while offline
        self._sending: dict[str, Release] = {}  # station -> release whose ClearCache is not answered yet
        self._sessions: Mapping[str, CacheHolder] = {}
        self._spawn: Callable[[Coroutine[Any, Any, None]], None] | None = None
        self.releases = 0
        self.state_file = state_file
        if state_file is not None:
            self._restore(state_file)

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
        self._save()

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
        release = self._owed.get(session.identity)
        if release is not None and self._spawn is not None:
            del self._owed[session.identity]
            self._send(session, release)
            self._save()

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
                self._send(session, release)
        self._save()

    def _send(self, session: CacheHolder, release: Release) -> None:
        assert self._spawn is not None
        self._sending[session.identity] = release  # still a debt in the state file until the station answers
        self._spawn(self._clear(session, release))

    async def _clear(self, session: CacheHolder, release: Release) -> None:
        detail = {
            "reason": release.reason,
            "alert": release.alert,
            "kind": release.kind,
            "token_ref": release.token_ref,
        }
        station = session.identity
        try:
            await session.send_own_call("ClearCache", {}, detail)
        except asyncio.CancelledError:
            self._owed[station] = self._sending.pop(station, release)
            self._save()
            raise
        except Exception as exc:  # a closed leg: owe it to the next connection
            log.info("gateway.cache_clear.deferred", error=type(exc).__name__)
            self._owed[station] = self._sending.pop(station, release)
        else:
            self._sending.pop(station, None)
        self._save()

    # ---- state file ---------------------------------------------------------------------------------------
    def _save(self) -> None:
        if self.state_file is None:
            return
        state = {
            "version": _STATE_VERSION,
            "owed": {
                station: asdict(release) for station, release in (*self._sending.items(), *self._owed.items())
            },
            "held": {
                token: {"alert": alert, "kind": kind, "stations": list(stations)}
                for token, (alert, kind, stations) in self._held.items()
            },
        }
        try:
            write_private_file(self.state_file, orjson.dumps(state))
        except OSError as exc:  # the relay goes on; the debts stay in memory
            log.error("gateway.cache_clear.state_not_saved", error=exc.strerror or type(exc).__name__)

    def _restore(self, path: Path) -> None:
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return
        except OSError as exc:
            log.error("gateway.cache_clear.state_unreadable", error=exc.strerror or type(exc).__name__)
            return
        try:
            owed, held = _parse_state(orjson.loads(raw))
        except (orjson.JSONDecodeError, ValueError):
            aside = path.with_name(f"{path.name}.unreadable-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}")
            path.replace(aside)
            log.error("gateway.cache_clear.state_unreadable", moved_to=str(aside))
            return
        for station, release in owed.items():
            self._owed[station] = release
        for token, (alert, kind, stations) in held.items():
            for station in stations:
                self._owed.setdefault(station, Release(token, "gateway_restarted", alert, kind))
        log.info("gateway.cache_clear.restored", owed=len(self._owed))
        self._save()  # the held entries became debts


_STATE_VERSION = 1


def _text(value: object) -> str:
    if not isinstance(value, str) or len(value) > 200:
        raise ValueError("not a short string")
    return value


def _parse_state(data: Any) -> tuple[dict[str, Release], dict[str, tuple[str, str, list[str]]]]:
    """The owed and held maps of a state file; ValueError when it is not one."""
    if not isinstance(data, dict) or data.get("version") != _STATE_VERSION:
        raise ValueError("unknown format")
    owed_raw, held_raw = data.get("owed"), data.get("held")
    if not isinstance(owed_raw, dict) or not isinstance(held_raw, dict):
        raise ValueError("unknown format")
    owed: dict[str, Release] = {}
    for station, item in owed_raw.items():
        if not isinstance(item, dict):
            raise ValueError("bad debt")
        owed[_text(station)] = Release(
            _text(item.get("token_ref")),
            _text(item.get("reason")),
            _text(item.get("alert")),
            _text(item.get("kind")),
        )
    held: dict[str, tuple[str, str, list[str]]] = {}
    for token, item in held_raw.items():
        stations = item.get("stations") if isinstance(item, dict) else None
        if not isinstance(item, dict) or not isinstance(stations, list):
            raise ValueError("bad hold")
        held[_text(token)] = (_text(item.get("alert")), _text(item.get("kind")), [_text(s) for s in stations])
    return owed, held
