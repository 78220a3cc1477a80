"""Station-, command- and protocol-level incidents injected into an imported real capture, with their truth.

``chargeguard.eval.inject`` changes real *session records* (seven session-level kinds). The other rule kinds
that a real network can have - ``station.*``, ``command.*``, ``ocpp.*`` and ``session.phantom`` - show as
frames and connection lines, so they are added here to the capture itself, beside the real stations' traffic,
by the simulator's own incident builders (the tuning set, or the frozen hold-out set) run on a mirror of the
real network:

* every real station becomes a simulator ``Station`` with its OCPP version, the vendor and model its
  BootNotification reports (a vendor-format firmware list and a serial are added; firmware host names carry
  the vendor's name), its inventory connectors and security profile 1 (what the import's connect lines say);
* an incident starts only where the real station is idle from 2 h before to 4 h after it;
* incidents that need what the real capture never shows - the station's address (duplicate connections),
  firmware version (downgrades) or serial number (identity changes) - are preceded, 40-100 minutes
  earlier, by a routine operator reboot in which the station reports them (background, not an incident: an
  alert on it is a false alarm);
* incidents that bill a session (clock skew, phantom) start at the connector's real register, and every
  later real register reading of that connector is raised by the energy they billed, so no real session
  reads as a rollback;
* message ids are UUIDs of their own seed (never a real id) and 1.6 transaction ids start above the real ones.

A variant the import's traffic cannot host (both 1.6 security-profile downgrades need a station above
profile 1; a fleet push needs ten idle stations of one version) gives way to another variant of its kind;
a kind no variant fits is counted in ``skipped``. Truth lines have the simulator's shape (``variant`` included).
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import structlog

from chargeguard.errors import ConfigError
from chargeguard.sim import station_traffic as st
from chargeguard.sim.catalogue import incident_set
from chargeguard.sim.exchange import Line, MessageIds
from chargeguard.sim.injection import IncidentSpec, Scene, Truth
from chargeguard.sim.network import (
    HARDWARE,
    City,
    Connector,
    Driver,
    Hardware,
    Network,
    Station,
    connector_class,
)
from chargeguard.sim.real_capture import RealCapture, RealConnector, iter_lines, parse_ts, read_capture
from chargeguard.sim.runner import event_time
from chargeguard.sim.sessions import SessionFactory
from chargeguard.sim.timefmt import format_ts

log = structlog.get_logger(__name__)

IDLE_BEFORE_S = 2 * 3600.0
IDLE_AFTER_S = 4 * 3600.0
RETRIES = 10
PRELUDE_KINDS = frozenset(
    {"station.duplicate_connection", "station.firmware_downgrade", "station.identity_change"}
)
_REGISTER = "Energy.Active.Import.Register"


def real_kinds(spec: IncidentSpec) -> bool:
    """Whether a variant is injected into real captures here (the session-level kinds are eval.inject's)."""
    return not spec.subtle and (
        spec.kind.split(".")[0] in ("station", "command", "ocpp") or spec.kind == "session.phantom"
    )


@dataclass(slots=True)
class RealInjection:
    truths: list[Truth]
    skipped: dict[str, int]  # kind -> scheduled incidents that found no idle station where it applies
    preludes: int
    lines_added: int
    shifted_connectors: int


@dataclass(slots=True)
class _Shifts:
    """Register offsets per (station, connector) from a time on (injected sessions billed that energy)."""

    by_key: dict[tuple[str, int], list[tuple[float, float]]] = field(default_factory=dict)

    def add(self, key: tuple[str, int], t: float, delta: float) -> None:
        self.by_key.setdefault(key, []).append((t, delta))

    def at(self, key: tuple[str, int], t: float) -> float:
        return sum(d for at, d in self.by_key.get(key, ()) if at <= t)


def _mirror(real: RealCapture, rng: random.Random) -> Network:
    stations: list[Station] = []
    by_city: dict[str, list[int]] = {}
    formats = [h.firmware for h, _ in HARDWARE if len(h.firmware) >= 3]
    for index, name in enumerate(sorted(real.stations)):
        rs = real.stations[name]
        lat, lon = rs.latitude or 0.0, rs.longitude or 0.0
        city = City(rs.location_id or name, rs.location_id or name, "real", rs.country, lat, lon, 5.0, 1.0)
        vendor = rs.vendor or "Unknown"
        word = next((w for w in vendor.lower().split() if w.isalnum() and len(w) >= 3), "vendor")
        numbers = rs.connectors or [RealConnector(1, "AC", 7.4)]
        hardware = Hardware(vendor, rs.model or "Unknown", rng.choice(formats),
                            tuple((c.kind, c.max_kw) for c in numbers), f"firmware.{word}.example")  # fmt: skip
        connectors = [
            Connector(
                connector_id=c.number if rs.ocpp == "1.6" else 1,
                evse_id=c.number,
                kind=c.kind,
                max_kw=c.max_kw,
                session_class=connector_class(c.kind, c.max_kw, city),
                register_wh=0.0,
            )
            for c in numbers
        ]
        stations.append(
            Station(
                index=index,
                station_id=name,
                city=city,
                latitude=lat,
                longitude=lon,
                ocpp=rs.ocpp,
                hardware=hardware,
                firmware_index=rng.randrange(1, len(hardware.firmware)),
                serial=f"{vendor[:3].upper()}{rng.randrange(10**8):08d}",
                security_profile=1,
                remote=f"{rng.choice((81, 92, 178))}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}",
                heartbeat_s=300.0,
                location_id=rs.location_id or name,
                connectors=connectors,
            )
        )
        by_city.setdefault(city.code, []).append(index)
    tokens = real.tokens or [f"{rng.getrandbits(56):014X}" for _ in range(8)]
    first = stations[0]
    drivers = [Driver(tok, first.city, [0], 1.0, 0.0, 12, False) for tok in tokens]
    return Network(stations=stations, drivers=drivers, by_city=by_city)


class _Injector:
    def __init__(self, real: RealCapture, *, seed: int, sample_interval_s: float) -> None:
        self.real = real
        self.rng = random.Random(f"real-incidents|{seed}")
        self.network = _mirror(real, random.Random(f"real-mirror|{seed}"))
        self.ids = MessageIds(f"real-incidents|{seed}", style="uuid")
        factory = SessionFactory(
            self.network, random.Random(f"real-sessions|{seed}"), self.ids, sample_interval_s
        )
        factory.next_tx16 = max(factory.next_tx16, real.max_tx16 + 1000)
        self.scene = Scene(self.network, self.rng, self.ids, factory)
        self.shifts = _Shifts()
        self.emits: list[tuple[float, int, Line]] = []
        self.truths: list[Truth] = []
        self.preludes = 0

    def prepare(self, t: float) -> dict[int, tuple[int, str | None]]:
        """Make the mirror say which stations are busy around ``t`` and what their registers read."""
        snapshot = {}
        for station in self.network.stations:
            real = self.real.stations[station.station_id]
            busy = real.busy_between(t - IDLE_BEFORE_S, t + IDLE_AFTER_S)
            station.busy_until = t + IDLE_AFTER_S if busy else 0.0
            for connector in station.connectors:
                connector.busy_until = station.busy_until
                key = (station.station_id, connector.evse_id)
                register = self.real.register_at(station.station_id, connector.evse_id, t)
                connector.register_wh = (register if register is not None else 1_000_000.0) + self.shifts.at(
                    key, t
                )
            snapshot[station.index] = (station.firmware_index, station.firmware_pinned)
        return snapshot

    def build(self, spec: IncidentSpec, t: float) -> bool:
        snapshot = self.prepare(t)
        registers = {
            (s.station_id, c.evse_id): c.register_wh for s in self.network.stations for c in s.connectors
        }
        self.scene.kind = spec.kind
        injection = spec.build(self.scene, t)
        if injection is None:
            return False
        truth = injection.truth
        truth.variant, truth.subtle = spec.variant, truth.subtle or spec.subtle
        truth.start, truth.end = float("inf"), float("-inf")
        owners = {o.station_id: o for o, _ in injection.streams if o is not None}
        for owner, stream in injection.streams:
            items = list(stream if owner is None else st.through_transport(owner, stream))
            for at, line in items:
                truth.start, truth.end = min(truth.start, at), max(truth.end, at)
                if line is injection.completing:
                    truth.detectable_at = event_time(at, line)
                self.add(at, line)
        for station in self.network.stations:
            for connector in station.connectors:
                key = (station.station_id, connector.evse_id)
                if connector.register_wh != registers[key]:
                    self.shifts.add(key, truth.start, connector.register_wh - registers[key])
        if spec.kind in PRELUDE_KINDS:
            for owner in owners.values():
                self.prelude(owner, truth.start, snapshot[owner.index])
        self.truths.append(truth)
        return True

    def prelude(self, station: Station, t: float, before: tuple[int, str | None]) -> None:
        """A routine operator reboot before ``t`` in which the station reports its address and firmware."""
        after = (station.firmware_index, station.firmware_pinned)
        station.firmware_index, station.firmware_pinned = before
        at = t - self.rng.uniform(40, 100) * 60.0
        for moment, line in st.reboot(station, at, self.rng.uniform(40, 120), rng=self.rng, ids=self.ids):
            self.add(moment, line)
        station.firmware_index, station.firmware_pinned = after
        self.preludes += 1

    def add(self, t: float, line: Line) -> None:
        line["ts"] = format_ts(t)
        self.emits.append((t, len(self.emits), line))


def inject_station_incidents(
    directory: Path,
    *,
    per_kind: int,
    seed: int,
    incidents: str = "tuning",
    kinds: Sequence[str] | None = None,
    sample_interval_s: float | None = None,
) -> RealInjection:
    """Add ``per_kind`` incidents of every station/command/protocol kind (and session.phantom) of incident set
    ``incidents`` to ``directory``'s capture.jsonl, beside the real traffic; append their truth to truth.jsonl.

    ``directory`` is what ``chargeguard import-sessions`` wrote (capture.jsonl and stations.csv; a truth.jsonl
    from ``--inject`` is kept and extended). Variants of a kind alternate; an incident that finds no idle
    station is retried a few hours later, up to ``RETRIES`` times.
    """
    capture, inventory = directory / "capture.jsonl", directory / "stations.csv"
    real = read_capture(capture, inventory)
    if not real.stations:
        raise ConfigError(f"{capture}: no station traffic to inject beside")
    if sample_interval_s is None:
        report = directory / "import-report.json"
        found = orjson.loads(report.read_bytes()).get("sample_interval_s") if report.exists() else None
        sample_interval_s = float(found) if isinstance(found, int | float) else 300.0
    specs = [s for s in incident_set(incidents) if real_kinds(s) and (kinds is None or s.kind in kinds)]
    injector = _Injector(real, seed=seed, sample_interval_s=sample_interval_s)
    rng = injector.rng
    first, last = real.first + 86400.0, real.last - 86400.0
    if last <= first:
        first, last = real.first + IDLE_BEFORE_S, max(real.first + IDLE_BEFORE_S, real.last - IDLE_AFTER_S)
    by_kind: dict[str, list[IncidentSpec]] = {}
    for spec in specs:
        by_kind.setdefault(spec.kind, []).append(spec)
    # (time, order, variants of the kind, which variant first, attempts left): a variant the scene cannot host
    # at that time (no station where it applies) gives way to the kind's next variant
    queue: list[tuple[float, int, list[IncidentSpec], int, int]] = []
    for variants in by_kind.values():
        for k in range(per_kind):
            t = first + rng.random() * (last - first)
            heapq.heappush(queue, (t, len(queue), variants, k, RETRIES))
    skipped: dict[str, int] = {}
    while queue:
        t, n, variants, k, attempts = heapq.heappop(queue)
        if any(injector.build(variants[(k + i) % len(variants)], t) for i in range(len(variants))):
            continue
        if attempts > 1 and t + 3 * 3600.0 < real.last - IDLE_AFTER_S:
            heapq.heappush(queue, (t + 3600.0 * (3 + rng.random() * 9), n, variants, k, attempts - 1))
        else:
            kind = variants[0].kind
            skipped[kind] = skipped.get(kind, 0) + 1
    added = _merge(capture, injector.emits, injector.shifts)
    truths = sorted(injector.truths, key=lambda x: (x.start, x.kind, x.stations))
    with (directory / "truth.jsonl").open("ab") as handle:
        for truth in truths:
            handle.write(orjson.dumps(truth.as_json(), option=orjson.OPT_APPEND_NEWLINE))
    log.info("sim.real_injection.written", incidents=len(truths), skipped=sum(skipped.values()), lines=added)
    return RealInjection(truths, skipped, injector.preludes, added, len(injector.shifts.by_key))


def _merge(capture: Path, emits: list[tuple[float, int, Line]], shifts: _Shifts) -> int:
    """Rewrite ``capture`` with ``emits`` merged in ts order (real lines first on ties), registers shifted."""
    emits.sort(key=lambda e: (e[0], e[1]))
    shifter = _RegisterShifter(shifts)
    target = capture.with_name(capture.name + ".injecting")
    with target.open("wb") as out:
        pending = iter(emits)
        head = next(pending, None)
        for raw in iter_lines(capture):
            ts = _ts_of(raw)
            while head is not None and head[2]["ts"] < ts:
                out.write(orjson.dumps(head[2], option=orjson.OPT_APPEND_NEWLINE))
                head = next(pending, None)
            out.write(shifter.apply(raw, ts) if shifter.wanted(raw) else raw)
        while head is not None:
            out.write(orjson.dumps(head[2], option=orjson.OPT_APPEND_NEWLINE))
            head = next(pending, None)
    target.replace(capture)
    return len(emits)


def _ts_of(raw: bytes) -> str:
    if raw.startswith(b'{"ts":"'):
        end = raw.index(b'"', 7)
        return raw[7:end].decode()
    line = orjson.loads(raw)
    return str(line.get("ts", ""))


class _RegisterShifter:
    """Raises the register readings of real lines on connectors where an injected session billed energy."""

    def __init__(self, shifts: _Shifts) -> None:
        self.shifts = shifts
        self.stations = {s.encode() for s, _ in shifts.by_key}
        self.pending: dict[tuple[str, str], int] = {}
        self.tx_connector: dict[tuple[str, str], int] = {}

    def wanted(self, raw: bytes) -> bool:
        if not self.stations:
            return False
        at = raw.find(b'"station":"')
        if at < 0:
            return False
        at += 11
        return raw[at : raw.find(b'"', at)] in self.stations

    def apply(self, raw: bytes, ts: str) -> bytes:
        line = orjson.loads(raw)
        frame, name = line.get("frame"), line.get("station")
        if not isinstance(frame, list) or not isinstance(name, str):
            return raw
        t = parse_ts(ts)
        if frame[0] == 3 and isinstance(frame[2], dict):
            connector = self.pending.pop((name, str(frame[1])), None)
            if connector is not None and "transactionId" in frame[2]:
                self.tx_connector[(name, str(frame[2]["transactionId"]))] = connector
            return raw
        if frame[0] != 2 or not isinstance(frame[3], dict):
            return raw
        action, payload = frame[2], frame[3]
        if action == "StartTransaction":
            connector = int(payload.get("connectorId", 0))
            self.pending[(name, str(frame[1]))] = connector
            delta = self.shifts.at((name, connector), t)
            if not delta:
                return raw
            payload["meterStart"] = round(payload["meterStart"] + delta)
        else:
            connector_of = self._connector(name, action, payload)
            if connector_of is None:
                return raw
            delta = self.shifts.at((name, connector_of), t)
            if not delta or not self._shift(action, payload, delta):
                return raw
        return orjson.dumps(line, option=orjson.OPT_APPEND_NEWLINE)

    def _connector(self, name: str, action: str, payload: dict[str, Any]) -> int | None:
        if action == "MeterValues":
            return int(payload.get("connectorId", 0))
        if action == "StopTransaction":
            return self.tx_connector.get((name, str(payload.get("transactionId"))))
        if action == "TransactionEvent":
            key = (name, str((payload.get("transactionInfo") or {}).get("transactionId")))
            evse = payload.get("evse")
            if isinstance(evse, dict) and isinstance(evse.get("id"), int):
                self.tx_connector[key] = evse["id"]
            return self.tx_connector.get(key)
        return None

    @staticmethod
    def _shift(action: str, payload: dict[str, Any], delta: float) -> bool:
        changed = False
        if action == "StopTransaction" and "meterStop" in payload:
            payload["meterStop"] = round(payload["meterStop"] + delta)
            changed = True
        for meter_value in payload.get("meterValue") or ():
            for sampled in meter_value.get("sampledValue") or ():
                if sampled.get("measurand", _REGISTER) != _REGISTER:
                    continue
                value = sampled.get("value")
                if isinstance(value, str):
                    sampled["value"] = str(round(float(value) + delta))
                elif isinstance(value, int | float):
                    sampled["value"] = round(value + delta)
                changed = True
        return changed


def iter_truth(result: RealInjection) -> Iterator[dict[str, Any]]:
    for truth in result.truths:
        yield truth.as_json()
