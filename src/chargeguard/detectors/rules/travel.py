"""The token.impossible_travel rule: one token seen at stations further apart than a vehicle could travel."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import msgspec

from chargeguard.detectors.base import Detector, DetectorContext, DetectorInfo
from chargeguard.detectors.rules.txbook import iso_time
from chargeguard.detectors.state import BoundedState
from chargeguard.events import (
    AuthorizationDecision,
    Event,
    Finding,
    MeterSample,
    Severity,
    TransactionEnded,
    TransactionStarted,
)
from chargeguard.inventory import distance_km


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


class _Sighting(msgspec.Struct, frozen=True, gc=False):
    """Where and when (station time, epoch seconds) a token was seen; made on every meter sample."""

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
    an Authorize answer; a meter sample of a running transaction updates where its token was last seen) at
    two stations whose great-circle distance (station inventory coordinates) divided
    by the station-time gap exceeds ``max_speed_kmh``. Station time (``at``) is used, so transactions replayed
    hours late from an offline queue are placed where they happened. When the sessions overlap (a card cloned
    in another city), the later start is compared with the last sample of the session still running: the alert
    comes at the frame that completes the evidence, the later start, not when the first session ends.

    Why it matters: DOMAIN.md scenario #2 (geo-velocity; EVgo stops sessions with impossible time/location,
    e.g. California to Ohio in 10 minutes) and #1 (a cloned code used at 41 locations in one day).

    False positives: needs the station inventory - stations without coordinates are skipped, stations within
    ``nearby_km`` are one site; station clocks that are wrong by minutes (see
    station.clock_skew) can make two close-in-time sessions look fast; a card shared by two drivers is caught
    too (that is token sharing, #4). Real data check: of 4,824 consecutive same-user sessions at different
    Dundee sites (Jun-Sep 2018) one non-overlapping pair exceeded 100 km/h (8.5 km in 2 minutes at minute
    resolution); it is the only alert on the full Dundee import (67,110 sessions): a stop swiped locally
    ("Local") and a start 8.5 km away a minute later are two people on one card - token sharing, kept.

    References: DOMAIN.md #1, #2, #13; OCPI 2.2.1 Location.coordinates.
    """

    info: ClassVar[DetectorInfo] = DetectorInfo(
        name="token-impossible-travel",
        kinds=("token.impossible_travel",),
        title="Token seen at distant stations too quickly",
        severity=Severity.HIGH,
        references=("DOMAIN.md #2", "DOMAIN.md #1", "OCPI 2.2.1 Location.coordinates"),
    )
    consumes: ClassVar[tuple[type[Any], ...]] = (
        TransactionStarted,
        AuthorizationDecision,
        MeterSample,
        TransactionEnded,
    )
    Config: ClassVar[type[Any]] = ImpossibleTravelConfig

    def __init__(self, config: ImpossibleTravelConfig, context: DetectorContext) -> None:
        super().__init__(config, context)
        self._tokens: BoundedState[str, _Traveller] = BoundedState(
            context.limits.max_keys, context.limits.ttl_s
        )
        # running transactions -> their token, so that a meter sample says where the token still is
        self._running: BoundedState[tuple[str, str], str] = BoundedState(
            context.limits.max_keys, context.limits.ttl_s
        )

    def state_size(self) -> int:
        return len(self._tokens) + len(self._running)

    def process(self, event: Event) -> Iterable[Finding]:
        if len(self.context.inventory) == 0:
            return ()
        if type(event) is MeterSample:
            self._sample(event)
            return ()
        token: str | None
        tx: str | None
        if isinstance(event, TransactionStarted):
            token, what, tx = event.token_ref, "start", event.transaction_id
        elif isinstance(event, TransactionEnded):
            token, what, tx = event.token_ref, "end", event.transaction_id
            self._running.pop((event.station, event.transaction_id))
        elif isinstance(event, AuthorizationDecision):
            token, what, tx = event.token_ref, f"authorization:{event.context}", event.transaction_id
        else:
            return ()
        if token is None:
            return ()
        if tx is not None and what != "end" and what != "authorization:StopTransaction":
            self._running.put((event.station, tx), token.lower(), event.ts)
        return self._sighted(event, token, _Sighting(event.at.timestamp(), event.station, tx, what))

    def _sample(self, event: MeterSample) -> None:
        """A sample of a running transaction: its token is still at this station (no comparison here)."""
        tx = event.transaction_id
        if tx is None:
            return
        token = self._running.get((event.station, tx))
        if token is None:
            return
        traveller = self._tokens.get(token)
        if traveller is not None:
            self._remember(traveller, _Sighting(event.at.timestamp(), event.station, tx, "charging"))

    def _remember(self, traveller: _Traveller, new: _Sighting) -> None:
        """Keep the first and latest sighting of each (station, transaction): 2.0.1 repeats the idToken.

        Runs on every meter sample of a running transaction, so it is one pass over the token's few sightings:
        the latest sighting of the same (station, transaction) (the first of equal times, as ``max`` picks),
        how many there are, and the newest and oldest times (pruning only when something is past the horizon).
        """
        sightings = traveller.sightings
        station, tx, at = new.station, new.transaction_id, new.at
        latest: _Sighting | None = None
        same = 0
        newest = oldest = at
        for s in sightings:
            t = s.at
            if t > newest:
                newest = t
            elif t < oldest:
                oldest = t
            if s.station == station and s.transaction_id == tx:
                same += 1
                if latest is None or t > latest.at:
                    latest = s
        if same >= 2 and latest is not None:
            if at <= latest.at:
                return
            sightings.remove(latest)  # its time is below ``at``: the newest time stays right
        sightings.append(new)
        horizon = self.config.horizon_s
        if newest - oldest > horizon:
            sightings[:] = [s for s in sightings if newest - s.at <= horizon]
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
                            "at": iso_time(s.at),
                            "transaction": s.transaction_id,
                            "what": s.what,
                        }
                        for s in (first, second)
                    ],
                },
            )
        ]
