"""Token rule detectors: concurrent use, impossible travel and velocity of one token (the ``token.*`` kinds).

``token.unauthorized_charging`` and ``token.enumeration`` live in ``rules/authorization.py``; every token
detector is exported through ``DETECTORS`` here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

from chargeguard.detectors.base import Detector, DetectorContext, DetectorInfo
from chargeguard.detectors.rules.authorization import Enumeration, UnauthorizedCharging
from chargeguard.detectors.rules.intervals import Clash, Span, SpanBook
from chargeguard.detectors.rules.txbook import TxBook, connector_key
from chargeguard.detectors.state import BoundedState
from chargeguard.events import (
    AuthorizationDecision,
    Event,
    Finding,
    Severity,
    TransactionEnded,
    TransactionStarted,
)
from chargeguard.inventory import distance_km

_QUEUED_AFTER_S = 600.0  # an answer to a request this much older than its arrival came from an offline queue


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat()


@dataclass(slots=True)
class _TxFacts:
    """What a token detector remembers of an open transaction."""

    token_ref: str | None = None
    start: float | None = None
    connector: str | None = None
    queued: bool = False


def _remember_start(book: TxBook[_TxFacts], ev: TransactionStarted) -> _TxFacts:
    facts = book.touch(ev.station, ev.transaction_id, ev.ts, ev.connector)
    facts.start = ev.at.timestamp() if facts.start is None else min(facts.start, ev.at.timestamp())
    facts.connector = ev.connector or facts.connector
    facts.queued = ev.queued
    facts.token_ref = ev.token_ref or facts.token_ref
    return facts


# --------------------------------------------------------------------------------------------- concurrent use


@dataclass(frozen=True, slots=True)
class ConcurrentUseConfig:
    """Thresholds of token.concurrent_use.

    tolerance_s: overlap (station time) ignored between sites, as clock skew or a hand-over between sessions.
    same_site_tolerance_s: overlap ignored at one station or site (see site_radius_km): a driver moving
      to another connector, two cars of one household or taxi fleet on one card at a hub.
    site_radius_km: stations this close (inventory coordinates; else the same location_id) are one site.
    max_open_s: a transaction open longer than this (its stop was lost) no longer counts as running.
    same_site_allowed: ignore every overlap at one site (depots of fleet cards).
    """

    tolerance_s: float = 120.0
    same_site_tolerance_s: float = 1800.0
    site_radius_km: float = 0.5
    max_open_s: float = 172_800.0
    same_site_allowed: bool = False


class ConcurrentUse(Detector[ConcurrentUseConfig]):
    """One token in two transactions at the same time (a cloned RFID card or a shared credential).

    Catches: a token whose transactions overlap in station time by more than ``tolerance_s``, anywhere in the
    network - including 2.0.1 transactions that the token joined after they started (its idToken on a later
    TransactionEvent) and transactions a station sent late from its offline queue (judged on their
    station-time interval once their end is known, so an offline replay is not mistaken for concurrency).

    Why it matters: DOMAIN.md scenario #1 (RFID cloning: one Dutch CPO lost EUR 217k to ten cloned tags, 109
    overlapping sessions in two days) and #13 (spoofed Autocharge MAC tokens). OCPP 1.6 §7.18 / 2.0.1 C01
    define ``ConcurrentTx`` precisely because a token should be in one transaction at a time.

    False positives: fleet or family cards legitimately used on two cars (allow-list the token or set
    ``same_site_allowed`` for depots); a transaction whose StopTransaction was lost looks open until
    ``max_open_s``; station clocks wrong by more than ``tolerance_s``. At one station or site a driver may start
    on a second connector before the first stops, so such overlaps are judged on their measured length once one
    transaction ends, against ``same_site_tolerance_s``, at medium severity; overlaps between sites fire on the
    frame that starts the second transaction, at high severity. Real data check (Dundee, Jun-Sep 2018, 19,131
    sessions of 827 cards): 78 same-site overlaps (median 17 min - shared cards at rapid hubs), 60 of them of
    30 minutes or less, and 16 cross-site overlaps, 15 of them on cards with a session still running elsewhere.

    References: OCPP 1.6 §4.8 StartTransaction, §7.18 AuthorizationStatus (ConcurrentTx); OCPP 2.0.1 C01,
    E01-E07 (TransactionEvent idToken), D01 (ConcurrentTx); DOMAIN.md #1, #13.
    """

    info: ClassVar[DetectorInfo] = DetectorInfo(
        name="token-concurrent-use",
        kinds=("token.concurrent_use",),
        title="Token used in overlapping transactions",
        severity=Severity.HIGH,
        references=("OCPP 1.6 §7.18 ConcurrentTx", "OCPP 2.0.1 C01/E01", "DOMAIN.md #1", "DOMAIN.md #13"),
    )
    consumes: ClassVar[tuple[type[Any], ...]] = (TransactionStarted, AuthorizationDecision, TransactionEnded)
    Config: ClassVar[type[Any]] = ConcurrentUseConfig

    def __init__(self, config: ConcurrentUseConfig, context: DetectorContext) -> None:
        super().__init__(config, context)
        self._tx: TxBook[_TxFacts] = TxBook(_TxFacts, context)
        self._spans = SpanBook(
            max_keys=context.limits.max_keys, ttl_s=context.limits.ttl_s, max_open_s=config.max_open_s
        )

    def state_size(self) -> int:
        return len(self._tx) + len(self._spans)

    def process(self, event: Event) -> Iterable[Finding]:
        if isinstance(event, TransactionStarted):
            facts = _remember_start(self._tx, event)
            if facts.token_ref is None:
                return ()
            return self._record(event, facts.token_ref, start=facts.start, end=None, facts=facts)
        if isinstance(event, AuthorizationDecision):
            # 1.6 start tokens come with TransactionStarted; 2.0.1 tokens may join a started transaction
            if event.transaction_id is None or event.token_ref is None or event.context != "TransactionEvent":
                return ()
            if self._tx.ended(event.station, event.transaction_id):
                return ()  # the answer to the Ended event
            facts = self._tx.touch(event.station, event.transaction_id, event.ts)
            if facts.token_ref is not None:
                return ()  # the transaction's token is known; a later idToken is whoever stops it
            facts.token_ref = event.token_ref
            if facts.start is None:
                facts.queued = (event.ts - event.at).total_seconds() > _QUEUED_AFTER_S
            start = facts.start if facts.start is not None else event.at.timestamp()
            return self._record(event, event.token_ref, start=start, end=None, facts=facts)
        if isinstance(event, TransactionEnded):
            facts = self._tx.pop(event.station, event.transaction_id, event.ts, event.connector) or _TxFacts()
            token = event.token_ref or facts.token_ref
            if token is None:
                return ()
            began: float | None = facts.start
            if began is None and event.started_at is not None:
                began = event.started_at.timestamp()
            facts.queued = facts.queued or event.queued
            facts.connector = facts.connector or event.connector
            return self._record(event, token, start=began, end=event.at.timestamp(), facts=facts)
        return ()

    def _record(
        self, event: Event, token: str, *, start: float | None, end: float | None, facts: _TxFacts
    ) -> list[Finding]:
        assert isinstance(event, TransactionStarted | AuthorizationDecision | TransactionEnded)
        tx = event.transaction_id
        assert tx is not None
        key = token.lower()
        span = self._spans.upsert(
            key,
            station=event.station,
            transaction_id=tx,
            connector=facts.connector,
            start=start,
            end=end,
            queued=facts.queued,
            ts=event.ts,
        )
        clashes = self._spans.clashes(key, span, tolerance_s=self.config.tolerance_s, accept=self._counts)
        return [self._finding(event, token, clash) for clash in clashes]

    def _same_site(self, a: Span, b: Span) -> bool:
        """One station, or two stations within ``site_radius_km`` (of one location_id when without coordinates)."""
        if a.station == b.station:
            return True
        ia, ib = self.context.inventory.get(a.station), self.context.inventory.get(b.station)
        if ia is None or ib is None:
            return False
        km = distance_km(ia, ib)
        if km is not None:
            return km <= self.config.site_radius_km
        return ia.location_id is not None and ia.location_id == ib.location_id

    def _counts(self, clash: Clash) -> bool:
        if not self._same_site(clash.first, clash.second):
            return True
        if self.config.same_site_allowed:
            return False
        # at one site a driver may start on a second connector before the first one stops: judge on the real
        # overlap once one of the two has ended
        return clash.overlap_s != float("inf") and clash.overlap_s > self.config.same_site_tolerance_s

    def _finding(self, event: Event, token: str, clash: Clash) -> Finding:
        first, second = clash.first, clash.second
        same_site = self._same_site(first, second)
        long_overlap = clash.overlap_s >= 600
        severity = Severity.MEDIUM if same_site else Severity.HIGH
        confidence = (0.7 if same_site else 0.95) if long_overlap else (0.6 if same_site else 0.85)
        overlap = None if clash.overlap_s == float("inf") else round(clash.overlap_s, 1)
        where = "at one site" if same_site else f"at {first.station} and {second.station}"
        return self.finding(
            "token.concurrent_use",
            ts=event.ts,
            incident=token.lower(),
            summary=f"token in two transactions at once {where}",
            severity=severity,
            confidence=confidence,
            station=second.station,
            stations=(first.station, second.station),
            transactions=(first.transaction_id, second.transaction_id),
            token_ref=token,
            evidence={
                "overlap_s": overlap,
                "still_running": clash.overlap_s == float("inf"),
                "same_site": same_site,
                "sessions": [_span_evidence(first), _span_evidence(second)],
            },
        )


def _span_evidence(span: Span) -> dict[str, Any]:
    return {
        "station": span.station,
        "transaction": span.transaction_id,
        "connector": span.connector,
        "started_at": _iso(span.start),
        "ended_at": None if span.end is None else _iso(span.end),
        "queued": span.queued,
    }


# ------------------------------------------------------------------------------------------ impossible travel


@dataclass(frozen=True, slots=True)
class ImpossibleTravelConfig:
    """Thresholds of token.impossible_travel.

    max_speed_kmh: fastest plausible door-to-door travel between two stations.
    nearby_km: stations closer than this are one site; never compared.
    min_gap_s: floor on the time between two sightings, so that clock jitter cannot make a speed infinite.
    horizon_s: sightings further apart than this in station time are not compared.
    max_sightings: sightings remembered per token.
    """

    max_speed_kmh: float = 250.0
    nearby_km: float = 1.0
    min_gap_s: float = 60.0
    horizon_s: float = 86_400.0
    max_sightings: int = 16


@dataclass(frozen=True, slots=True)
class _Sighting:
    at: float
    station: str
    transaction_id: str | None
    what: str


@dataclass(slots=True)
class _Traveller:
    sightings: list[_Sighting] = field(default_factory=list)
    reported: set[tuple[str, str]] = field(default_factory=set)


class ImpossibleTravel(Detector[ImpossibleTravelConfig]):
    """One token seen at two stations further apart than any vehicle could travel in the time between.

    Catches: a token's sightings (transaction start, the token joining a 2.0.1 transaction, transaction end,
    an Authorize answer) at two stations whose great-circle distance (station inventory coordinates) divided
    by the station-time gap exceeds ``max_speed_kmh``. Station time (``at``) is used, so transactions replayed
    hours late from an offline queue are placed where they happened.

    Why it matters: DOMAIN.md scenario #2 (geo-velocity; EVgo stops sessions with impossible time/location,
    e.g. California to Ohio in 10 minutes) and #1 (a cloned code used at 41 locations in one day).

    False positives: needs the station inventory - stations without coordinates are skipped, stations within
    ``nearby_km`` are one site; station clocks that are wrong by minutes (see
    station.clock_skew) can make two close-in-time sessions look fast; a card shared by two drivers is caught
    too (that is token sharing, #4). Real data check: of 4,824 consecutive same-user sessions at different
    Dundee sites (Jun-Sep 2018) one non-overlapping pair exceeded 100 km/h (8.5 km in 2 minutes at minute
    resolution).

    References: DOMAIN.md #1, #2, #13; OCPI 2.2.1 Location.coordinates.
    """

    info: ClassVar[DetectorInfo] = DetectorInfo(
        name="token-impossible-travel",
        kinds=("token.impossible_travel",),
        title="Token seen at distant stations too quickly",
        severity=Severity.HIGH,
        references=("DOMAIN.md #2", "DOMAIN.md #1", "OCPI 2.2.1 Location.coordinates"),
    )
    consumes: ClassVar[tuple[type[Any], ...]] = (TransactionStarted, AuthorizationDecision, TransactionEnded)
    Config: ClassVar[type[Any]] = ImpossibleTravelConfig

    def __init__(self, config: ImpossibleTravelConfig, context: DetectorContext) -> None:
        super().__init__(config, context)
        self._tokens: BoundedState[str, _Traveller] = BoundedState(
            context.limits.max_keys, context.limits.ttl_s
        )

    def state_size(self) -> int:
        return len(self._tokens)

    def process(self, event: Event) -> Iterable[Finding]:
        if len(self.context.inventory) == 0:
            return ()
        token: str | None
        tx: str | None
        if isinstance(event, TransactionStarted):
            token, what, tx = event.token_ref, "start", event.transaction_id
        elif isinstance(event, TransactionEnded):
            token, what, tx = event.token_ref, "end", event.transaction_id
        elif isinstance(event, AuthorizationDecision):
            token, what, tx = event.token_ref, f"authorization:{event.context}", event.transaction_id
        else:
            return ()
        if token is None:
            return ()
        return self._sighted(event, token, _Sighting(event.at.timestamp(), event.station, tx, what))

    def _remember(self, traveller: _Traveller, new: _Sighting) -> None:
        """Keep the first and latest sighting of each (station, transaction): 2.0.1 repeats the idToken."""
        sightings = traveller.sightings
        same = [s for s in sightings if s.station == new.station and s.transaction_id == new.transaction_id]
        if len(same) >= 2:
            latest = max(same, key=lambda s: s.at)
            if new.at <= latest.at:
                return
            sightings.remove(latest)
        sightings.append(new)
        newest = max(s.at for s in sightings)
        sightings[:] = [s for s in sightings if newest - s.at <= self.config.horizon_s]
        if len(sightings) > self.config.max_sightings:
            sightings.sort(key=lambda s: s.at)
            del sightings[0]

    def _sighted(self, event: Event, token: str, new: _Sighting) -> list[Finding]:
        cfg = self.config
        traveller = self._tokens.setdefault(token.lower(), _Traveller, event.ts)
        here = self.context.inventory.get(new.station)
        worst: tuple[float, float, float, _Sighting] | None = None
        for old in traveller.sightings:
            if old.station == new.station or here is None:
                continue
            there = self.context.inventory.get(old.station)
            if there is None:
                continue
            km = distance_km(there, here)
            gap = abs(new.at - old.at)
            if km is None or km <= cfg.nearby_km or gap > cfg.horizon_s:
                continue
            speed = km / max(gap, cfg.min_gap_s) * 3600.0
            if speed > cfg.max_speed_kmh and (worst is None or speed > worst[0]):
                worst = (speed, km, gap, old)
        self._remember(traveller, new)
        if worst is None:
            return []
        speed, km, gap, old = worst
        pair = (f"{old.station}\x1f{old.transaction_id}", f"{new.station}\x1f{new.transaction_id}")
        if pair in traveller.reported or pair[::-1] in traveller.reported:
            return []
        if len(traveller.reported) < 64:
            traveller.reported.add(pair)
        first, second = (old, new) if old.at <= new.at else (new, old)
        ratio = speed / cfg.max_speed_kmh
        return [
            self.finding(
                "token.impossible_travel",
                ts=event.ts,
                incident=token.lower(),
                summary=f"token at {first.station} then {second.station}: {km:.0f} km in {gap / 60:.0f} min",
                confidence=0.95 if ratio >= 4 else (0.85 if ratio >= 2 else 0.7),
                station=new.station,
                stations=(first.station, second.station),
                transactions=[s.transaction_id for s in (first, second) if s.transaction_id is not None],
                token_ref=token,
                evidence={
                    "distance_km": round(km, 2),
                    "gap_s": round(gap, 1),
                    "speed_kmh": round(speed, 1),
                    "max_speed_kmh": cfg.max_speed_kmh,
                    "sightings": [
                        {
                            "station": s.station,
                            "at": _iso(s.at),
                            "transaction": s.transaction_id,
                            "what": s.what,
                        }
                        for s in (first, second)
                    ],
                },
            )
        ]


# --------------------------------------------------------------------------------------------- velocity


@dataclass(frozen=True, slots=True)
class HighVelocityConfig:
    """Thresholds of token.high_velocity.

    window_s: station-time window in which starts are counted.
    min_connectors: distinct connectors (1.6) / EVSEs (2.0.1) started on within the window that fire.
    max_starts: starts remembered per token.
    """

    window_s: float = 3600.0
    min_connectors: int = 6
    max_starts: int = 64


@dataclass(frozen=True, slots=True)
class _Start:
    at: float
    station: str
    unit: str
    transaction_id: str


class HighVelocity(Detector[HighVelocityConfig]):
    """One token starting implausibly many transactions at different connectors in a short time.

    Catches: ``min_connectors`` or more distinct (station, connector) places started on by one token within
    ``window_s`` of station time (2.0.1 counts EVSEs; the token may join a 2.0.1 transaction after it
    started). Repeated starts on one connector (a driver retrying) never count twice.

    Why it matters: DOMAIN.md #1 (a cloned code used at 41 locations in a day), #4 (account sharing: many
    sessions per day) and #9 (remote-start abuse from a stolen app account starts sessions across a site).

    False positives: technician and test cards (allow-list them). Real data check (Dundee, Jun-Sep 2018,
    19,227 sessions): at 6 distinct connectors within one hour only a test card at the operator's test site,
    one other card once and sessions without a user id reach the threshold; drivers trying two or three
    outlets of a hub within minutes are common, so thresholds below five would be noisy.

    References: DOMAIN.md #1, #4, #9; OCPP 1.6 §4.8 StartTransaction; OCPP 2.0.1 E01.
    """

    info: ClassVar[DetectorInfo] = DetectorInfo(
        name="token-high-velocity",
        kinds=("token.high_velocity",),
        title="Token starting many transactions quickly",
        severity=Severity.MEDIUM,
        references=("DOMAIN.md #1", "DOMAIN.md #4", "DOMAIN.md #9"),
    )
    consumes: ClassVar[tuple[type[Any], ...]] = (TransactionStarted, AuthorizationDecision, TransactionEnded)
    Config: ClassVar[type[Any]] = HighVelocityConfig

    def __init__(self, config: HighVelocityConfig, context: DetectorContext) -> None:
        super().__init__(config, context)
        self._tx: TxBook[_TxFacts] = TxBook(_TxFacts, context)
        self._starts: BoundedState[str, list[_Start]] = BoundedState(
            context.limits.max_keys, context.limits.ttl_s
        )

    def state_size(self) -> int:
        return len(self._tx) + len(self._starts)

    def process(self, event: Event) -> Iterable[Finding]:
        if isinstance(event, TransactionStarted):
            facts = _remember_start(self._tx, event)
            facts.token_ref = event.token_ref
            if event.token_ref is None:
                return ()
            return self._started(event, event.token_ref, event.at.timestamp(), event.connector)
        if isinstance(event, AuthorizationDecision):
            if event.transaction_id is None or event.token_ref is None or event.context != "TransactionEvent":
                return ()
            if self._tx.ended(event.station, event.transaction_id):
                return ()
            facts = self._tx.touch(event.station, event.transaction_id, event.ts)
            if facts.token_ref is not None:
                return ()
            facts.token_ref = event.token_ref
            start = facts.start if facts.start is not None else event.at.timestamp()
            return self._started(event, event.token_ref, start, facts.connector or event.connector)
        if isinstance(event, TransactionEnded):
            self._tx.pop(event.station, event.transaction_id, event.ts, event.connector)
        return ()

    def _started(self, event: Event, token: str, at: float, connector: str | None) -> list[Finding]:
        assert isinstance(event, TransactionStarted | AuthorizationDecision)
        assert event.transaction_id is not None
        unit = connector_key(connector) or "?"
        starts = self._starts.setdefault(token.lower(), list, event.ts)
        if any(s.station == event.station and s.transaction_id == event.transaction_id for s in starts):
            return []
        new = _Start(at, event.station, unit, event.transaction_id)
        window = self.config.window_s
        starts.append(new)
        starts.sort(key=lambda s: s.at)
        newest = starts[-1].at
        starts[:] = [
            s for s in starts if newest - s.at <= window
        ]  # older starts share no window with newer ones
        if len(starts) > self.config.max_starts:
            del starts[0]
        best: list[_Start] = []
        for i, first in enumerate(starts):
            if first.at > at or at - first.at > window:
                continue
            inside = [s for s in starts[i:] if s.at - first.at <= window]
            if len({(s.station, s.unit) for s in inside}) > len({(s.station, s.unit) for s in best}):
                best = inside
        places = {(s.station, s.unit) for s in best}
        if len(places) < self.config.min_connectors:
            return []
        stations = sorted({s.station for s in best})
        span_s = best[-1].at - best[0].at
        return [
            self.finding(
                "token.high_velocity",
                ts=event.ts,
                incident=token.lower(),
                summary=f"{len(best)} transactions on {len(places)} connectors in {span_s / 60:.0f} min",
                confidence=0.9 if len(places) >= 2 * self.config.min_connectors else 0.75,
                station=event.station,
                stations=stations,
                transactions=[s.transaction_id for s in best],
                token_ref=token,
                evidence={
                    "starts": len(best),
                    "connectors": len(places),
                    "stations": len(stations),
                    "span_s": round(span_s, 1),
                    "window_s": window,
                    "first_at": _iso(best[0].at),
                },
            )
        ]


DETECTORS: tuple[type[Detector[Any]], ...] = (
    ConcurrentUse,
    ImpossibleTravel,
    UnauthorizedCharging,
    Enumeration,
    HighVelocity,
)
