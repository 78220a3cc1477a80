"""Every alert kind the gateway can see is raised live: real OCPP 1.6 stations (the ``ocpp`` library over real
sockets) and a real central system, through the gateway, with live detection as its observer.

command.* come from what the central system sends, station.* from connections, boots, configuration and security
events, ocpp.* from the protocol itself, token.* from authorisation answers and transactions, meter.* and
session.* from the transactions' registers and times. The gateway's wall
clock is injected so that minutes of event time pass in milliseconds. ``test_every_visible_kind_has_a_scenario``
keeps the list complete when detectors are added.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from ocpp.routing import on
from ocpp.v16 import ChargePoint as Cp16
from ocpp.v16 import call as c16
from ocpp.v16 import call_result as r16
from ocpp.v16.enums import Action as Action16
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import InvalidStatus

from chargeguard.detectors.registry import all_kinds
from chargeguard.events import Alert
from chargeguard.inventory import parse_inventory
from chargeguard.live import LiveDetection
from chargeguard.settings import Settings
from chargeguard.vault.pseudonyms import Pseudonymiser

PW16 = "0123456789abcdef0123456789abcdef01234567"
TOKEN = "04C10AED0CA8D1"
PSEUDO = Pseudonymiser({1: bytes(range(32))}, 1)
STATIONS = [f"LIVE-{i}" for i in range(10)]
# LIVE-0 Dundee, LIVE-1 Edinburgh (60 km), LIVE-2 London (600 km)
PLACES = {"LIVE-0": ("56.46", "-2.97"), "LIVE-1": ("55.95", "-3.19"), "LIVE-2": ("51.50", "-0.12")}
INVENTORY = parse_inventory(
    [{"station": s, "latitude": lat, "longitude": lon, "max_kw": "22"} for s, (lat, lon) in PLACES.items()],
    name="live",
)
GATEWAY_FAMILIES = ("command.", "station.", "ocpp.", "token.", "meter.", "session.")


class WallClock:
    def __init__(self) -> None:
        self.now = dt.datetime.now(dt.UTC).replace(microsecond=0)

    def __call__(self) -> dt.datetime:
        return self.now

    def ts(self, delta_s: float = 0.0) -> str:
        return (self.now + dt.timedelta(seconds=delta_s)).strftime("%Y-%m-%dT%H:%M:%SZ")


class Station16(Cp16):
    """A 1.6 station that accepts what the central system asks."""

    @on(Action16.remote_start_transaction)
    async def on_remote_start(self, **kwargs: Any) -> r16.RemoteStartTransaction:
        return r16.RemoteStartTransaction(status="Accepted")

    @on(Action16.change_availability)
    async def on_availability(self, **kwargs: Any) -> r16.ChangeAvailability:
        return r16.ChangeAvailability(status="Accepted")

    @on(Action16.send_local_list)
    async def on_local_list(self, **kwargs: Any) -> r16.SendLocalList:
        return r16.SendLocalList(status="Accepted")

    @on(Action16.update_firmware)
    async def on_update_firmware(self, **kwargs: Any) -> r16.UpdateFirmware:
        return r16.UpdateFirmware()

    @on(Action16.change_configuration)
    async def on_change(self, **kwargs: Any) -> r16.ChangeConfiguration:
        return r16.ChangeConfiguration(status="Accepted")


@dataclass
class Live:
    """One scenario's world: the harness, the injected wall clock and the stations it opened."""

    h: Any
    wall: WallClock
    opened: list[tuple[asyncio.Task[None], ClientConnection]] = field(default_factory=list)

    async def station(self, identity: str) -> Station16:
        ws = await self.h.connect(identity, password=PW16)
        station = Station16(identity, ws)
        self.opened.append((asyncio.create_task(station.start()), ws))
        return station

    def csms(self, identity: str) -> Any:
        return self.h.csms.points[identity]

    async def boot(self, station: Station16, **fields: str) -> None:
        await station.call(c16.BootNotification(charge_point_vendor="V", charge_point_model="M", **fields))

    async def start(self, station: Station16, token: str, connector: int = 1, meter: int = 0) -> Any:
        return await station.call(
            c16.StartTransaction(
                connector_id=connector, id_tag=token, meter_start=meter, timestamp=self.wall.ts()
            )
        )

    async def close(self) -> None:
        for task, ws in self.opened:
            task.cancel()
            await ws.close()


Scenario = Callable[[Live], Awaitable[None]]
SCENARIOS: dict[str, Scenario] = {}


def scenario(kind: str) -> Callable[[Scenario], Scenario]:
    def register(function: Scenario) -> Scenario:
        SCENARIOS[kind] = function
        return function

    return register


# ---- command.*: what the central system sends ------------------------------------------------------------------
@scenario("command.burst")
async def _remote_start_burst(live: Live) -> None:
    await live.station("LIVE-0")
    for i in range(6):
        await live.csms("LIVE-0").call(c16.RemoteStartTransaction(id_tag=f"04A2B3C4D5E6F{i}", connector_id=1))


