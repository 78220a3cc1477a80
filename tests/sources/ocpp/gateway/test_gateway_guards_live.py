"""The guard chain on a live connection: oversize and compressed bombs, malformed frames answered with the
CALLERROR code of the version, pipelining, direction rules, floods, schema violations."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed

PW16 = "0123456789abcdef0123456789abcdef01234567"
START16 = {"connectorId": 1, "idTag": "04A2B3C4D5E6F7", "meterStart": 0, "timestamp": "2026-03-01T08:00:00Z"}


def _csms_got(h: Any) -> list[Any]:
    return [frame for _, frame in h.csms.received]


async def _exchange(ws: Any, frame: str) -> list[Any]:
    await ws.send(frame)
    return json.loads(await asyncio.wait_for(ws.recv(), 2))  # type: ignore[no-any-return]


def test_oversize_frame_closes_1009_and_never_reaches_the_csms(harness: Any) -> None:
    async def scenario() -> None:
        async with harness(max_frame_bytes=4096) as h:
            ws = await h.connect("CP-1", password=PW16, max_size=None)
            await ws.send(json.dumps([2, "1", "DataTransfer", {"vendorId": "x", "data": "A" * 5000}]))
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 2)
            assert ws.close_code == 1009
            await asyncio.sleep(0.05)
            assert _csms_got(h) == []
            denied = [
                line["detail"]
                for line in h.observer.events("action")
                if line["detail"].get("guard") == "size"
            ]
            assert denied == [{"action": "denied", "guard": "size", "reason": "too_large", "from": "station",
                               "close_code": 1009}]  # fmt: skip

    asyncio.run(scenario())


def test_compressed_bomb_is_bounded_after_decompression(harness: Any) -> None:
    async def scenario() -> None:
        async with harness(max_frame_bytes=64 * 1024) as h:
            ws = await h.connect("CP-1", password=PW16, compression="deflate", max_size=None)
            assert "permessage-deflate" in ws.response.headers.get("Sec-WebSocket-Extensions", "")
            bomb = json.dumps([2, "1", "DataTransfer", {"vendorId": "x", "data": "A" * 5_000_000}])
            await ws.send(bomb)  # a few kilobytes on the wire, 5 MB once inflated
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 2)
            assert ws.close_code == 1009
            assert _csms_got(h) == []

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("version", "frame", "expected"),
    [
        ("ocpp1.6", '[2,"5","Heartbeat"]', ["5", "FormationViolation"]),
        ("ocpp2.0.1", '[2,"5","Heartbeat"]', ["5", "FormatViolation"]),
        ("ocpp2.0.1", "not json at all", ["-1", "RpcFrameworkError"]),
        ("ocpp2.0.1", '[7,"9","Heartbeat",{}]', ["9", "MessageTypeNotSupported"]),
        ("ocpp1.6", '[7,"9","Heartbeat",{}]', ["9", "FormationViolation"]),
        ("ocpp1.6", json.dumps([2, "x" * 37, "Heartbeat", {}]), ["x" * 37, "FormationViolation"]),
        ("ocpp2.0.1", json.dumps([2, "x" * 37, "Heartbeat", {}]), ["x" * 37, "RpcFrameworkError"]),
        ("ocpp1.6", '[2,"6","RemoteStartTransaction",{"idTag":"A"}]', ["6", "NotSupported"]),
        ("ocpp1.6", '[2,"6","NoSuchAction",{}]', ["6", "NotImplemented"]),
        ("ocpp2.0.1", '[2,"6","RequestStartTransaction",{}]', ["6", "NotSupported"]),
    ],
)
def test_malformed_and_forbidden_calls_get_the_callerror_of_their_version(
    harness: Any, version: str, frame: str, expected: list[str]
) -> None:
    async def scenario() -> None:
        async with harness() as h:
            ws = await h.connect("CP-1", password=PW16, subprotocols=[version])
            answer = await _exchange(ws, frame)
            assert answer[0] == 4 and answer[1:3] == expected
            # the connection is still usable and the CSMS never saw the bad frame
            ok = await _exchange(ws, '[2,"ok-1","Heartbeat",{}]')
            assert ok[0] == 3 and ok[1] == "ok-1"
            assert [f[1] for f in _csms_got(h)] == ["ok-1"]
            action = next(
                line for line in h.observer.events("action") if line["detail"]["action"] == "denied"
            )
            assert action["detail"]["answered"] == expected[1]
            await ws.close()

    asyncio.run(scenario())


def test_message_id_reuse_is_refused_per_connection(harness: Any) -> None:
    async def scenario() -> None:
        async with harness() as h:
            ws = await h.connect("CP-1", password=PW16)
            assert (await _exchange(ws, '[2,"7","Heartbeat",{}]'))[0] == 3
            assert (await _exchange(ws, '[2,"7","Heartbeat",{}]'))[:3] == [
                4,
                "7",
                "OccurenceConstraintViolation",
            ]
            await ws.close()
            ws = await h.connect("CP-1", password=PW16)  # a new connection may start its ids afresh
            assert (await _exchange(ws, '[2,"7","Heartbeat",{}]'))[0] == 3
            await ws.close()

    asyncio.run(scenario())


def test_ocpp201_second_outstanding_call_is_refused_but_transaction_event_is_forwarded(harness: Any) -> None:
    async def scenario() -> None:
        async with harness() as h:
            h.csms.delay_s = 0.3
            ws = await h.connect("CP-1", password=PW16, subprotocols=["ocpp2.0.1"])
            await ws.send('[2,"a","Heartbeat",{}]')
            await ws.send('[2,"b","Heartbeat",{}]')
            tx = {"eventType": "Started", "timestamp": "2026-03-01T08:00:00Z", "triggerReason": "Authorized",
                  "seqNo": 0, "transactionInfo": {"transactionId": "T1"}}  # fmt: skip
            await ws.send(json.dumps([2, "c", "TransactionEvent", tx]))
            answers = [json.loads(await asyncio.wait_for(ws.recv(), 2)) for _ in range(3)]
            assert answers[0] == [
                4,
                "b",
                "OccurrenceConstraintViolation",
                "refused by gateway: pipelined_call",
                {},
            ]
            assert sorted(a[1] for a in answers if a[0] == 3) == ["a", "c"]
            assert [f[1] for f in _csms_got(h)] == ["a", "c"]
            flagged = [
                line["detail"]
                for line in h.observer.events("action")
                if line["detail"]["action"] == "flagged"
            ]
            assert [(d["reason"], d["message_id"]) for d in flagged] == [("pipelined_call", "c")]
            await ws.close()

    asyncio.run(scenario())


def test_ocpp16_pipelining_is_allowed_and_counted(harness: Any) -> None:
    async def scenario() -> None:
        async with harness() as h:
            h.csms.delay_s = 0.2
            ws = await h.connect("CP-1", password=PW16)
            await ws.send('[2,"a","Heartbeat",{}]')
            await ws.send('[2,"b","Heartbeat",{}]')
            answers = [json.loads(await asyncio.wait_for(ws.recv(), 2)) for _ in range(2)]
            assert [a[:2] for a in answers] == [[3, "a"], [3, "b"]]
            assert h.gateway.metrics.value("chargeguard_gateway_pipelined_calls_total", sender="station") == 1
            await ws.close()

    asyncio.run(scenario())


def test_csms_call_outside_its_direction_is_answered_to_the_csms(harness: Any) -> None:
    async def scenario() -> None:
        async with harness() as h:
            ws = await h.connect("CP-1", password=PW16)
            await _exchange(ws, '[2,"1","Heartbeat",{}]')
            await h.csms.connections[0].send(
                '[2,"c1","BootNotification",{"chargePointVendor":"x","chargePointModel":"y"}]'
            )
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(ws.recv(), 0.3)  # the station never sees it
            synthesized = [line["frame"] for line in h.observer.frames() if line["frame"][1] == "c1"]
            assert synthesized[-1][:3] == [4, "c1", "NotSupported"]
            assert synthesized[-1] in [f for _, f in h.csms.received]
            await ws.close()

    asyncio.run(scenario())


def test_flood_is_rate_limited_but_transactions_still_pass(harness: Any) -> None:
    async def scenario() -> None:
        async with harness(station_calls_per_s=0.001, station_call_burst=3) as h:
            ws = await h.connect("CP-1", password=PW16)
            answers = [await _exchange(ws, f'[2,"h{i}","Heartbeat",{{}}]') for i in range(5)]
            assert [a[0] for a in answers] == [3, 3, 3, 4, 4]
            assert answers[3][2] == "GenericError"
            start = await _exchange(ws, json.dumps([2, "s", "StartTransaction", START16]))
            assert start[0] == 3 and start[2]["transactionId"] == 4711
            assert [f[1] for f in _csms_got(h)] == ["h0", "h1", "h2", "s"]
            await ws.close()

    asyncio.run(scenario())


def test_schema_violations_refused_for_calls_but_transactions_forwarded(
    harness: Any, schema_validator: Any
) -> None:
    async def scenario() -> None:
        async with harness(validator=schema_validator) as h:
            ws = await h.connect("CP-1", password=PW16)
            bad_boot = await _exchange(ws, '[2,"b","BootNotification",{"chargePointModel":"M"}]')
            assert bad_boot[:3] == [4, "b", "FormationViolation"]
            bad_start = {**START16, "meterStart": "zero"}
            start = await _exchange(ws, json.dumps([2, "s", "StartTransaction", bad_start]))
            assert start[1] == "s"  # forwarded: the CSMS itself answers (here with its own CALLERROR)
            flagged = [
                line["detail"]
                for line in h.observer.events("action")
                if line["detail"]["action"] == "flagged"
            ]
            assert [(d["reason"], d["ocpp_action"]) for d in flagged] == [
                ("schema_invalid", "StartTransaction")
            ]
            assert [f[1] for f in _csms_got(h)] == ["s"]
            await ws.close()

    asyncio.run(scenario())


def test_default_gateway_validates_payloads_with_the_project_schemas(harness: Any) -> None:
    async def scenario() -> None:
        async with harness() as h:  # no validator passed: chargeguard.sources.ocpp.schemas is used
            ws = await h.connect("CP-1", password=PW16, subprotocols=["ocpp2.0.1"])
            bad = await _exchange(ws, '[2,"b","BootNotification",{"reason":"PowerUp"}]')
            assert bad[:3] == [4, "b", "FormatViolation"]
            good = {"reason": "PowerUp", "chargingStation": {"model": "M", "vendorName": "V"}}
            assert (await _exchange(ws, json.dumps([2, "g", "BootNotification", good])))[0] == 3
            await ws.close()

    asyncio.run(scenario())


def _mutations(seed: int, count: int) -> list[str | bytes]:
    """Grammar-aware and byte-level mutations of valid 1.6 frames (a bounded sample of the fuzzer)."""
    rng = random.Random(seed)
    valid = [
        [2, "m", "Heartbeat", {}],
        [2, "m", "StartTransaction", START16],
        [2, "m", "Authorize", {"idTag": "04A2B3C4D5E6F7"}],
        [3, "m", {}],
        [4, "m", "GenericError", "", {}],
    ]
    odd: list[object] = [
        None,
        True,
        -1,
        2**70,
        1.5,
        "",
        "x" * 40,
        [],
        {},
        [[[[[]]]]],
        "\ud800",
        {"a": {"b": {}}},
    ]
    out: list[str | bytes] = []
    for i in range(count):
        frame = json.loads(json.dumps(rng.choice(valid)))
        frame[1] = f"f{i}"
        kind = rng.randrange(6)
        if kind == 0 and len(frame) > 2:
            frame[rng.randrange(len(frame))] = rng.choice(odd)
        elif kind == 1:
            frame = frame[: rng.randrange(len(frame))]
        elif kind == 2:
            frame.append(rng.choice(odd))
        text = json.dumps(frame)
        if kind == 3:
            data = bytearray(text.encode())
            for _ in range(rng.randrange(1, 4)):
                data[rng.randrange(len(data))] = rng.randrange(256)
            out.append(bytes(data))
            continue
        if kind == 4:
            text = "[" * 5000 + "]" * 5000
        out.append(text)
    return out


def test_bounded_fuzz_sample_never_breaks_the_gateway(harness: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR)

    async def scenario() -> None:
        async with harness(station_call_burst=1000, max_denied_per_minute=10_000) as h:

            async def drain(connection: Any) -> None:  # a real station reads its answers
                with contextlib.suppress(ConnectionClosed):
                    async for _ in connection:
                        pass

            ws = await h.connect("CP-1", password=PW16)
            reader = asyncio.create_task(drain(ws))
            for message in _mutations(seed=7, count=300):
                with contextlib.suppress(ConnectionClosed):
                    await ws.send(message)
                if ws.close_code is not None:
                    ws = await h.connect("CP-1", password=PW16)
                    reader = asyncio.create_task(drain(ws))
            await ws.close()
            await reader
            ws = await h.connect("CP-1", password=PW16)
            assert (await _exchange(ws, '[2,"alive","Heartbeat",{}]'))[:2] == [3, "alive"]
            assert h.gateway.metrics.value("chargeguard_gateway_frames_denied_total", reason="not_json") > 0
            await ws.close()
            reader, writer = await asyncio.open_connection("127.0.0.1", h.gateway.plain_port)
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert b"200 OK" in await reader.read(4096)
            writer.close()

    asyncio.run(scenario())
    handler_errors = [
        r for r in caplog.records if r.name.startswith("websockets") and r.levelno >= logging.ERROR
    ]
    assert handler_errors == []


def test_station_that_keeps_sending_denied_frames_is_closed_1008(harness: Any) -> None:
    async def scenario() -> None:
        async with harness(max_denied_per_minute=3) as h:
            ws = await h.connect("CP-1", password=PW16)
            answers = [await _exchange(ws, f'[2,"{i}","NoSuchAction",{{}}]') for i in range(3)]
            assert [a[2] for a in answers] == ["NotImplemented"] * 3
            await ws.send('[2,"3","NoSuchAction",{}]')
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 2)
            assert ws.close_code == 1008
            closed = [
                line["detail"] for line in h.observer.events("action") if line["detail"]["action"] == "closed"
            ]
            assert closed[0]["close_reason"] == "too_many_denied_frames" and closed[0]["close_code"] == 1008
            assert _csms_got(h) == []

    asyncio.run(scenario())
