"""Benign charging demand: each day's driver arrivals, and turning an arrival into a session on a free connector.

Benign traffic is kept clean by construction: a driver's card is used by that driver only, never in two places
at once (a driver is busy until 15 minutes after a session ends) and only in their home city (stations of a city
lie within its radius, so consecutive sessions never imply an implausible speed); a connector carries one
session at a time and its register only grows; energies never exceed what the connector can deliver in the
session's duration; rejected cards are rare and unknown ones (never on a local list).
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

from chargeguard.sim.distributions import fitted
from chargeguard.sim.exchange import Emit, MessageIds, SessionPlan, call, session_emits
from chargeguard.sim.network import Connector, Driver, Network, Station, new_token
from chargeguard.sim.timefmt import from_epoch

DRIVER_REST_S = 900.0
STREAM_TAIL_S = 900.0  # unplugging, a retried stop: a session's frames end this long after its end at most
CONNECTOR_REST_S = 300.0
MAX_SESSION_KWH = 110.0


def poisson(rng: random.Random, lam: float) -> int:
    """Knuth's method: fine for the small daily rates of drivers."""
    limit = math.exp(-lam)
    k, p = 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


def day_arrivals(network: Network, day_start: float, rng: random.Random) -> list[tuple[float, int]]:
    """(arrival time, driver index) for one day, from each driver's rate and habitual hour."""
    weekend = from_epoch(day_start).weekday() >= 5
    models = fitted().classes
    arrivals: list[tuple[float, int]] = []
    for index, driver in enumerate(network.drivers):
        count = poisson(rng, driver.rate_per_day * (0.8 if weekend else 1.0))
        for _ in range(count):
            if rng.random() < 0.6:
                hour = (driver.habit_hour + round(rng.gauss(0.0, 1.5))) % 24
            else:
                hour = models["dc50" if driver.prefers_dc else "ac7"].hour(rng, weekend)
            arrivals.append((day_start + hour * 3600.0 + rng.random() * 3600.0, index))
    arrivals.sort()
    return arrivals


