"""What an incident builder gets (a Scene of the running network) and gives back (an Injection with its truth).

Both incident sets (``sim.incidents``, tuned on, and ``sim.incidents_holdout``, frozen) build on this contract
and on nothing of each other.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from chargeguard.sim.exchange import Emit, Line, MessageIds
from chargeguard.sim.network import Connector, Driver, Network, Station
from chargeguard.sim.sessions import SessionFactory
from chargeguard.sim.timefmt import format_ts

SAME_KIND_GAP_S = 2 * 86400.0  # detectors merge alerts of one kind per station; keep such incidents apart


@dataclass(slots=True)
class Truth:
    """One ground-truth record; ``detectable_at`` is filled when the completing line is written."""

    kind: str
    stations: list[str]
    transactions: list[str]
    start: float
    end: float
    note: str
    also_acceptable: tuple[str, ...] = ()
    subtle: bool = False
    variant: str = ""
    detectable_at: float | None = None

    def as_json(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "kind": self.kind,
            "stations": self.stations,
            "transactions": self.transactions,
            "start": format_ts(self.start),
            "end": format_ts(self.end),
            "detectable_at": format_ts(self.detectable_at if self.detectable_at is not None else self.end),
            "note": self.note,
        }
        if self.also_acceptable:
            record["also_acceptable"] = list(self.also_acceptable)
        if self.subtle:
            record["subtle"] = True
        if self.variant:
            record["variant"] = self.variant
        return record


@dataclass(slots=True)
class Injection:
    """The traffic of one incident: streams (each in time order) tied to stations, its truth, and the line
    whose transport time completes the evidence (``None``: the end of the incident)."""

    truth: Truth
    streams: list[tuple[Station | None, Iterator[Emit]]]
    completing: Line | None = None


@dataclass(slots=True)
class Scene:
    """The running network as incident builders see it."""

    network: Network
    rng: random.Random
    ids: MessageIds
    sessions: SessionFactory
    tainted: dict[int, float] = field(default_factory=dict)  # station index -> incident traffic until
    kind: str = ""  # the kind being built; a station gets one incident of a kind per SAME_KIND_GAP_S
    kind_history: dict[tuple[int, str], float] = field(default_factory=dict)

    def idle_station(
        self,
        t: float,
        until: float,
        accept: Callable[[Station], bool] | None = None,
        *,
        count: int = 1,
        quiet_s: float = 1800.0,
        at_least: int | None = None,
    ) -> list[Station]:
        """``count`` stations that are online, idle, free of other incidents over [t, until] and accepted.

        They stay free of other incidents for ``quiet_s`` after ``until`` (longer for incidents whose evidence
        detectors remember for long, so that two incidents never blend into one).
        """
        candidates = [
            s
            for s in self.network.stations
            if self.tainted.get(s.index, 0.0) < t
            and self.kind_history.get((s.index, self.kind), -SAME_KIND_GAP_S) < t - SAME_KIND_GAP_S
            and s.busy_until < t
            and all(c.busy_until < t for c in s.connectors)
            and not any(w[0] < until + 600 and w[1] > t - 600 for w in s.offline)
            and (accept is None or accept(s))
        ]
        if len(candidates) < (count if at_least is None else at_least):
            return []
        chosen = self.rng.sample(candidates, min(count, len(candidates)))
        for station in chosen:
            self.claim(station, until, quiet_s)
        return chosen

    def claim(self, station: Station, until: float, quiet_s: float = 1800.0) -> None:
        """Keep benign sessions and station events off ``station`` until ``until``, other incidents longer."""
        self.tainted[station.index] = max(self.tainted.get(station.index, 0.0), until + quiet_s)
        self.kind_history[(station.index, self.kind)] = until
        station.busy_until = max(station.busy_until, until + 600.0)
        for connector in station.connectors:
            connector.busy_until = max(connector.busy_until, until + 600.0)

    def driver(self, accept: Callable[[Driver], bool] | None = None) -> Driver | None:
        pool = [d for d in self.network.drivers if accept is None or accept(d)]
        return self.rng.choice(pool) if pool else None

    def connector(self, station: Station, kind: str | None = None) -> Connector:
        pool = [c for c in station.connectors if kind is None or c.kind == kind]
        return self.rng.choice(pool or station.connectors)


Builder = Callable[[Scene, float], Injection | None]


@dataclass(frozen=True, slots=True)
class IncidentSpec:
    """One variant of one kind: ``build(scene, t)`` returns its injection (None when the scene has no room)."""

    kind: str
    variant: str
    build: Builder
    subtle: bool = False
