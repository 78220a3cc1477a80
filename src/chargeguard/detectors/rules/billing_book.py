"""Shared bookkeeping of the billing (OCPI) detectors: metered sessions per station, CDRs waiting for their verdict.

A *metered* session is charging that a meter saw: an OCPP transaction (``TransactionEnded``) or a completed OCPI
Session. CDRs are judged against them by station, time window and energy. Both books are bounded (keys and per-key
list length); CDRs wait in a due-time queue so that a session reported shortly after its CDR still counts.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from chargeguard.detectors.base import DetectorContext
from chargeguard.detectors.state import BoundedState
from chargeguard.events import TransactionEnded
from chargeguard.sources.ocpi.events import CdrReceived, SessionReported
from chargeguard.sources.ocpi.models import Cdr
from chargeguard.sources.ocpi.normalize import object_key

MAX_PER_STATION = 64


@dataclass(frozen=True, slots=True)
class CdrView:
    """A CdrReceived with everything the billing rules need present (see :func:`view`)."""

    ts: datetime
    station: str
    key: str
    token_ref: str
    party: str
    token_party: str
    start: datetime
    end: datetime
    energy_wh: float
    cost_excl_vat: Decimal | None
    currency: str
    session_id: str | None
    credit: bool
    credit_reference_id: str | None
    auth_method: str
    time_zone: str | None
    cdr: Cdr | None


def view(e: CdrReceived) -> CdrView | None:
    """The CDR as the rules read it, or None when it lacks a token, a time window or an energy (then skipped)."""
    if e.token_ref is None or e.start is None or e.end is None or e.energy_wh is None:
        return None
    return CdrView(
        e.ts, e.station, e.key, e.token_ref, e.party, e.token_party, e.start, e.end, e.energy_wh, e.cost_excl_vat,
        e.currency, e.session_id, e.credit, e.credit_reference_id, e.auth_method, e.time_zone, e.cdr,
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class Metered:
    station: str
    ref: str  # OCPP transaction id, or the OCPI session key
    source: str  # "ocpp" or "ocpi"
    start: datetime
    end: datetime
    energy_wh: float | None
    token_ref: str | None


def metered_from(event: TransactionEnded | SessionReported) -> Metered | None:
    """The metered session an event completes, or None (OCPI sessions still ACTIVE/PENDING, no start known)."""
    if isinstance(event, TransactionEnded):
        start = event.started_at or event.at
        return Metered(
            event.station, event.transaction_id, "ocpp", start, event.at, event.energy_wh, event.token_ref
        )
    if event.status != "COMPLETED" or event.end is None or event.start is None:
        return None
    return Metered(event.station, event.key, "ocpi", event.start, event.end, event.energy_wh, event.token_ref)


def overlaps(m: Metered, start: datetime, end: datetime, slack_s: float) -> bool:
    slack = timedelta(seconds=slack_s)
    return m.start <= end + slack and start - slack <= m.end


class MeteredBook:
    """Recent metered sessions per station (bounded), and which stations report any at all."""

    def __init__(self, context: DetectorContext) -> None:
        limits = context.limits
        self._by_station: BoundedState[str, list[Metered]] = BoundedState(limits.max_keys, limits.ttl_s)
        self._session_keys: BoundedState[str, Metered] = BoundedState(limits.max_keys, limits.ttl_s)

    def __len__(self) -> int:
        return len(self._by_station) + len(self._session_keys)

    def add(self, m: Metered, ts: datetime) -> None:
        items = self._by_station.setdefault(m.station, list, ts)
        items.append(m)
        if len(items) > MAX_PER_STATION:
            del items[0]
        if m.source == "ocpi":
            self._session_keys.put(m.ref, m, ts)

    def covers(self, station: str) -> bool:
        return station in self._by_station

    def candidates(self, cdr: CdrView, slack_s: float) -> list[Metered]:
        """Metered sessions behind ``cdr``: its OCPI session by id first, else those overlapping its window."""
        if cdr.session_id is not None:
            by_id = self._session_keys.get(object_key(cdr.party, cdr.session_id))
            if by_id is not None:
                return [by_id]
        found = [
            m for m in self._by_station.get(cdr.station) or () if overlaps(m, cdr.start, cdr.end, slack_s)
        ]
        found.sort(key=lambda m: abs((m.start - cdr.start).total_seconds()))
        return found


class DueQueue:
    """Items released once event time passes their due time (events arrive in time order); bounded."""

    def __init__(self, max_items: int) -> None:
        self._items: deque[tuple[datetime, CdrView]] = deque()
        self.max_items = max_items
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._items)

    def push(self, due: datetime, item: CdrView) -> None:
        self._items.append((due, item))
        while len(self._items) > self.max_items:
            self._items.popleft()
            self.dropped += 1

    def release(self, now: datetime | None) -> list[CdrView]:
        """Everything due at ``now`` (all of it when ``now`` is None)."""
        out: list[CdrView] = []
        while self._items and (now is None or self._items[0][0] <= now):
            out.append(self._items.popleft()[1])
        return out