@scenario("command.fleet_synchronised")
async def _fleet_availability(live: Live) -> None:
    for identity in STATIONS:
        await live.station(identity)
    for identity in STATIONS:
        await live.csms(identity).call(c16.ChangeAvailability(connector_id=0, type="Inoperative"))


@scenario("command.stale_local_list")
async def _stale_local_list(live: Live) -> None:
    station = await live.station("LIVE-0")
    live.h.csms.blocked.add(TOKEN)
    assert (await station.call(c16.Authorize(id_tag=TOKEN))).id_tag_info["status"] == "Blocked"
    entry = {"idTag": TOKEN, "idTagInfo": {"status": "Accepted"}}
    await live.csms("LIVE-0").call(
        c16.SendLocalList(list_version=2, update_type="Full", local_authorization_list=[entry])
    )


@scenario("command.untrusted_url")
async def _firmware_from_metadata_address(live: Live) -> None:
    await live.station("LIVE-0")
    await live.csms("LIVE-0").call(
        c16.UpdateFirmware(location="ftp://169.254.169.254/fw.bin", retrieve_date=live.wall.ts())
    )


# ---- ocpp.*: the protocol itself ------------------------------------------------------------------------------
@scenario("ocpp.flood")
async def _boot_loop(live: Live) -> None:
    station = await live.station("LIVE-0")
    for _ in range(6):
        await live.boot(station)


@scenario("ocpp.malformed")
async def _path_like_action(live: Live) -> None:
    await live.station("LIVE-0")
    _, ws = live.opened[-1]
    await ws.send(
        '[2,"m-1","../../v201/schemas/BootNotification",{}]'
    )  # answered NotImplemented by the gateway
    await asyncio.sleep(0.05)


# ---- station.*: connections, boots, configuration, security events ----------------------------------------------
@scenario("station.auth_failure")
async def _password_guessing(live: Live) -> None:
    for _ in range(5):
        with pytest.raises(InvalidStatus):
            await live.h.connect("LIVE-0", password="0" * 40)


@scenario("station.clock_skew")
async def _clock_an_hour_ahead(live: Live) -> None:
    station = await live.station("LIVE-0")
    live.wall.now += dt.timedelta(seconds=200)  # past the replay burst after the connect
    for _ in range(3):
        await station.call(
            c16.StatusNotification(
                connector_id=1, error_code="NoError", status="Available", timestamp=live.wall.ts(3600)
            )
        )
        live.wall.now += dt.timedelta(seconds=10)


@scenario("station.duplicate_connection")
async def _second_connection_while_alive(live: Live) -> None:
    station = await live.station("LIVE-0")
    await station.call(c16.Heartbeat())
    with pytest.raises(InvalidStatus) as refused:
        await live.h.connect("LIVE-0", password=PW16)
    assert refused.value.response.status_code == 409


@scenario("station.firmware_downgrade")
async def _firmware_rollback(live: Live) -> None:
    station = await live.station("LIVE-0")
    await live.boot(station, firmware_version="2.4.0")
    await live.boot(station, firmware_version="1.0.0")


@scenario("station.identity_change")
async def _another_device_on_the_identity(live: Live) -> None:
    station = await live.station("LIVE-0")
    await live.boot(station, charge_point_serial_number="SN-0001")
    await live.boot(station, charge_point_serial_number="SN-6666")


@scenario("station.security_downgrade")
async def _offline_unknown_ids_allowed(live: Live) -> None:
    await live.station("LIVE-0")
    await live.csms("LIVE-0").call(c16.ChangeConfiguration(key="AllowOfflineTxForUnknownId", value="true"))


@scenario("station.security_event")
async def _tamper_event(live: Live) -> None:
    station = await live.station("LIVE-0")
    await station.call(
        c16.SecurityEventNotification(
            type="TamperDetectionActivated", timestamp=live.wall.ts(), tech_info=None
        )
    )


# ---- token.*: authorisation answers and transactions ------------------------------------------------------------
@scenario("token.concurrent_use")
async def _one_card_at_two_sites(live: Live) -> None:
    await live.start(await live.station("LIVE-0"), TOKEN)
    await live.start(await live.station("LIVE-1"), TOKEN)


@scenario("token.enumeration")
async def _card_numbers_tried(live: Live) -> None:
    station = await live.station("LIVE-0")
    guesses = [f"04A2B3C4D5E6{i:02d}" for i in range(12)]
    live.h.csms.blocked.update(guesses)
    for guess in guesses:
        await station.call(c16.Authorize(id_tag=guess))


@scenario("token.high_velocity")
async def _six_connectors_in_minutes(live: Live) -> None:
    station = await live.station("LIVE-0")
    for connector in range(1, 7):
        await live.start(station, TOKEN, connector=connector)
        live.wall.now += dt.timedelta(minutes=2)


@scenario("token.impossible_travel")
async def _dundee_then_london(live: Live) -> None:
    dundee = await live.station("LIVE-0")
    started = await live.start(dundee, TOKEN)
    live.wall.now += dt.timedelta(minutes=5)
    await dundee.call(
        c16.StopTransaction(meter_stop=2000, timestamp=live.wall.ts(), transaction_id=started.transaction_id)
    )
    live.wall.now += dt.timedelta(minutes=10)
    await live.start(await live.station("LIVE-2"), TOKEN)


