"""Injecting labelled incidents into real session data, so recall and precision can be measured on real traffic.

The simulator's incident builders work on its own network model, not on an existing capture, so real data gets
its own injector. It works on imported session records, before they become frames, and changes or adds
sessions the way each behaviour would show in a real back office; ``truth`` then names the wire transaction
ids the renderer gave them. Two variants per kind, alternating:

* ``token.concurrent_use`` - a victim's card is used at another station while the victim's session runs:
  (a) a station of the same site or the nearest one, (b) the farthest station of the dataset
  (``also_acceptable``: token.impossible_travel). A single-station dataset uses its other connector.
* ``meter.exceeds_capacity`` - (a) a session's energy raised to 1.6-3x what its connector can deliver in
  its duration; (b) the session cut to 15-25 minutes with its energy kept or raised to 2x capacity.
* ``meter.rollback`` - (a) a session's energy made negative (its register runs back;
  ``also_acceptable``: meter.inconsistent); (b) the register set back 2-20 kWh between two sessions.
* ``meter.inconsistent`` - the reported meterStop differs from the sampled register: (a) 2-10 kWh more,
  (b) 2-5 kWh less (``also_acceptable``: meter.rollback for both: an inflated meterStop is followed by the
  connector's next meterStart at the true register, which is a register going back on the wire, and with samples
  30 minutes apart the inflation itself can be energy charged after the last sample; and meter.exceeds_capacity
  for (a) when the inflation alone is more than the connector delivers between the last sample and the stop).
* ``token.unauthorized_charging`` - the central system answers (a) Blocked, (b) Invalid or Expired, and the
  station charges anyway.
* ``session.overlap`` - a second session with another card on an occupied connector: (a) starting in the
  middle of the first, (b) starting 5-15 minutes before the first ends.
* ``token.enumeration`` - refused attempts with distinct unknown cards at one station: (a) 15 within
  10 minutes, (b) 30 over two hours (low rate).

Sessions added for an incident (a cloned card's, an intruder's) carry at most ``DELIVERABLE_SHARE`` of what
their connector delivers in their time: energy beyond it would be a second incident the truth does not name.

Targets are real sessions of 10 minutes to 24 hours with 1-80 kWh, an end and a rated connector, at most one
incident per station and day, and never a session the oddity finder flagged. ``detectable_at`` is the
payload time of the frame that completes the evidence: the second start for concurrent use and overlap, the
stop for metering kinds (the earliest moment the billed energy is certain; a detector alerting on an earlier
sample shows a negative delay), the first sample after the start for unauthorized charging, the last attempt
for enumeration.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from chargeguard.inventory import StationInfo, distance_km
from chargeguard.sim.timefmt import format_ts
from chargeguard.sources.datasets.records import DatasetImport, SessionRecord

KINDS = (
    "token.concurrent_use",
    "meter.exceeds_capacity",
    "meter.rollback",
    "meter.inconsistent",
    "token.unauthorized_charging",
    "session.overlap",
    "token.enumeration",
)
DELIVERABLE_SHARE = 0.6  # an added session's energy stays within this share of its connector's rating x time
MIN_DURATION = timedelta(minutes=10)
MAX_DURATION = timedelta(hours=24)


@dataclass(slots=True)
class PlannedIncident:
    """An incident before rendering: its sessions are named by (key, source) until ids exist."""

    kind: str
    variant: str
    stations: list[str]
    sessions: list[tuple[str, str]]
    start: datetime
    end: datetime
    detectable_at: datetime
    note: str
    also_acceptable: tuple[str, ...] = ()

    def truth(self, wire_ids: dict[tuple[str, str], str]) -> dict[str, Any]:
        record: dict[str, Any] = {
            "kind": self.kind,
            "stations": self.stations,
            "transactions": [wire_ids[s] for s in self.sessions if s in wire_ids],
            "start": format_ts(self.start.timestamp()),
            "end": format_ts(self.end.timestamp()),
            "detectable_at": format_ts(self.detectable_at.timestamp()),
            "note": self.note,
            "variant": self.variant,
        }
        if self.also_acceptable:
            record["also_acceptable"] = list(self.also_acceptable)
        return record


@dataclass(slots=True)
class _Injector:
    data: DatasetImport
    rng: random.Random
    sample_interval_s: float
    excluded: set[tuple[str, str]]
    claimed: set[tuple[str, str]] = field(default_factory=set)
    replaced: dict[int, SessionRecord] = field(default_factory=dict)
    added: list[SessionRecord] = field(default_factory=list)
    planned: list[PlannedIncident] = field(default_factory=list)
    serial: int = 0
    busy: dict[tuple[str, int], list[tuple[datetime, datetime]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for s in self.data.sessions:
            self.occupy(s)

    def occupy(self, s: SessionRecord) -> None:
        end = s.end if s.end is not None and s.end > s.start else s.start + timedelta(hours=12)
        self.busy.setdefault((s.station, s.connector), []).append((s.start, end))

    def free(
        self,
        station: str,
        connector: int,
        start: datetime,
        end: datetime,
        ignore: SessionRecord | None = None,
    ) -> bool:
        """No session (but ``ignore``) on the connector within 10 minutes of [start, end]."""
        margin = timedelta(minutes=10)
        skip = None
        if ignore is not None and ignore.end is not None:
            skip = (ignore.start, ignore.end)
        return all(
            (a, b) == skip or b + margin <= start or a - margin >= end
            for a, b in self.busy.get((station, connector), ())
        )

    def add(self, s: SessionRecord) -> None:
        self.added.append(s)
        if s.energy_wh:
            self.occupy(s)

    # ------------------------------------------------------------------ choosing targets
    def kw(self, s: SessionRecord) -> float | None:
        station = self.data.stations.get(s.station)
        return station.connector_kw(s.connector) if station else None

    def usable(self, i: int) -> bool:
        s = self.data.sessions[i]
        if s.end is None or s.energy_wh is None or i in self.replaced or (s.key, s.source) in self.excluded:
            return False
        if not (MIN_DURATION <= s.end - s.start <= MAX_DURATION and 1000.0 <= s.energy_wh <= 80_000.0):
            return False
        kw = self.kw(s)
        if kw is None:
            return False
        return (s.station, s.start.date().isoformat()) not in self.claimed

    def pick(self) -> int | None:
        for _ in range(400):
            i = self.rng.randrange(len(self.data.sessions))
            if self.usable(i):
                return i
        return None

    def claim(self, station: str, *moments: datetime) -> None:
        for moment in moments:
            for delta in (-1, 0, 1):
                self.claimed.add((station, (moment + timedelta(days=delta)).date().isoformat()))

    def new_session(self, like: SessionRecord, **changes: Any) -> SessionRecord:
        self.serial += 1
        base = replace(like, key=f"inj{self.serial}", source=f"injected:{self.serial}", model=like.model)
        return replace(base, **changes)

    def deliverable(
        self, station: str, connector: int, start: datetime, end: datetime, wanted_wh: float
    ) -> float:
        """``wanted_wh``, or less when the connector cannot deliver it in the time (an added session's energy).

        A cloned card's or an intruder's session is one incident; energy beyond its connector would be a second
        (meter.exceeds_capacity) that the truth does not name. The bound leaves room for the renderer's power
        profile (ramp, taper, a car accepting 80-97 % of the rating).
        """
        record = self.data.stations.get(station)
        kw = record.connector_kw(connector) if record is not None else None
        if not kw:
            return wanted_wh
        hours = (end - start).total_seconds() / 3600.0
        return min(wanted_wh, DELIVERABLE_SHARE * kw * 1000.0 * hours)

    def token_user(self, s: SessionRecord) -> str:
        """The user string whose derived token is this session's card (render.derive_token)."""
        return s.user if s.user is not None else f"session:{s.key}:{s.source}"

    # ------------------------------------------------------------------ kinds
    def concurrent_use(self, variant: str) -> bool:
        i = self.pick()
        if i is None:
            return False
        victim = self.data.sessions[i]
        assert victim.end is not None
        other = self.other_station(victim.station, far=variant == "b")
        if other is None:
            return False
        station, candidates = other
        offset = (victim.end - victim.start) * self.rng.uniform(0.1, 0.6)
        start = victim.start + offset
        end = start + timedelta(minutes=self.rng.uniform(20, 90))
        free = [c for c in candidates if self.free(station, c, start, end)]
        if not free:
            return False
        connector = free[0]
        energy = self.deliverable(station, connector, start, end, self.rng.uniform(3000, 15000))
        clone = self.new_session(
            victim, station=station, connector=connector, start=start, end=end,
            energy_wh=energy, user=self.token_user(victim), max_power_w=None,
        )  # fmt: skip
        self.add(clone)
        self.claim(victim.station, victim.start)
        self.claim(station, start)
        self.plan(
            "token.concurrent_use", variant, [victim, clone], start, min(victim.end, end), start,
            f"card of a running session used at {station}",
            ("token.impossible_travel",) if variant == "b" else (),
        )  # fmt: skip
        return True

    def other_station(self, station: str, *, far: bool) -> tuple[str, list[int]] | None:
        """The station for the cloned card and its connectors; a single-station dataset uses its other plugs."""
        stations = self.data.stations
        if len(stations) == 1:
            own = stations[station]
            return station, sorted(own.connectors) or [1, 2]
        here = _info(stations[station])
        scored = []
        for name, record in stations.items():
            if name == station or not record.connectors:
                continue
            d = distance_km(here, _info(record))
            scored.append((d if d is not None else self.rng.random() * 1000, name))
        if not scored:
            return None
        scored.sort()
        name = scored[-1][1] if far else scored[0][1]
        return name, sorted(stations[name].connectors)

    def exceeds_capacity(self, variant: str) -> bool:
        i = self.pick()
        if i is None:
            return False
        s = self.data.sessions[i]
        assert s.end is not None and s.energy_wh is not None
        kw = self.kw(s) or 7.0
        if variant == "a":
            end = s.end
            hours = (end - s.start).total_seconds() / 3600
            energy = kw * 1000 * hours * self.rng.uniform(1.6, 3.0)
        else:
            end = s.start + timedelta(minutes=self.rng.uniform(15, 25))
            hours = (end - s.start).total_seconds() / 3600
            energy = max(s.energy_wh, kw * 1000 * hours * 2.0)
        changed = replace(s, end=end, energy_wh=round(energy), max_power_w=None)
        self.replaced[i] = changed
        self.claim(s.station, s.start)
        self.plan("meter.exceeds_capacity", variant, [changed], s.start, end, end,
                  f"{energy / 1000:.1f} kWh in {hours:.2f} h on {kw:g} kW")  # fmt: skip
        return True

    def rollback(self, variant: str) -> bool:
        i = self.pick()
        if i is None:
            return False
        s = self.data.sessions[i]
        assert s.end is not None
        if variant == "a":
            changed = replace(s, energy_wh=-round(self.rng.uniform(500, 5000)))
            self.replaced[i] = changed
            self.plan("meter.rollback", variant, [changed], s.start, s.end, s.end,
                      "register runs backwards during the session", ("meter.inconsistent",))  # fmt: skip
        else:
            changed = replace(s, meter_jump_wh=-round(self.rng.uniform(2000, 20000)))
            self.replaced[i] = changed
            self.plan("meter.rollback", variant, [changed], s.start, s.end, s.start,
                      "register set back between two sessions", ("meter.inconsistent",))  # fmt: skip
        self.claim(s.station, s.start)
        return True

    def inconsistent(self, variant: str) -> bool:
        i = self.pick()
        if i is None:
            return False
        s = self.data.sessions[i]
        assert s.end is not None
        if (s.end - s.start).total_seconds() < self.sample_interval_s + 60.0:
            return False
        delta = self.rng.uniform(2000, 10000) if variant == "a" else -self.rng.uniform(2000, 5000)
        changed = replace(s, stop_delta_wh=round(delta))
        self.replaced[i] = changed
        self.claim(s.station, s.start)
        also: tuple[str, ...] = ("meter.rollback",)
        if delta > 0 and self.beyond_connector_after_last_sample(s, delta):
            also = (*also, "meter.exceeds_capacity")
        self.plan("meter.inconsistent", variant, [changed], s.start, s.end, s.end,
                  f"meterStop {delta / 1000:+.1f} kWh off the sampled register", also)  # fmt: skip
        return True

    def beyond_connector_after_last_sample(self, s: SessionRecord, added_wh: float) -> bool:
        """Whether ``added_wh`` on the stop alone is more than the connector delivers after the last sample.

        An inflated meterStop is energy billed after the last sample; when even the inflation cannot flow through
        the connector in that time, the stop is also energy beyond capacity (2.0.1 sends the stop as a
        Transaction.End register, which meter.exceeds_capacity judges like any reading). Sample times as the
        renderer makes them: every ``sample_interval_s`` from the start, the end about 54 s into its minute.
        """
        assert s.end is not None
        kw = self.kw(s)
        if not kw or self.sample_interval_s <= 0:
            return False
        duration_s = (s.end - s.start).total_seconds() + 54.0
        gap_s = duration_s % self.sample_interval_s or self.sample_interval_s
        return added_wh > kw * 1000.0 * gap_s / 3600.0

    def unauthorized(self, variant: str) -> bool:
        i = self.pick()
        if i is None:
            return False
        s = self.data.sessions[i]
        assert s.end is not None
        status = "Blocked" if variant == "a" else self.rng.choice(("Invalid", "Expired"))
        changed = replace(s, auth_status=status)
        self.replaced[i] = changed
        self.claim(s.station, s.start)
        first_sample = min(s.start + timedelta(seconds=self.sample_interval_s), s.end)
        self.plan("token.unauthorized_charging", variant, [changed], s.start, s.end, first_sample,
                  f"charging on a token answered {status}")  # fmt: skip
        return True

    def overlap(self, variant: str) -> bool:
        i = self.pick()
        if i is None:
            return False
        s = self.data.sessions[i]
        assert s.end is not None
        if variant == "a":
            start = s.start + (s.end - s.start) / 2
        else:
            start = s.end - timedelta(minutes=self.rng.uniform(5, 15))
        end = max(start + timedelta(minutes=self.rng.uniform(30, 120)), s.end + timedelta(minutes=10))
        if not self.free(s.station, s.connector, s.start, end, ignore=s):
            return False
        energy = self.deliverable(s.station, s.connector, start, end, self.rng.uniform(2000, 10000))
        intruder = self.new_session(s, start=start, end=end, energy_wh=energy,
                                    user=f"overlap-card-{self.serial}", max_power_w=None)  # fmt: skip
        self.add(intruder)
        self.claim(s.station, s.start, end)
        self.plan("session.overlap", variant, [s, intruder], start, min(s.end, end), start,
                  "second transaction on an occupied connector")  # fmt: skip
        return True

    def enumeration(self, variant: str) -> bool:
        i = self.pick()
        if i is None:
            return False
        s = self.data.sessions[i]
        count, span_min = (15, 10.0) if variant == "a" else (30, 120.0)
        t0 = s.start - timedelta(hours=self.rng.uniform(2, 6))
        times = sorted(t0 + timedelta(minutes=self.rng.uniform(0, span_min)) for _ in range(count))
        for k, t in enumerate(times):
            attempt = self.new_session(s, start=t, end=t, energy_wh=0.0, auth_status="Invalid",
                                       user=f"enum-{self.serial}-{k}", max_power_w=None)  # fmt: skip
            self.add(attempt)
        self.claim(s.station, t0)
        self.incident(PlannedIncident("token.enumeration", variant, [s.station], [], times[0], times[-1],
                                      times[-1], f"{count} unknown cards refused in {span_min:g} min"))  # fmt: skip
        return True

    # ------------------------------------------------------------------ bookkeeping
    def plan(
        self, kind: str, variant: str, sessions: Sequence[SessionRecord], start: datetime, end: datetime,
        detectable: datetime, note: str, also: tuple[str, ...] = (),
    ) -> None:  # fmt: skip
        stations = sorted({s.station for s in sessions})
        refs = [(s.key, s.source) for s in sessions]
        self.incident(PlannedIncident(kind, variant, stations, refs, start, end, detectable, note, also))

    def incident(self, planned: PlannedIncident) -> None:
        self.planned.append(planned)


def _info(record: Any) -> StationInfo:
    return StationInfo(record.station, record.latitude, record.longitude, record.max_kw)


def inject(
    data: DatasetImport,
    *,
    per_kind: int,
    seed: int,
    sample_interval_s: float,
    excluded: set[tuple[str, str]] | None = None,
    kinds: Sequence[str] = KINDS,
) -> tuple[DatasetImport, list[PlannedIncident]]:
    """A copy of ``data`` with ``per_kind`` incidents of each kind, and their plans (truth after rendering).

    ``excluded`` are (key, source) of sessions never to touch (the real oddities).
    """
    injector = _Injector(
        data, random.Random(f"inject|{seed}|{data.dataset}"), sample_interval_s, excluded or set()
    )
    builders = {
        "token.concurrent_use": injector.concurrent_use,
        "meter.exceeds_capacity": injector.exceeds_capacity,
        "meter.rollback": injector.rollback,
        "meter.inconsistent": injector.inconsistent,
        "token.unauthorized_charging": injector.unauthorized,
        "session.overlap": injector.overlap,
        "token.enumeration": injector.enumeration,
    }
    for kind in kinds:
        made = 0
        for _ in range(per_kind * 5):
            if made == per_kind:
                break
            if builders[kind]("ab"[made % 2]):
                made += 1
    sessions = [injector.replaced.get(i, s) for i, s in enumerate(data.sessions)] + injector.added
    out = DatasetImport(data.dataset, sessions, data.stations, data.problems, data.rows_read, data.blank_rows,
                        data.header_rows, [*data.notes, f"{len(injector.planned)} incidents injected"])  # fmt: skip
    return out, injector.planned


def real_oddity_sessions(data: DatasetImport) -> set[tuple[str, str]]:
    """(key, source) of every session the oddity finder flags: injection leaves them alone."""
    from chargeguard.sources.datasets.oddities import find_oddities

    refs = [str(i) for i in range(len(data.sessions))]
    found: set[tuple[str, str]] = set()
    for oddity in find_oddities(data.sessions, data.stations, refs):
        for ref in oddity.transactions:
            s = data.sessions[int(ref)]
            found.add((s.key, s.source))
    return found
