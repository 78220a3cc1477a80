"""Live detection on what partners push: the connector's received objects become events for the detection engine.

:class:`OcpiLiveFeed` is the connector's ``on_received`` callback. CDRs, Sessions, Tariffs and Tokens that a
partner PUTs, PATCHes or POSTs (already validated and pseudonymised by the modules) are turned into the OCPI events
of ``chargeguard.sources.ocpi.events`` and fed to an engine - in ``chargeguard serve`` the engine of a
``chargeguard.live.LiveDetection``, whose sinks put alerts in the store and the alerts file within the request that
raised them, like the gateway does. A Token's ``received_at`` is the moment the connector received it (the only
wall-clock reading: detectors themselves only use event time). An event time more than ``max_future_s`` ahead of
that clock is clamped to it (and logged): a partner's ``last_updated`` in 2099 must not move the engine's event
time past every grace period at once. Locations update the station mapping. A CDR re-sent
with other content under an existing id is refused by the module (OCPI 2001) and not fed; deleted tariffs are not
either. A failure here is logged and counted, never turned into an error for the partner: the object is stored.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, cast

import msgspec
import structlog

from chargeguard.events import Event
from chargeguard.sources.ocpi.connector.repository import key_of
from chargeguard.sources.ocpi.connector.store import Partner
from chargeguard.sources.ocpi.events import CdrReceived, SessionReported, TariffKnown, TokenStatus
from chargeguard.sources.ocpi.models import Cdr, Location, Session, Tariff, Token
from chargeguard.sources.ocpi.normalize import (
    MappingMode,
    StationMapping,
    cdr_event,
    session_event,
    tariff_event,
    token_event,
)

log = structlog.get_logger("chargeguard.ocpi.live")

Clock = Callable[[], datetime]
OcpiEvent = CdrReceived | SessionReported | TariffKnown | TokenStatus


class EventConsumer(Protocol):
    """What the feed writes to: ``chargeguard.engine.Engine`` (``LiveDetection.engine`` in serve)."""

    def process(self, event: Event) -> None: ...


def _wall_clock() -> datetime:
    return datetime.now(UTC)


class OcpiLiveFeed:
    """``on_received(module, obj, partner)`` -> events -> engine; thread-safe."""

    def __init__(
        self,
        engine: EventConsumer,
        *,
        mode: MappingMode = "evse_uid",
        locations: Iterable[Location] = (),
        clock: Clock = _wall_clock,
        max_future_s: float = 300.0,
    ) -> None:
        self.engine = engine
        self.max_future = timedelta(seconds=max_future_s)
        self.mode: MappingMode = mode
        self.clock = clock
        self._locations: dict[tuple[str, str, str], Location] = {key_of(loc): loc for loc in locations}
        self.mapping = StationMapping.from_locations(self._locations.values(), mode=mode)
        self._lock = threading.Lock()
        self.fed = 0
        self.failures = 0
        self.clamped = 0

    def preload(self, objects: Iterable[Any]) -> None:
        """Objects this platform already holds at start (its published Tokens, Tariffs, Locations)."""
        for obj in objects:
            self._feed(obj, received_at=None)

    def __call__(self, module: str, obj: Any, partner: Partner) -> None:
        if module not in ("cdrs", "sessions", "tariffs", "tokens", "locations"):
            return  # cdrs.duplicate_id (refused), tariffs.deleted: nothing for the detectors
        try:
            self._feed(obj, received_at=self.clock() if module == "tokens" else None)
        except Exception as exc:  # the partner's object is stored; detection must not fail its request
            self.failures += 1
            log.warning("ocpi.live.failed", module=module, partner=partner.name, error=type(exc).__name__)

    def _feed(self, obj: Any, *, received_at: datetime | None) -> None:
        event: OcpiEvent | None = None
        with self._lock:
            if isinstance(obj, Location):
                self._locations[key_of(obj)] = obj
                self.mapping = StationMapping.from_locations(self._locations.values(), mode=self.mode)
                return
            if isinstance(obj, Cdr):
                event = cdr_event(obj, self.mapping)
            elif isinstance(obj, Session):
                event = session_event(obj, self.mapping)
            elif isinstance(obj, Tariff):
                event = tariff_event(obj)
            elif isinstance(obj, Token):
                event = token_event(obj, received_at)
            if event is None:
                return
            latest = self.clock() + self.max_future
            if event.ts > latest:
                self.clamped += 1
                log.warning(
                    "ocpi.live.future_timestamp",
                    kind=type(event).__name__,
                    ahead_s=round((event.ts - latest).total_seconds() + self.max_future.total_seconds()),
                )
                event = msgspec.structs.replace(event, ts=latest)
            # OCPI events extend the event vocabulary outside the shared union; the engine routes them by type
            self.engine.process(cast(Any, event))
            self.fed += 1