@scenario("token.unauthorized_charging")
async def _charging_on_a_blocked_card(live: Live) -> None:
    station = await live.station("LIVE-0")
    live.h.csms.blocked.add(TOKEN)
    started = await live.start(station, TOKEN, meter=1000)
    assert started.id_tag_info["status"] == "Blocked"
    live.wall.now += dt.timedelta(minutes=30)
    await station.call(
        c16.StopTransaction(meter_stop=9000, timestamp=live.wall.ts(), transaction_id=started.transaction_id)
    )


# ---- meter.* and session.*: what the transactions themselves show ----------------------------------------------
async def _stop(live: Live, station: Station16, started: Any, meter_stop: int) -> None:
    await station.call(
        c16.StopTransaction(
            meter_stop=meter_stop, timestamp=live.wall.ts(), transaction_id=started.transaction_id
        )
    )


def _energy(live: Live, connector: int, transaction_id: int, wh: int) -> c16.MeterValues:
    sample = {"value": str(wh), "measurand": "Energy.Active.Import.Register", "unit": "Wh"}
    return c16.MeterValues(
        connector_id=connector,
        transaction_id=transaction_id,
        meter_value=[{"timestamp": live.wall.ts(), "sampledValue": [sample]}],
    )


@scenario("meter.rollback")
async def _stop_below_start(live: Live) -> None:
    station = await live.station("LIVE-0")
    started = await live.start(station, TOKEN, meter=50_000)
    live.wall.now += dt.timedelta(minutes=20)
    await _stop(live, station, started, 40_000)


@scenario("meter.exceeds_capacity")
async def _more_than_22_kw(live: Live) -> None:
    station = await live.station("LIVE-0")
    started = await live.start(station, TOKEN, meter=0)
    live.wall.now += dt.timedelta(minutes=10)  # 100 kWh in 10 minutes on a 22 kW connector
    await _stop(live, station, started, 100_000)


@scenario("meter.inconsistent")
async def _stop_far_above_the_samples(live: Live) -> None:
    station = await live.station("LIVE-0")
    started = await live.start(station, TOKEN, meter=0)
    for wh in (500, 1000):
        live.wall.now += dt.timedelta(minutes=5)
        await station.call(_energy(live, 1, started.transaction_id, wh))
    live.wall.now += dt.timedelta(minutes=1)
    await _stop(live, station, started, 30_000)


@scenario("session.overlap")
async def _two_transactions_on_one_connector(live: Live) -> None:
    station = await live.station("LIVE-0")
    first = await live.start(station, TOKEN)
    live.wall.now += dt.timedelta(minutes=2)
    await live.start(station, "04A2B3C4D5E6F7")
    live.wall.now += dt.timedelta(minutes=2)
    await station.call(_energy(live, 1, first.transaction_id, 800))


@scenario("session.phantom")
async def _billing_on_an_unavailable_connector(live: Live) -> None:
    station = await live.station("LIVE-0")
    await station.call(
        c16.StatusNotification(
            connector_id=1, error_code="NoError", status="Unavailable", timestamp=live.wall.ts()
        )
    )
    live.wall.now += dt.timedelta(minutes=1)
    started = await live.start(station, TOKEN, meter=0)
    live.wall.now += dt.timedelta(minutes=30)
    await _stop(live, station, started, 5_000)


def test_every_visible_kind_has_a_scenario() -> None:
    """The gateway sees every kind an OCPP connection can show; session.unbilled needs OCPI CDRs (no CDR ever
    reaches the gateway), cdr.* are OCPI-only."""
    visible = {kind for kind in all_kinds() if kind.startswith(GATEWAY_FAMILIES)} - {"session.unbilled"}
    assert visible == set(SCENARIOS)


@pytest.mark.parametrize("kind", sorted(SCENARIOS))
def test_the_kind_is_raised_live_through_the_gateway(
    kind: str, harness: Any, hashes_by_password: Callable[[str], str]
) -> None:
    alerts: list[Alert] = []
    live_detection = LiveDetection(Settings(lateness_s=0), PSEUDO, inventory=INVENTORY, sinks=[alerts.append])
    wall = WallClock()
    stations = {
        identity: {
            "security_profile": 1,
            "allow_plain": True,
            "ocpp": "1.6",
            "password_hash": hashes_by_password(PW16),
        }
        for identity in STATIONS
    }

    async def run() -> None:
        async with harness(stations=stations, observers=(live_detection,), wall_clock=wall) as h:
            live = Live(h, wall)
            try:
                await SCENARIOS[kind](live)
                await asyncio.sleep(0.05)  # the last answers cross the gateway
            finally:
                await live.close()

    asyncio.run(run())
    opened = {a.kind for a in alerts if a.status == "open"}
    assert kind in opened, f"{kind} not raised live; raised: {sorted(opened)}"
    assert TOKEN not in repr(alerts)  # alerts carry pseudonyms only
