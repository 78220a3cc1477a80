"""Live detection and enforce mode with real OCPP 1.6 stations and a real central system through the gateway."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

from ocpp.v16 import ChargePoint as Cp16
from ocpp.v16 import call as c16

from chargeguard.events import Alert, Severity
from chargeguard.inventory import parse_inventory
from chargeguard.live import LiveDetection
from chargeguard.settings import Settings
from chargeguard.sources.ocpp.gateway.enforce import BlockTokensUnderAlert
from chargeguard.vault.pseudonyms import Pseudonymiser

PW16 = "0123456789abcdef0123456789abcdef01234567"
CLONED = "04C10AED0CA8D1"
OTHER = "04A2B3C4D5E6F7"
PSEUDO = Pseudonymiser({1: bytes(range(32))}, 1)
# the two stations are 60 km apart: one card charging at both at once is a clone, wherever the site tolerance sits
INVENTORY = parse_inventory(
    [
        {"station": "CP-1", "latitude": "56.46", "longitude": "-2.97", "max_kw": "22"},
        {"station": "CP-NOSUB", "latitude": "55.95", "longitude": "-3.19", "max_kw": "22"},
    ],
    name="test",
)


def _live(alerts: list[Alert], *, enforce: bool) -> LiveDetection:
    return LiveDetection(
        Settings(lateness_s=0),
        PSEUDO,
        inventory=INVENTORY,
        sinks=[alerts.append],
        enforce_kinds={"token.concurrent_use"} if enforce else (),
        enforce_severity=Severity.HIGH,
    )


async def _start(h: Any, identity: str, **connect: Any) -> tuple[Cp16, asyncio.Task[None], Any]:
    ws = await h.connect(identity, password=PW16, **connect)
    cp = Cp16(identity, ws)
    task = asyncio.create_task(cp.start())
    await cp.call(c16.BootNotification(charge_point_model="M", charge_point_vendor="V"))
    return cp, task, ws


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _scenario(
    harness: Any, live: LiveDetection, rewriter: Any
) -> tuple[dict[str, str], list[dict[str, Any]]]:
    statuses: dict[str, str] = {}

    async def run() -> list[dict[str, Any]]:
        async with harness(observers=(live,), rewriter=rewriter) as h:
            cp1, t1, ws1 = await _start(h, "CP-1")
            first = await cp1.call(
                c16.StartTransaction(connector_id=1, id_tag=CLONED, meter_start=0, timestamp=_now())
            )
            statuses["first start"] = first.id_tag_info["status"]
            cp2, t2, ws2 = await _start(h, "CP-NOSUB", subprotocols=())
            second = await cp2.call(
                c16.StartTransaction(connector_id=1, id_tag=CLONED, meter_start=0, timestamp=_now())
            )
            statuses["second start"] = second.id_tag_info["status"]
            statuses["authorize clone"] = (await cp2.call(c16.Authorize(id_tag=CLONED))).id_tag_info["status"]
            statuses["authorize other"] = (await cp2.call(c16.Authorize(id_tag=OTHER))).id_tag_info["status"]
            for task, ws in ((t1, ws1), (t2, ws2)):
                task.cancel()
                await ws.close()
            return list(h.observer.lines)

    lines = asyncio.run(run())
    return statuses, lines


def test_monitor_mode_raises_the_alert_live_and_changes_nothing(harness: Any) -> None:
    alerts: list[Alert] = []
    statuses, lines = _scenario(harness, _live(alerts, enforce=False), None)
    assert set(statuses.values()) == {"Accepted"}
    opened = [a for a in alerts if a.kind == "token.concurrent_use" and a.status == "open"]
    assert opened and opened[0].token_ref == PSEUDO(CLONED)
    assert set(opened[0].stations) == {"CP-1", "CP-NOSUB"}
    assert not [line for line in lines if line.get("detail", {}).get("action") == "rewritten"]


def test_enforce_mode_blocks_the_clone_and_records_the_rewrite(harness: Any) -> None:
    alerts: list[Alert] = []
    live = _live(alerts, enforce=True)
    rewriter = BlockTokensUnderAlert(live.token_verdict)
    statuses, lines = _scenario(harness, live, rewriter)
    assert statuses == {
        "first start": "Accepted",
        "second start": "Blocked",
        "authorize clone": "Blocked",
        "authorize other": "Accepted",
    }
    rewrites = [line for line in lines if line.get("detail", {}).get("action") == "rewritten"]
    assert len(rewrites) == 2 and rewriter.rewrites == 2
    detail = rewrites[0]["detail"]
    assert detail["call"] == "StartTransaction" and detail["kind"] == "token.concurrent_use"
    assert detail["token_ref"] == PSEUDO(CLONED) and CLONED not in repr(rewrites)