@dataclass(slots=True)
class SessionFactory:
    """Allocates transaction ids and turns arrivals into session streams."""

    network: Network
    rng: random.Random
    ids: MessageIds
    sample_interval_s: float
    next_tx16: int = 0

    def __post_init__(self) -> None:
        self.next_tx16 = self.rng.randrange(10_000, 900_000)

    def new_transaction_id(self, station: Station) -> str:
        if station.ocpp == "1.6":
            self.next_tx16 += 1 + (self.rng.random() < 0.1)
            return str(self.next_tx16)
        h = f"{self.rng.getrandbits(128):032x}"
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

    def free_connector(self, station: Station, t: float, prefer_dc: bool) -> Connector | None:
        if station.busy_until > t - 60.0 or station.offline_at(t - 60.0) is not None:
            return None
        free = [c for c in station.connectors if c.busy_until < t - 60.0]
        if not free:
            return None
        preferred = [c for c in free if (c.kind == "DC") == prefer_dc]
        return self.rng.choice(preferred or free)

    def arrive(self, driver: Driver, t: float) -> tuple[Station, Iterator[Emit], float] | None:
        """The station, stream and end time of the session a driver arriving at ``t`` starts; None if nothing
        is free. The stream's frames all fall before the end time plus ``STREAM_TAIL_S``."""
        rng = self.rng
        if driver.busy_until > t:
            return None
        if rng.random() < 0.004:
            station = self.network.stations[rng.choice(driver.preferred)]
            if station.busy_until > t:
                return None
            return station, self.unknown_card(station, t), t
        first = driver.preferred[0] if rng.random() < driver.top_share else rng.choice(driver.preferred)
        for index in (first, rng.choice(driver.preferred)):
            station = self.network.stations[index]
            connector = self.free_connector(station, t, driver.prefers_dc)
            if connector is not None:
                break
        else:
            return None
        plan = self.plan(station, connector, driver.token, t)
        driver.busy_until = t + (plan.end - plan.start).total_seconds() + DRIVER_REST_S
        stream = session_emits(plan, rng=rng, ids=self.ids, clock_offset_s=station.clock_at(t))
        if rng.random() < 0.05:
            stream = self.remote_started(station, connector, driver.token, t, stream)
        if rng.random() < 0.01:
            stream = retried_stop(stream, station, rng, self.ids)
        return station, stream, plan.end.timestamp()

    def plan(
        self,
        station: Station,
        connector: Connector,
        token: str | None,
        t: float,
        *,
        energy_kwh: float | None = None,
    ) -> SessionPlan:
        """A benign session plan on ``connector`` from ``t``; claims the connector and advances its register."""
        rng = self.rng
        model = fitted().classes[connector.session_class]
        energy, minutes = model.draw(rng)
        if rng.random() < model.zero_energy_share:
            energy = 0.0
        if energy_kwh is not None:
            energy = energy_kwh
        hours = minutes / 60.0
        # What the connector can deliver in the time, leaving room for ramp, taper and the car's acceptance.
        cap = (0.75 if connector.kind == "DC" else 0.85) * connector.max_kw * hours
        if energy > cap:
            energy = cap * (0.6 + 0.3 * rng.random())
        energy_wh = round(min(energy, MAX_SESSION_KWH) * 1000.0)
        start = from_epoch(t)
        plan = SessionPlan(
            station=station.station_id,
            ocpp=station.ocpp,
            connector_id=connector.connector_id,
            evse_id=connector.evse_id,
            token=token,
            transaction_id=self.new_transaction_id(station),
            start=start,
            end=start + timedelta(seconds=round(minutes * 60.0)),
            energy_wh=float(energy_wh),
            meter_start_wh=connector.register_wh,
            sample_interval_s=self.sample_interval_s,
            stop_reason=rng.choice(("Local", "Local", "EVDisconnected", "EVDisconnected", "Remote")),
            max_power_w=connector.max_kw * 1000.0,
        )
        connector.register_wh += energy_wh
        connector.busy_until = t + minutes * 60.0 + CONNECTOR_REST_S
        return plan

    def unknown_card(self, station: Station, t: float) -> Iterator[Emit]:
        """A card the network does not know, refused at Authorize (no energy delivered)."""
        connector = station.connectors[0]
        start = from_epoch(t)
        plan = SessionPlan(
            station=station.station_id,
            ocpp=station.ocpp,
            connector_id=connector.connector_id,
            evse_id=connector.evse_id,
            token=new_token(self.rng),
            transaction_id="0",
            start=start,
            end=start,
            energy_wh=0.0,
            meter_start_wh=connector.register_wh,
            auth_status="Invalid",
        )
        return session_emits(plan, rng=self.rng, ids=self.ids, clock_offset_s=station.clock_at(t))

    def remote_started(
        self, station: Station, connector: Connector, token: str, t: float, stream: Iterator[Emit]
    ) -> Iterator[Emit]:
        """A session started from the operator's app: the csms's remote start precedes the station's traffic."""
        out: list[Emit] = []
        sid = station.station_id
        t0 = t - 75.0
        if station.ocpp == "1.6":
            payload: dict[str, object] = {"connectorId": connector.connector_id, "idTag": token}
            call(
                out,
                t0,
                sid,
                "1.6",
                "RemoteStartTransaction",
                payload,
                {"status": "Accepted"},
                rng=self.rng,
                ids=self.ids,
                sender="csms",
            )
        else:
            payload = {
                "idToken": {"idToken": token, "type": "ISO14443"},
                "remoteStartId": self.rng.randrange(1, 10**6),
                "evseId": connector.evse_id,
            }
            call(
                out,
                t0,
                sid,
                "2.0.1",
                "RequestStartTransaction",
                payload,
                {"status": "Accepted"},
                rng=self.rng,
                ids=self.ids,
                sender="csms",
            )
        yield from out
        yield from stream


def retried_stop(
    stream: Iterator[Emit], station: Station, rng: random.Random, ids: MessageIds
) -> Iterator[Emit]:
    """The central system does not answer the stop message in time; the station sends it again, later.

    The retry carries a new message id (the first attempt's id is never reused) and the same payload.
    """
    swallow: str | None = None
    shift = 0.0
    for t, line in stream:
        frame = line.get("frame")
        if (
            swallow is None
            and frame is not None
            and frame[0] == 2
            and (
                frame[2] == "StopTransaction"
                or (frame[2] == "TransactionEvent" and frame[3]["eventType"] == "Ended")
            )
        ):
            swallow = frame[1]
            yield t, line
            retry_at = t + 30.0 + rng.random() * 30.0
            out: list[Emit] = []
            call(
                out,
                retry_at,
                station.station_id,
                station.ocpp,
                frame[2],
                dict(frame[3]),
                {},
                rng=rng,
                ids=ids,
            )
            if frame[2] == "StopTransaction":
                out[1][1]["frame"][2] = {"idTagInfo": {"status": "Accepted"}}
            yield from out
            shift = out[-1][0] - t
            continue
        if frame is not None and frame[0] == 3 and frame[1] == swallow:
            continue
        yield t + shift, line
