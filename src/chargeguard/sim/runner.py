"""The simulation loop: schedules station events, driver arrivals and incidents per hour, merges their streams.

Memory stays bounded whatever the length of the run: streams are generators (a session yields its frames as
they are due), the main heap holds one pending frame per live stream, and starters (arrivals, station events,
incidents) are planned one day ahead at most. Everything random flows from one seed, and all ordering ties are
broken by insertion order, so the same seed gives byte-identical output.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson
import structlog

from chargeguard.sim import station_traffic as st
from chargeguard.sim.exchange import Emit, Line, MessageIds
from chargeguard.sim.injection import IncidentSpec, Injection, Scene, Truth
from chargeguard.sim.network import Network, Station, build_network
from chargeguard.sim.sessions import STREAM_TAIL_S, SessionFactory, day_arrivals
from chargeguard.sim.timefmt import SECONDS_TABLE, epoch, format_ts, minute_prefix

log = structlog.get_logger(__name__)

SLICE_S = 3600.0
CHUNK_LINES = 4096
LOOKAHEAD_S = 900.0  # no stream starts more than this before its nominal start
DAY_S = 86400.0
DEFAULT_START = datetime(2026, 3, 2, tzinfo=UTC)

Starter = Callable[[], list[tuple[Station | None, Iterator[Emit]]]]


@dataclass(frozen=True, slots=True)
class SimConfig:
    stations: int = 10
    days: float = 1.0
    seed: int = 0
    ocpp: str = "mix"  # "1.6", "2.0.1" or "mix"
    start: datetime = DEFAULT_START
    sample_interval_s: float = 300.0
    drivers_per_station: float = 12.0
    incident_rate: float = 0.05  # incidents per station per day (every variant at least once when enabled)
    incidents: tuple[IncidentSpec, ...] = ()
    reboot_rate: float = 0.01  # per station-day
    firmware_rate: float = 0.004
    offline_rate: float = 0.02
    clock_rate: float = 0.02
    config_rate: float = 0.01


@dataclass(slots=True)
class SimStats:
    lines: int = 0
    frames: int = 0
    sessions: int = 0
    incidents: int = 0
    skipped: int = 0  # scheduled incidents that found no room (stations idle and free) in the network
    truths: list[Truth] = field(default_factory=list)


class Simulation:
    """One seeded run; ``run(write)`` calls ``write(t, line)`` for every capture line in transport order."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self.network: Network = build_network(
            random.Random(f"network-{config.seed}"), config.stations, config.ocpp, config.drivers_per_station
        )
        self.ids = MessageIds(config.seed, style="mixed")
        self.factory = SessionFactory(self.network, self.rng, self.ids, config.sample_interval_s)
        self.scene = Scene(self.network, random.Random(f"incidents-{config.seed}"), self.ids, self.factory)
        self.start = epoch(config.start)
        self.end = self.start + config.days * DAY_S
        self._heap: list[tuple[float, int, Line, Iterator[Emit]]] = []
        self._starters: list[tuple[float, int, Starter]] = []
        self._seq = 0
        self._windows_until = self.start  # offline windows are planned up to here
        self.stats = SimStats()

    # ------------------------------------------------------------------------------------------ scheduling

    def _push_stream(self, station: Station | None, stream: Iterator[Emit]) -> None:
        if station is not None:
            stream = st.through_transport(station, stream)
        item = next(stream, None)
        if item is not None:
            self._seq += 1
            heapq.heappush(self._heap, (item[0], self._seq, item[1], stream))

    def _schedule(self, t: float, starter: Starter) -> None:
        self._seq += 1
        heapq.heappush(self._starters, (t, self._seq, starter))

    def _plan_day(self, day_start: float) -> None:
        cfg, rng = self.config, self.rng
        self._plan_offline(day_start + DAY_S)
        for t, index in day_arrivals(self.network, day_start, rng):
            if t < self.end:
                self._schedule(t, self._arrival(index, t))
        for station in self.network.stations:
            station.prune(day_start)
            for rate, make in (
                (cfg.reboot_rate, self._reboot),
                (cfg.firmware_rate, self._firmware),
                (cfg.config_rate, self._configure),
            ):
                if rng.random() < rate:
                    t = day_start + rng.random() * DAY_S
                    if t < self.end:
                        self._schedule(t, make(station, t))
            if rng.random() < cfg.clock_rate:
                t = day_start + rng.random() * DAY_S
                offset = rng.choice((-1, 1)) * (3.0 + rng.random() * 27.0)
                station.clock_shifts.append((t, t + 3600.0 * (1 + rng.random() * 11), offset))

    def _plan_incidents(self) -> None:
        specs = self.config.incidents
        if not specs:
            return
        rng = self.scene.rng
        station_days = self.config.stations * self.config.days
        count = max(len(specs), round(self.config.incident_rate * station_days))
        order = list(specs)
        rng.shuffle(order)
        first, last = self.start + 2 * 3600.0, max(self.start + 2 * 3600.0, self.end - 4 * 3600.0)
        for i in range(count):
            spec = order[i % len(order)]
            t = first + rng.random() * (last - first)
            self._schedule(t, self._incident(spec, t, attempts=6))

    # ------------------------------------------------------------------------------------------ starters

    def _arrival(self, index: int, t: float) -> Starter:
        def start() -> list[tuple[Station | None, Iterator[Emit]]]:
            found = self.factory.arrive(self.network.drivers[index], t)
            if found is None:
                return []
            self.stats.sessions += 1
            station, stream, end = found
            # The transport wrapper costs a generator layer per frame: only streams that may meet an offline
            # window need it (windows are planned a day ahead, so the ones that matter are known by now).
            last = end + STREAM_TAIL_S
            if last > self._windows_until or any(w[0] < last and w[1] > t - 600 for w in station.offline):
                return [(station, stream)]
            return [(None, stream)]

        return start

    def _idle(self, station: Station, t: float, until: float) -> bool:
        if station.busy_until > t or any(c.busy_until > t for c in station.connectors):
            return False
        if (
            self.scene.tainted.get(station.index, 0.0) > t
            or station.offline_at(t)
            or station.offline_at(until)
        ):
            return False
        station.busy_until = until
        for connector in station.connectors:
            connector.busy_until = until
        return True

    def _plan_offline(self, day_start: float) -> None:
        """Offline periods of every station for the day starting at ``day_start`` (planned a day early)."""
        rng = self.rng
        for station in self.network.stations:
            if rng.random() >= self.config.offline_rate:
                continue
            t = day_start + rng.random() * DAY_S
            length = 600.0 + rng.random() * 4 * 3600.0
            if t >= self.end or any(w[0] < t + length + 600 and w[1] > t - 600 for w in station.offline):
                continue
            station.offline.append((t, t + length))
            self._schedule(t, self._offline(station, t, length))
        self._windows_until = day_start + DAY_S

    def _offline(self, station: Station, t: float, length: float) -> Starter:
        def start() -> list[tuple[Station | None, Iterator[Emit]]]:
            lines = [
                (t, st.connection_line(station, "disconnect")),
                (t + length, st.connection_line(station, "connect")),
            ]
            return [(None, iter(lines))]

        return start

    def _reboot(self, station: Station, t: float) -> Starter:
        def start() -> list[tuple[Station | None, Iterator[Emit]]]:
            down = 30.0 + self.rng.random() * 150.0
            if not self._idle(station, t, t + down + 120.0):
                return []
            station.offline.append((t + 1.0, t + 2.0 + down))
            remote = self.rng.random() < 0.7
            return [
                (station, iter(st.reboot(station, t, down, rng=self.rng, ids=self.ids, remote_reset=remote)))
            ]

        return start

    def _firmware(self, station: Station, t: float) -> Starter:
        def start() -> list[tuple[Station | None, Iterator[Emit]]]:
            if (
                station.firmware_pinned
                or station.firmware_index + 1 >= len(station.hardware.firmware)
                or not self._idle(station, t, t + 1800.0)
            ):
                return []
            fail = self.rng.random() < 0.1
            lines = st.firmware_update(station, t, rng=self.rng, ids=self.ids, fail=fail)
            disconnect = next((x for x, line in lines if line.get("event") == "disconnect"), None)
            connect = next((x for x, line in lines if line.get("event") == "connect"), None)
            if disconnect is not None and connect is not None:
                station.offline.append((disconnect + 0.5, connect))
            return [(station, iter(lines))]

        return start

    def _configure(self, station: Station, t: float) -> Starter:
        def start() -> list[tuple[Station | None, Iterator[Emit]]]:
            key, value = self.rng.choice(
                (
                    ("HeartbeatInterval", str(int(station.heartbeat_s))),
                    ("MeterValueSampleInterval", "300"),
                    ("ConnectionTimeOut", "120"),
                )
            )
            component = "SampledDataCtrlr" if key == "MeterValueSampleInterval" else "OCPPCommCtrlr"
            variable = {
                "MeterValueSampleInterval": "TxUpdatedInterval",
                "ConnectionTimeOut": "EVConnectionTimeOut",
            }
            if key == "ConnectionTimeOut":
                component = "TxCtrlr"
            lines = st.configure(
                station,
                t,
                key,
                value,
                rng=self.rng,
                ids=self.ids,
                component=component,
                variable=variable.get(key, key),
            )
            return [(station, iter(lines))]

        return start

    def _incident(self, spec: IncidentSpec, t: float, attempts: int) -> Starter:
        def start() -> list[tuple[Station | None, Iterator[Emit]]]:
            self.scene.kind = spec.kind
            injection: Injection | None = spec.build(self.scene, t)
            if injection is None:
                if attempts > 1 and t + 3 * 3600.0 < self.end - 4 * 3600.0:
                    self._schedule(t + 3600.0, self._incident(spec, t + 3600.0, attempts - 1))
                else:
                    self.stats.skipped += 1
                    log.debug("sim.incident.skipped", kind=spec.kind, variant=spec.variant)
                return []
            truth = injection.truth
            truth.variant = spec.variant
            truth.subtle = truth.subtle or spec.subtle
            truth.start, truth.end = float("inf"), float("-inf")  # set from what is actually written
            self.stats.truths.append(truth)
            completing = injection.completing
            return [
                (
                    None,
                    _spanning(
                        truth, stream if owner is None else st.through_transport(owner, stream), completing
                    ),
                )
                for owner, stream in injection.streams
            ]

        return start

    # ------------------------------------------------------------------------------------------ the loop

    def run(
        self, write: Callable[[float, Line], None], progress: Callable[[float], None] | None = None
    ) -> SimStats:
        """Call ``write(t, line)`` for every capture line in transport order (``line["ts"]`` already filled)."""
        return self._run(None, write, progress)

    def run_bytes(
        self, sink: Callable[[list[bytes]], None], progress: Callable[[float], None] | None = None
    ) -> SimStats:
        """Hand ``sink`` the capture as serialised JSON Lines (newline-terminated), in transport order, in
        chunks of at most ``CHUNK_LINES``; the list is reused once ``sink`` returns."""
        return self._run(sink, None, progress)

    def _run(
        self,
        sink: Callable[[list[bytes]], None] | None,
        write: Callable[[float, Line], None] | None,
        progress: Callable[[float], None] | None,
    ) -> SimStats:
        for station in self.network.stations:
            t = self.start + self.rng.random() * 120.0
            self._push_stream(None, iter(st.boot(station, t, rng=self.rng, ids=self.ids)))
            self._push_stream(None, st.heartbeats(station, t + 5.0, self.end, rng=self.rng, ids=self.ids))
        self._plan_offline(self.start)
        self._plan_incidents()
        planned_until = self.start
        heap, starters = self._heap, self._starters
        stats = self.stats
        heapreplace, heappop = heapq.heapreplace, heapq.heappop
        seconds = SECONDS_TABLE
        chunk: list[bytes] = []
        append = chunk.append
        dumps, option = orjson.dumps, orjson.OPT_APPEND_NEWLINE
        minute_now, prefix = -1, ""
        lines = connections = 0
        t_slice = self.start
        while t_slice < self.end or heap:
            horizon = t_slice + SLICE_S + LOOKAHEAD_S
            while planned_until < min(horizon, self.end):
                self._plan_day(planned_until)
                planned_until += DAY_S
            while starters and starters[0][0] < horizon:
                _, _, starter = heapq.heappop(starters)
                for owner, stream in starter():
                    self._push_stream(owner, stream)
            until = t_slice + SLICE_S
            # Merge: the stream at the root writes its lines for as long as they come before every other
            # stream's next line (strictly: ties go to the line already waiting, as a push would order them).
            while heap and heap[0][0] < until:
                t, _, line, stream = heap[0]
                while True:
                    if t >= 0.0:
                        minute, rest = divmod(int(t * 1000.0 + 0.5), 60_000)
                        if minute != minute_now:
                            minute_now, prefix = minute, minute_prefix(minute)
                        line["ts"] = prefix + seconds[rest]
                    else:
                        line["ts"] = format_ts(t)
                    if "frame" not in line:
                        connections += 1
                    if write is None:
                        append(dumps(line, option=option))
                    else:
                        lines += 1
                        write(t, line)
                    item = next(stream, None)
                    if item is None:
                        heappop(heap)
                        break
                    t, line = item
                    size = len(heap)
                    if t < until and (size < 2 or t < heap[1][0]) and (size < 3 or t < heap[2][0]):
                        continue
                    self._seq += 1
                    heapreplace(heap, (t, self._seq, line, stream))
                    break
                if len(chunk) >= CHUNK_LINES and sink is not None:
                    lines += len(chunk)
                    sink(chunk)
                    chunk.clear()
            t_slice = until
            if progress is not None:
                progress(min(1.0, (t_slice - self.start) / max(1.0, self.end - self.start)))
        if sink is not None:
            lines += len(chunk)
            sink(chunk)
            chunk.clear()
        stats.lines = lines
        stats.frames = lines - connections
        stats.incidents = len(stats.truths)
        return stats


