"""Duplicate connections (the SaiFlow hijack), lockout and hashing floods on an injectable clock, password
rotation, and a central system that is down, slow or dies mid-transaction; graceful shutdown."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from ocpp.routing import on
from ocpp.v16 import ChargePoint as Cp16
from ocpp.v16 import call as c16
from ocpp.v16 import call_result as r16
from ocpp.v16.enums import Action as Action16
from ocpp.v16.enums import ConfigurationStatus
from websockets.exceptions import ConnectionClosed, InvalidStatus

PW16 = "0123456789abcdef0123456789abcdef01234567"
NEW_PW16 = "fedcba9876543210fedcba9876543210fedcba98"
START16 = {"connectorId": 1, "idTag": "04A2B3C4D5E6F7", "meterStart": 0, "timestamp": "2026-03-01T08:00:00Z"}


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def _status(h: Any, identity: str, **kwargs: Any) -> int:
    try:
        ws = await h.connect(identity, **kwargs)
    except InvalidStatus as refused:
        return (
            int(refused.value.response.status_code)
            if hasattr(refused, "value")
            else refused.response.status_code
        )
    await ws.close()
    return 101


async def _heartbeat(ws: Any, message_id: str) -> list[Any]:
    await ws.send(f'[2,"{message_id}","Heartbeat",{{}}]')
    return json.loads(await asyncio.wait_for(ws.recv(), 2))  # type: ignore[no-any-return]


def test_saiflow_hijack_fails_while_the_real_station_is_alive(harness: Any) -> None:
    async def scenario() -> None:
        async with harness() as h:
            real = await h.connect("CP-1", password=PW16)
            assert (await _heartbeat(real, "r1"))[0] == 3
            # the attacker knows only the identity: refused before the duplicate policy is even consulted
            assert await _status(h, "CP-1") == 401
            assert await _status(h, "CP-1", password="0" * 40) == 401
            # even with stolen credentials, a responsive connection is kept and the newcomer refused
            assert await _status(h, "CP-1", password=PW16) == 409
            assert (await _heartbeat(real, "r2"))[0] == 3
            assert len(h.csms.requests) == 1  # no second upstream leg ever opened
            reasons = [line["detail"]["reason"] for line in h.observer.events("action")]
            assert "old_connection_alive" in reasons
            await real.close()

    asyncio.run(scenario())


def test_unresponsive_old_connection_is_replaced(harness: Any) -> None:
    async def scenario() -> None:
        async with harness() as h:
            old = await h.connect("CP-1", password=PW16)
            await _heartbeat(old, "o1")
            old.transport.pause_reading()  # the old station is gone without a TCP close: pings go unanswered
            new = await h.connect("CP-1", password=PW16)
            assert (await _heartbeat(new, "n1"))[0] == 3
            assert len(h.csms.requests) == 2
            assert h.csms.connections[0].close_code == 1001  # the old CSMS leg was closed
            reasons = [line["detail"]["reason"] for line in h.observer.events("action")]
            assert "old_unresponsive" in reasons
            await new.close()
            old.transport.abort()

    asyncio.run(scenario())


def test_lockout_with_backoff_is_per_address_and_identity(harness: Any) -> None:
    async def scenario() -> None:
        clock = FakeClock()
        async with harness(clock=clock, lockout_after_failures=3, lockout_base_s=30, lockout_max_s=120) as h:
            for _ in range(3):
                assert await _status(h, "CP-1", password="0" * 40) == 401
            assert await _status(h, "CP-1", password=PW16) == 429  # locked, even with the right password
            assert await _status(h, "CP-NOSUB", password=PW16) == 101  # another identity is not affected
            clock.now += 31
            assert await _status(h, "CP-1", password="0" * 40) == 401  # 4th failure: locked for 60 s now
            clock.now += 31
            assert await _status(h, "CP-1", password=PW16) == 429
            clock.now += 30
            assert await _status(h, "CP-1", password=PW16) == 101  # success resets the counter
            assert await _status(h, "CP-1", password="0" * 40) == 401
            assert await _status(h, "CP-1", password=PW16) == 101
            reasons = [line["detail"]["reason"] for line in h.observer.events("auth_failed")]
            assert reasons.count("locked") == 2

    asyncio.run(scenario())


def test_unauthenticated_flood_does_not_burn_cpu_on_hashing(harness: Any) -> None:
    async def scenario() -> None:
        clock = FakeClock()
        async with harness(
            clock=clock, hashes_per_s=2, lockout_after_failures=1000, address_handshake_burst=1000
        ) as h:
            statuses = [await _status(h, "CP-1", password=f"{i:040x}") for i in range(10)]
            assert statuses.count(401) == 2 and statuses.count(503) == 8
            assert h.gateway.authenticator.hash_count == 2
            # verified credentials are cached: a reconnect storm of the real station hashes at most once
            clock.now += 10
            assert [await _status(h, "CP-1", password=PW16) for _ in range(5)] == [101] * 5
            assert h.gateway.authenticator.hash_count == 3

    asyncio.run(scenario())


def test_per_address_handshake_rate_limit(harness: Any) -> None:
    async def scenario() -> None:
        clock = FakeClock()
        async with harness(clock=clock, address_handshakes_per_s=1, address_handshake_burst=3) as h:
            statuses = [await _status(h, "CP-1", password=PW16) for _ in range(5)]
            assert statuses == [101, 101, 101, 429, 429]
            clock.now += 2
            assert await _status(h, "CP-1", password=PW16) == 101

    asyncio.run(scenario())


class Station16(Cp16):
    @on(Action16.change_configuration)
    async def on_change(self, key: str, value: str) -> r16.ChangeConfiguration:
        return r16.ChangeConfiguration(status=ConfigurationStatus.accepted)


def test_password_rotation_by_the_csms_is_learned_and_never_recorded(harness: Any) -> None:
    async def scenario() -> None:
        async with harness() as h:
            ws = await h.connect("CP-1", password=PW16)
            station = Station16("CP-1", ws)
            task = asyncio.create_task(station.start())
            await station.call(c16.Heartbeat())
            csms_point = h.csms.points["CP-1"]
            answer = await csms_point.call(c16.ChangeConfiguration(key="AuthorizationKey", value=NEW_PW16))
            assert answer.status == "Accepted"
            task.cancel()
            await ws.close()
            await asyncio.sleep(0.05)
            assert await _status(h, "CP-1", password=PW16) == 401
            assert await _status(h, "CP-1", password=NEW_PW16) == 101
            assert NEW_PW16 not in json.dumps(h.observer.events("action"))
            learned = [
                line
                for line in h.observer.events("action")
                if line["detail"]["action"].startswith("password")
            ]
            assert [line["detail"]["action"] for line in learned] == ["password_rotation_learned"]

    asyncio.run(scenario())


def test_csms_down_refuses_the_upgrade_with_503(harness: Any) -> None:
    async def scenario() -> None:
        async with harness() as h:
            await h.csms.stop()
            assert await _status(h, "CP-1", password=PW16) == 503
            refused = [line["detail"] for line in h.observer.events("action")]
            assert refused == [{"action": "refused", "reason": "upstream_unavailable"}]

    asyncio.run(scenario())


def test_csms_dying_mid_transaction_closes_the_station_without_answering(harness: Any) -> None:
    async def scenario() -> None:
        async with harness() as h:
            h.csms.delay_s = 5.0
            ws = await h.connect("CP-1", password=PW16)
            await ws.send(json.dumps([2, "s1", "StartTransaction", START16]))
            await asyncio.sleep(0.1)
            h.csms.crash()
            with pytest.raises(ConnectionClosed):
                answer = await asyncio.wait_for(ws.recv(), 2)
                pytest.fail(f"the gateway answered on the CSMS's behalf: {answer!r}")
            assert ws.close_code == 1013
            actions = [line["detail"] for line in h.observer.events("action")]
            assert {"action": "upstream_lost", "close_code": 1013} in actions
            assert not [line for line in h.observer.frames() if line["from"] == "csms"]

    asyncio.run(scenario())


def test_slow_csms_closes_the_station_after_the_call_timeout(harness: Any) -> None:
    async def scenario() -> None:
        async with harness(call_timeout_s=0.3) as h:
            h.csms.delay_s = 3.0
            ws = await h.connect("CP-1", password=PW16)
            await ws.send('[2,"slow","Heartbeat",{}]')
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 2)
            assert ws.close_code == 1013
            actions = [line["detail"] for line in h.observer.events("action")]
            assert {"action": "upstream_timeout", "close_code": 1013} in actions

    asyncio.run(scenario())


def test_graceful_shutdown_drains_in_flight_calls(harness: Any) -> None:
    async def scenario() -> None:
        async with harness() as h:
            h.csms.delay_s = 0.3
            ws = await h.connect("CP-1", password=PW16)
            await ws.send('[2,"inflight","Heartbeat",{}]')
            await asyncio.sleep(0.05)
            stopping = asyncio.create_task(h.gateway.stop())
            answer = json.loads(await asyncio.wait_for(ws.recv(), 2))
            assert answer[:2] == [3, "inflight"]
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 2)
            assert ws.close_code == 1001
            await stopping

    asyncio.run(scenario())


def test_ocpp201_basic_auth_password_rotation_is_learned(harness: Any) -> None:
    new_password = "a-brand-new-password-2026"

    async def scenario() -> None:
        async with harness() as h:
            ws = await h.connect(
                "CP-2", password="correct-horse-battery-staple-1", subprotocols=["ocpp2.0.1"], tls=True
            )
            await _heartbeat(ws, "h1")
            entry = {"component": {"name": "SecurityCtrlr"}, "variable": {"name": "BasicAuthPassword"}}
            set_variables = {"setVariableData": [{**entry, "attributeValue": new_password}]}
            await h.csms.connections[0].send(json.dumps([2, "sv1", "SetVariables", set_variables]))
            call = json.loads(await asyncio.wait_for(ws.recv(), 2))
            assert call[:3] == [2, "sv1", "SetVariables"]
            result = {"setVariableResult": [{"attributeStatus": "Accepted", "component": {"name": "SecurityCtrlr"},
                                             "variable": {"name": "BasicAuthPassword"}}]}  # fmt: skip
            await ws.send(json.dumps([3, "sv1", result]))
            await asyncio.sleep(0.1)
            await ws.close()
            assert await _status(h, "CP-2", password="correct-horse-battery-staple-1", tls=True) == 401
            assert (
                await _status(h, "CP-2", password=new_password, tls=True, subprotocols=["ocpp2.0.1"]) == 101
            )

    asyncio.run(scenario())


def test_csms_refusal_of_a_station_is_mirrored(harness: Any) -> None:
    async def scenario() -> None:
        async with harness() as h:
            h.csms.refuse.add("CP-1")
            assert await _status(h, "CP-1", password=PW16) == 404
            refused = [line["detail"] for line in h.observer.events("action")]
            assert refused == [{"action": "refused", "reason": "upstream_refused", "status": 404}]
            assert h.gateway.sessions == {} and not h.gateway._claimed

    asyncio.run(scenario())
