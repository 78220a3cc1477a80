"""Real OCPP 1.6 / 2.0.1 stations (ocpp library) through the gateway to a real central system."""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
from typing import Any

import pytest
from ocpp.v16 import ChargePoint as Cp16
from ocpp.v16 import call as c16
from ocpp.v201 import ChargePoint as Cp201
from ocpp.v201 import call as c201
from websockets.exceptions import InvalidStatus

from chargeguard.sources.ocpp.gateway.wire import Direction

PW16 = "0123456789abcdef0123456789abcdef01234567"
PW201 = "correct-horse-battery-staple-1"


async def _run_station(cp: Any) -> asyncio.Task[None]:
    return asyncio.create_task(cp.start())


def test_ocpp16_profile1_session_is_relayed_in_order_with_same_ids(harness: Any) -> None:
    async def scenario() -> None:
        async with harness() as h:
            ws = await h.connect("CP-1", password=PW16)
            assert ws.subprotocol == "ocpp1.6"
            cp = Cp16("CP-1", ws)
            task = await _run_station(cp)
            boot = await cp.call(c16.BootNotification(charge_point_model="M", charge_point_vendor="V"))
            assert boot.status == "Accepted"
            auth = await cp.call(c16.Authorize(id_tag="04A2B3C4D5E6F7"))
            assert auth.id_tag_info["status"] == "Accepted"
            start = await cp.call(
                c16.StartTransaction(
                    connector_id=1, id_tag="04A2B3C4D5E6F7", meter_start=0, timestamp="2026-03-01T08:00:00Z"
                )
            )
            assert start.transaction_id == 4711
            await cp.call(
                c16.StopTransaction(meter_stop=1500, timestamp="2026-03-01T09:00:00Z", transaction_id=4711)
            )
            task.cancel()
            await ws.close()
            # the CSMS saw the same identity, subprotocol and credentials, and the frames in order with their ids
            assert h.csms.requests[0]["path"] == "/csms/CP-1"
            assert h.csms.requests[0]["subprotocol"] == "ocpp1.6"
            expected_auth = "Basic " + base64.b64encode(f"CP-1:{PW16}".encode()).decode()
            assert h.csms.requests[0]["authorization"] == expected_auth
            received = [frame for ident, frame in h.csms.received if ident == "CP-1"]
            assert [f[2] for f in received] == [
                "BootNotification",
                "Authorize",
                "StartTransaction",
                "StopTransaction",
            ]
            frames = h.observer.frames()
            station_frames = [line["frame"] for line in frames if line["from"] == Direction.STATION]
            assert station_frames == received
            answers = [line["frame"] for line in frames if line["from"] == Direction.CSMS]
            assert [a[1] for a in answers] == [f[1] for f in received]
            assert all(line["ocpp"] == "1.6" and line["station"] == "CP-1" for line in frames)
            await asyncio.sleep(0.05)
            connects = h.observer.events("connect")
            assert connects[0]["security_profile"] == 1
            assert h.observer.events("disconnect")

    asyncio.run(scenario())


def test_ocpp201_profile2_over_tls(harness: Any) -> None:
    async def scenario() -> None:
        async with harness() as h:
            ws = await h.connect("CP-2", password=PW201, subprotocols=["ocpp2.0.1", "ocpp1.6"], tls=True)
            assert ws.subprotocol == "ocpp2.0.1"
            cp = Cp201("CP-2", ws)
            task = await _run_station(cp)
            boot = await cp.call(
                c201.BootNotification(charging_station={"model": "M", "vendor_name": "V"}, reason="PowerUp")
            )
            assert boot.status == "Accepted"
            task.cancel()
            await ws.close()
            assert h.csms.requests[0]["subprotocol"] == "ocpp2.0.1"
            assert h.observer.events("connect")[0]["security_profile"] == 2

    asyncio.run(scenario())


def test_answers_with_the_subprotocol_the_csms_selected(harness: Any) -> None:
    async def scenario() -> None:
        async with harness() as h:
            # the CSMS prefers 2.0.1; a station offering 1.6 first still gets what the CSMS chose
            ws = await h.connect("CP-1", password=PW16, subprotocols=["ocpp1.6", "ocpp2.0.1"])
            assert ws.subprotocol == h.csms.requests[0]["subprotocol"] == "ocpp2.0.1"
            await ws.close()

    asyncio.run(scenario())