def event_time(t: float, line: Line) -> float:
    """The event time of a line: its payload timestamp when it has a plausible one (the station's clock within
    a few seconds of the transport), else the transport time."""
    frame = line.get("frame")
    if frame is None or frame[0] != 2 or not isinstance(frame[3], dict):
        return t
    payload = frame[3]
    stamp = payload.get("timestamp")
    if stamp is None and payload.get("meterValue"):
        stamp = payload["meterValue"][0].get("timestamp")
    if not isinstance(stamp, str):
        return t
    try:
        moment = datetime.fromisoformat(stamp)
    except ValueError:
        return t
    if moment.tzinfo is None:  # a zone-less (malformed) timestamp says nothing about event time
        return t
    at = moment.timestamp()
    return at if 0.0 <= t - at <= 5.0 else t


def _spanning(truth: Truth, stream: Iterator[Emit], completing: Line | None) -> Iterator[Emit]:
    """``stream`` unchanged, widening the truth's start/end to the transport times of its lines and setting
    ``detectable_at`` from the line that completes the evidence (its time here is its final transport time)."""
    for item in stream:
        t, line = item
        if t < truth.start:
            truth.start = t
        if t > truth.end:
            truth.end = t
        if line is completing:
            truth.detectable_at = event_time(t, line)
        yield item
