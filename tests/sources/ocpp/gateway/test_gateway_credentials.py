"""Learned password rotations survive a gateway restart, as scrypt hashes only, and only once the station accepted."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import stat
from pathlib import Path
from typing import Any

import pytest
from ocpp.routing import on
from ocpp.v16 import ChargePoint as Cp16
from ocpp.v16 import call as c16
from ocpp.v16 import call_result as r16
from ocpp.v16.enums import Action as Action16
from ocpp.v16.enums import ConfigurationStatus
from ocpp.v201 import ChargePoint as Cp201
from ocpp.v201 import call as c201
from ocpp.v201 import call_result as r201
from ocpp.v201.enums import Action as Action201
from websockets.exceptions import InvalidStatus

from chargeguard.errors import ConfigError
from chargeguard.sources.ocpp.gateway.auth import PasswordHash, hash_password
from chargeguard.sources.ocpp.gateway.credentials import LearnedCredentials

PW16 = "0123456789abcdef0123456789abcdef01234567"
PW201 = "correct-horse-battery-staple-1"
NEW_PW16 = "fedcba9876543210fedcba9876543210fedcba98"
NEW_PW201 = "a-brand-new-basic-auth-password"


class Station16(Cp16):
    accept = True

    @on(Action16.change_configuration)
    async def on_change(self, key: str, value: str) -> r16.ChangeConfiguration:
        status = ConfigurationStatus.accepted if self.accept else ConfigurationStatus.rejected
        return r16.ChangeConfiguration(status=status)


class Station201(Cp201):
    @on(Action201.set_variables)
    async def on_set(self, set_variable_data: list[dict[str, Any]]) -> r201.SetVariables:
        results = [
            {"attributeStatus": "Accepted", "component": d["component"], "variable": d["variable"]}
            for d in set_variable_data
        ]
        return r201.SetVariables(set_variable_result=results)


async def _status(h: Any, identity: str, **kwargs: Any) -> int:
    try:
        ws = await h.connect(identity, **kwargs)
    except InvalidStatus as refused:
        return int(refused.response.status_code)
    await ws.close()
    return 101


async def _rotate16(h: Any, new_password: str, *, accept: bool = True) -> str:
    ws = await h.connect("CP-1", password=PW16)
    station = Station16("CP-1", ws)
    station.accept = accept
    task = asyncio.create_task(station.start())
    await station.call(c16.Heartbeat())
    answer = await h.csms.points["CP-1"].call(
        c16.ChangeConfiguration(key="AuthorizationKey", value=new_password)
    )
    task.cancel()
    await ws.close()
    return str(answer.status)


def test_a_1_6_rotation_survives_a_restart_as_a_hash_only(
    harness: Any, central_system: Any, tmp_path: Path
) -> None:
    store = tmp_path / "state" / "learned.json"

    async def scenario() -> None:
        csms = central_system()
        await csms.start()
        try:
            async with harness(csms=csms, top={"learned_credentials": str(store)}) as h:
                assert await _rotate16(h, NEW_PW16) == "Accepted"
            # a new gateway process: only the file carries what was learned
            async with harness(csms=csms, top={"learned_credentials": str(store)}) as h:
                assert await _status(h, "CP-1", password=NEW_PW16) == 101
                assert await _status(h, "CP-1", password=PW16) == 401
                assert h.gateway.authenticator.hash_count == 2
        finally:
            await csms.stop()

    asyncio.run(scenario())
    text = store.read_text(encoding="utf-8")
    assert NEW_PW16 not in text and NEW_PW16.upper() not in text
    assert stat.S_IMODE(store.stat().st_mode) == 0o600
    entry = json.loads(text)["stations"]["CP-1"]
    assert PasswordHash.parse(entry["hash"]).verify(NEW_PW16)
    assert PasswordHash.parse(entry["hash"]).n == 2**14  # the production cost, not the tests' fast hashes


def test_a_rejected_rotation_is_not_persisted(harness: Any, tmp_path: Path) -> None:
    store = tmp_path / "learned.json"

    async def scenario() -> None:
        async with harness(top={"learned_credentials": str(store)}) as h:
            assert await _rotate16(h, NEW_PW16, accept=False) == "Rejected"
            assert await _status(h, "CP-1", password=PW16) == 101

    asyncio.run(scenario())
    assert not store.exists()


def test_a_2_0_1_rotation_survives_a_restart(harness: Any, central_system: Any, tmp_path: Path) -> None:
    store = tmp_path / "learned.json"
    tls = {"tls": True, "subprotocols": ("ocpp2.0.1",)}

    async def scenario() -> None:
        csms = central_system()
        await csms.start()
        try:
            async with harness(csms=csms, top={"learned_credentials": str(store)}) as h:
                ws = await h.connect("CP-2", password=PW201, **tls)
                station = Station201("CP-2", ws)
                task = asyncio.create_task(station.start())
                await station.call(c201.Heartbeat())
                data = [
                    {
                        "attributeValue": NEW_PW201,
                        "component": {"name": "SecurityCtrlr"},
                        "variable": {"name": "BasicAuthPassword"},
                    }
                ]
                answer = await h.csms.points["CP-2"].call(c201.SetVariables(set_variable_data=data))
                assert answer.set_variable_result[0]["attribute_status"] == "Accepted"
                task.cancel()
                await ws.close()
            async with harness(csms=csms, top={"learned_credentials": str(store)}) as h:
                assert await _status(h, "CP-2", password=NEW_PW201, **tls) == 101
                assert await _status(h, "CP-2", password=PW201, **tls) == 401
        finally:
            await csms.stop()

    asyncio.run(scenario())
    assert NEW_PW201 not in store.read_text(encoding="utf-8")


def test_the_configuration_wins_over_an_older_learned_rotation(tmp_path: Path) -> None:
    store = tmp_path / "learned.json"
    learned = LearnedCredentials(store, {"CP-1": "scrypt$configured-hash-1"})
    learned.record("CP-1", hash_password(NEW_PW16, n=2**10), dt.datetime(2026, 3, 1, tzinfo=dt.UTC))
    assert set(LearnedCredentials(store, {"CP-1": "scrypt$configured-hash-1"}).effective()) == {"CP-1"}
    # the operator set a new password by hand after the rotation: the configured one applies
    assert LearnedCredentials(store, {"CP-1": "scrypt$configured-hash-2"}).effective() == {}
    assert LearnedCredentials(store, {"CP-9": "scrypt$configured-hash-1"}).effective() == {}


@pytest.mark.parametrize(
    "content",
    [
        b"not json",
        b"[]",
        b'{"version": 2, "stations": {}}',
        b'{"version": 1, "stations": {"CP-1": {"hash": "x"}}}',
    ],
)
def test_an_unusable_file_is_a_config_error(tmp_path: Path, content: bytes) -> None:
    store = tmp_path / "learned.json"
    store.write_bytes(content)
    with pytest.raises(ConfigError):
        LearnedCredentials(store, {"CP-1": None})