def test_station_without_subprotocol_accepted_only_when_configured(harness: Any) -> None:
    async def scenario() -> None:
        async with harness() as h:
            ws = await h.connect("CP-NOSUB", password=PW16, subprotocols=[])
            assert ws.subprotocol is None
            assert h.csms.requests[0]["subprotocol"] == "ocpp1.6"
            cp = Cp16("CP-NOSUB", ws)
            task = await _run_station(cp)
            beat = await cp.call(c16.Heartbeat())
            assert beat.current_time
            task.cancel()
            await ws.close()
            with pytest.raises(InvalidStatus) as refused:
                await h.connect("CP-1", password=PW16, subprotocols=[])
            assert refused.value.response.status_code == 400
            # a station configured for 1.6 cannot negotiate another version
            with pytest.raises(InvalidStatus) as downgrade:
                await h.connect("CP-NOSUB", password=PW16, subprotocols=["ocpp2.0.1"])
            assert downgrade.value.response.status_code == 400
            assert len(h.csms.requests) == 1  # no upstream leg opened for the refused ones
            refusals = [line["detail"] for line in h.observer.events("action")]
            assert [d["offered"] for d in refusals] == [[], ["ocpp2.0.1"]]

    asyncio.run(scenario())


def test_health_and_metrics_endpoints(harness: Any) -> None:
    async def scenario() -> None:
        async with harness() as h:
            ws = await h.connect("CP-1", password=PW16)
            await ws.send('[2,"1","Heartbeat",{}]')
            await ws.recv()
            reader, writer = await asyncio.open_connection("127.0.0.1", h.gateway.plain_port)
            writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            body = (await reader.read(65536)).decode()
            writer.close()
            assert "200 OK" in body
            assert 'chargeguard_gateway_frames_total{sender="station"} 1.0' in body
            assert "chargeguard_gateway_open_connections 1.0" in body
            reader, writer = await asyncio.open_connection("127.0.0.1", h.gateway.plain_port)
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert "200 OK" in (await reader.read(65536)).decode()
            writer.close()
            await ws.close()

    asyncio.run(scenario())


def test_upstream_leg_with_tls_client_certificate_and_configured_basic_auth(harness: Any, pki: Any) -> None:
    async def scenario() -> None:
        csms_ssl = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        csms_ssl.load_cert_chain(pki.server_cert, pki.server_key)
        csms_ssl.load_verify_locations(cafile=pki.ca)
        csms_ssl.verify_mode = ssl.CERT_REQUIRED  # the CSMS insists on the gateway's own client certificate
        good_cert, good_key = pki.clients["good2"]
        upstream = {"basic_auth": "configured", "username": "gateway", "ca": str(pki.ca),
                    "client_cert": str(good_cert), "client_key": str(good_key)}  # fmt: skip
        env = {"CHARGEGUARD_GATEWAY_UPSTREAM_PASSWORD": "gateway-upstream-secret"}
        async with harness(csms_ssl=csms_ssl, upstream=upstream, env=env) as h:
            ws = await h.connect("CP-1", password=PW16)
            await ws.send('[2,"1","Heartbeat",{}]')
            assert '"currentTime"' in str(await ws.recv())
            request = h.csms.requests[0]
            assert (
                request["authorization"]
                == "Basic " + base64.b64encode(b"gateway:gateway-upstream-secret").decode()
            )
            subject = dict(item[0] for item in request["client_cert"]["subject"])
            assert subject["commonName"] == "CP-3"
            await ws.close()

    asyncio.run(scenario())


def test_result_without_a_call_is_forwarded_and_flagged(harness: Any) -> None:
    async def scenario() -> None:
        async with harness() as h:
            ws = await h.connect("CP-1", password=PW16)
            await ws.send('[3,"never-asked",{}]')
            await ws.send('[2,"1","Heartbeat",{}]')
            await ws.recv()
            assert [f[1] for _, f in h.csms.received] == ["never-asked", "1"]
            flagged = [line["detail"] for line in h.observer.events("action")]
            assert [(d["action"], d["reason"]) for d in flagged] == [("flagged", "result_without_call")]
            await ws.close()

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("policy", "station_deflate", "upstream_deflate"),
    [
        ({}, True, False),
        ({"upstream_compression": True}, True, True),
        ({"compression": False}, False, False),
    ],
)
def test_compression_per_leg(
    harness: Any, policy: dict[str, bool], station_deflate: bool, upstream_deflate: bool
) -> None:
    async def scenario() -> None:
        async with harness(**policy) as h:
            ws = await h.connect("CP-1", password=PW16, compression="deflate")
            await ws.send('[2,"1","Heartbeat",{}]')
            assert '"currentTime"' in str(await ws.recv())
            offered = ws.response.headers.get("Sec-WebSocket-Extensions") or ""
            assert ("permessage-deflate" in offered) is station_deflate
            if station_deflate:  # small windows keep the memory of an idle station low
                assert "server_max_window_bits=10" in offered and "client_max_window_bits=10" in offered
            upstream = h.csms.connections[0].response.headers.get("Sec-WebSocket-Extensions") or ""
            assert ("permessage-deflate" in upstream) is upstream_deflate
            await ws.close()

    asyncio.run(scenario())


