"""Security profiles through real handshakes: passwords, downgrades, TLS versions, client certificates."""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

import pytest
from websockets.exceptions import InvalidHandshake, InvalidStatus

PW16 = "0123456789abcdef0123456789abcdef01234567"
PW201 = "correct-horse-battery-staple-1"


async def _refused(h: Any, identity: str, **kwargs: Any) -> int:
    with pytest.raises(InvalidStatus) as refused:
        await h.connect(identity, **kwargs)
    return int(refused.value.response.status_code)


def _reasons(h: Any) -> list[str]:
    return [line["detail"]["reason"] for line in h.observer.events("auth_failed")]


def test_wrong_missing_and_mismatched_credentials_are_refused_before_the_csms(harness: Any) -> None:
    async def scenario() -> None:
        async with harness() as h:
            assert await _refused(h, "CP-1", password=PW16[:-1] + "8") == 401
            assert await _refused(h, "CP-1") == 401
            assert await _refused(h, "CP-1", password=PW16, username="CP-2") == 401
            assert await _refused(h, "CP-404", password=PW16) == 401
            assert _reasons(h) == [
                "bad_credentials",
                "missing_credentials",
                "username_mismatch",
                "unknown_station",
            ]
            assert h.csms.requests == []
            line = h.observer.events("auth_failed")[0]
            assert line["station"] == "CP-1" and line["remote"].startswith("127.0.0.1:")
            assert PW16 not in repr(h.observer.lines)

    asyncio.run(scenario())


def test_downgrade_to_plain_websocket_is_refused(harness: Any) -> None:
    async def scenario() -> None:
        async with harness() as h:
            # CP-2 is a profile 2 station: correct password, but over ws:// instead of wss://
            assert await _refused(h, "CP-2", password=PW201) == 401
            assert await _refused(h, "CP-3") == 401
            assert _reasons(h) == ["security_profile_downgrade", "security_profile_downgrade"]
            assert h.csms.requests == []

    asyncio.run(scenario())


def test_tls_below_1_2_is_refused(harness: Any, pki: Any) -> None:
    async def scenario() -> None:
        async with harness() as h:
            ctx = pki.client_context(None, tls_max=ssl.TLSVersion.TLSv1_1)
            with pytest.raises((ssl.SSLError, OSError)):
                await h.connect("CP-2", password=PW201, tls=True, ssl_context=ctx)
            ok = await h.connect("CP-2", password=PW201, tls=True)
            tls_object = ok.transport.get_extra_info("ssl_object")
            assert tls_object.version() in ("TLSv1.2", "TLSv1.3")
            assert tls_object.compression() is None
            await ok.close()

    asyncio.run(scenario())


def test_tls12_negotiates_an_ocpp_cipher_suite(harness: Any, pki: Any) -> None:
    async def scenario() -> None:
        async with harness() as h:
            ctx = pki.client_context(None, tls_max=ssl.TLSVersion.TLSv1_2)
            ws = await h.connect("CP-2", password=PW201, tls=True, ssl_context=ctx)
            cipher = ws.transport.get_extra_info("ssl_object").cipher()[0]
            assert cipher in {"ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384"}
            await ws.close()
            weak = pki.client_context(None, tls_max=ssl.TLSVersion.TLSv1_2)
            weak.set_ciphers("ECDHE-ECDSA-CHACHA20-POLY1305")
            with pytest.raises((ssl.SSLError, OSError)):
                await h.connect("CP-2", password=PW201, tls=True, ssl_context=weak)

    asyncio.run(scenario())


def test_profile3_good_certificate_is_accepted(harness: Any) -> None:
    async def scenario() -> None:
        async with harness() as h:
            ws = await h.connect("CP-3", tls=True, client_cert="good")
            await ws.send('[2,"1","Heartbeat",{}]')
            answer = await ws.recv()
            assert '"currentTime"' in str(answer)
            assert h.observer.events("connect")[0]["security_profile"] == 3
            assert h.csms.requests[0]["authorization"] is None
            await ws.close()

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("cert", "reason"),
    [
        (None, "no_client_certificate"),
        ("wrong_o", "certificate_operator_mismatch"),
        ("wrong_cn", "certificate_cn_mismatch"),
        ("revoked", "certificate_revoked"),
    ],
)
def test_profile3_bad_certificates_are_refused(harness: Any, cert: str | None, reason: str) -> None:
    async def scenario() -> None:
        async with harness() as h:
            assert await _refused(h, "CP-3", tls=True, client_cert=cert) == 401
            assert _reasons(h) == [reason]
            assert h.csms.requests == []

    asyncio.run(scenario())


@pytest.mark.parametrize("cert", ["expired", "rogue"])
def test_profile3_expired_or_foreign_certificates_fail_the_tls_handshake(harness: Any, cert: str) -> None:
    async def scenario() -> None:
        async with harness() as h:
            with pytest.raises((ssl.SSLError, OSError, InvalidHandshake, EOFError)):
                ws = await h.connect("CP-3", tls=True, client_cert=cert)
                await ws.recv()  # TLS 1.3: the server's refusal arrives after the client's handshake finished
            assert h.csms.requests == []
            assert h.gateway.sessions == {}

    asyncio.run(scenario())


def test_identity_must_equal_serial_policy(harness: Any, default_stations: dict[str, Any]) -> None:
    async def scenario() -> None:
        stations = {**default_stations, "SN-0001": {"security_profile": 3, "serial_number": "SN-0001"}}
        async with harness(stations=stations, identity_must_equal_serial=True) as h:
            assert await _refused(h, "CP-3", tls=True, client_cert="good") == 401
            assert _reasons(h) == ["identity_not_serial"]
            ws = await h.connect("SN-0001", tls=True, client_cert="good")
            await ws.close()

    asyncio.run(scenario())