@pytest.mark.parametrize("takeover", [False, True])
def test_compression_context_takeover_per_policy(harness: Any, takeover: bool) -> None:
    """Default (False): no context takeover negotiated both ways on both legs, so no idle zlib state."""
    policy = {"deflate_context_takeover": True} if takeover else {}

    async def scenario() -> None:
        async with harness(upstream_compression=True, **policy) as h:
            ws = await h.connect("CP-1", password=PW16, compression="deflate")
            for n in range(3):  # every message compressed, both ways, on both legs
                await ws.send(f'[2,"{n}","Heartbeat",{{}}]')
                assert '"currentTime"' in str(await ws.recv())
            for response in (ws.response, h.csms.connections[0].response):
                agreed = response.headers.get("Sec-WebSocket-Extensions") or ""
                assert "permessage-deflate" in agreed
                assert ("server_no_context_takeover" in agreed) is not takeover
                assert ("client_no_context_takeover" in agreed) is not takeover
            session = h.gateway.sessions["CP-1"]
            for leg in (session.station, session.upstream):
                deflate = leg.protocol.extensions[0]
                assert hasattr(deflate, "encoder") is takeover and hasattr(deflate, "decoder") is takeover
            await ws.close()

    asyncio.run(scenario())


def test_keepalive_pings_per_leg(harness: Any) -> None:
    async def scenario() -> None:
        async with harness(station_ping_interval_s=None, upstream_ping_interval_s=7.0) as h:
            ws = await h.connect("CP-1", password=PW16)
            await ws.send('[2,"1","Heartbeat",{}]')
            await ws.recv()
            session = h.gateway.sessions["CP-1"]
            assert session.station.ping_interval is None and session.station.keepalive_task is None
            assert session.upstream.ping_interval == 7.0 and session.upstream.ping_timeout == 7.0
            await ws.close()

    asyncio.run(scenario())


def test_metrics_only_for_allowed_networks(harness: Any) -> None:
    async def scenario() -> None:
        async with harness(listen={"metrics_from": ["10.0.0.0/8"]}) as h:
            for path, expected in ((b"/metrics", b"403 Forbidden"), (b"/healthz", b"200 OK")):
                reader, writer = await asyncio.open_connection("127.0.0.1", h.gateway.plain_port)
                writer.write(b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n\r\n")
                assert expected in await reader.read(65536)
                writer.close()

    asyncio.run(scenario())


def test_ocpp21_send_is_relayed_while_a_call_is_outstanding(harness: Any) -> None:
    async def scenario() -> None:
        async with harness(csms_subprotocols=("ocpp2.1",)) as h:
            h.csms.delay_s = 0.3
            ws = await h.connect("CP-1", password=PW16, subprotocols=["ocpp2.1"])
            assert ws.subprotocol == "ocpp2.1"
            stream = {"id": 1, "pending": 0, "basetime": "2026-03-01T08:00:00Z", "data": [{"t": 0, "v": "1"}]}
            await ws.send('[2,"a","Heartbeat",{}]')
            await ws.send(json.dumps([6, "s1", "NotifyPeriodicEventStream", stream]))
            await ws.send('[2,"b","Heartbeat",{}]')  # a second CALL is still refused in 2.1
            refused = json.loads(await asyncio.wait_for(ws.recv(), 2))
            assert refused[:3] == [4, "b", "OccurrenceConstraintViolation"]
            assert json.loads(await asyncio.wait_for(ws.recv(), 2))[:2] == [3, "a"]
            await asyncio.sleep(0.1)  # the central system reads the SEND after answering "a"
            assert [f[:2] for _, f in h.csms.received] == [[2, "a"], [6, "s1"]]
            assert all(line["ocpp"] == "2.1" for line in h.observer.frames())
            await ws.close()

    asyncio.run(scenario())
