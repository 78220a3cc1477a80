"""Token A/B/C handshake in both roles, rotation, unregistering, 401/405 rules and routing-header placement."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import httpx
import pytest

from chargeguard.sources.ocpi.connector import headers as h
from chargeguard.sources.ocpi.connector.context import Connector
from chargeguard.sources.ocpi.connector.credentials import register, rotate, unregister
from chargeguard.sources.ocpi.connector.envelope import PartnerError
from chargeguard.sources.ocpi.connector.headers import Party
from sources.ocpi.connector.ocpi_kit import HostRouter, make_connector

CPO = Party("NL", "CPO")
EMSP = Party("DE", "EMS")


def _pair(router: HostRouter) -> tuple[Connector, Connector]:
    cpo, _ = make_connector(router, "cpo.test", CPO, {"CPO"})
    emsp, _ = make_connector(router, "emsp.test", EMSP, {"EMSP"})
    return cpo, emsp


async def _get(router: HostRouter, url: str, token: str, method: str = "GET", **kw: Any) -> httpx.Response:
    async with httpx.AsyncClient(transport=router) as http:
        return await http.request(method, url, headers={"Authorization": h.encode_token(token)}, **kw)


async def _handshake(cpo: Connector, emsp: Connector) -> tuple[str, str]:
    """CPO operator hands TOKEN_A to the eMSP, which registers. Returns (token_a, emsp's partner id)."""
    partner = cpo.store.create_partner("emsp")
    token_a = cpo.store.issue_token(partner.partner_id, "registration", ttl=timedelta(days=1))
    registered = await register(emsp, "cpo", cpo.config.versions_url, token_a)
    return token_a, registered.partner_id


def test_full_handshake_rotation_and_unregister(router: HostRouter) -> None:
    async def run() -> None:
        cpo, emsp = _pair(router)
        token_a, pid = await _handshake(cpo, emsp)
        token_c = emsp.store.outgoing(pid)
        at_emsp = emsp.store.get(pid)
        assert at_emsp.registered and at_emsp.parties == [CPO]
        assert at_emsp.endpoint("locations", "SENDER") == "http://cpo.test/ocpi/2.2.1/cpo/locations"
        at_cpo = next(cpo.store.partners())
        assert at_cpo.registered and at_cpo.parties == [EMSP]
        assert at_cpo.endpoint("locations", "RECEIVER") == "http://emsp.test/ocpi/2.2.1/emsp/locations"
        # the CPO now reaches the eMSP with TOKEN_B (which the eMSP issued), the eMSP the CPO with TOKEN_C
        token_b = cpo.store.outgoing(at_cpo.partner_id)
        assert (await _get(router, "http://emsp.test/ocpi/versions", token_b)).status_code == 200
        ok = await _get(router, "http://cpo.test/ocpi/2.2.1/cpo/locations", token_c)
        assert ok.status_code == 200 and ok.json()["status_code"] == 1000
        # TOKEN_A died with the registration
        dead = await _get(router, "http://cpo.test/ocpi/versions", token_a)
        assert dead.status_code == 401 and dead.json()["status_code"] == 2000
        # POST twice -> 405
        again = await _get(
            router, "http://cpo.test/ocpi/2.2.1/credentials", token_c, "POST", json=emsp.credentials("x")
        )
        assert again.status_code == 405 and again.json()["status_code"] == 2000
        # GET credentials returns the CPO's credentials with the caller's token
        got = (await _get(router, "http://cpo.test/ocpi/2.2.1/credentials", token_c)).json()["data"]
        assert got["token"] == token_c and got["roles"][0]["role"] == "CPO"

        await rotate(emsp, pid)
        new_c = emsp.store.outgoing(pid)
        assert new_c != token_c
        assert (await _get(router, "http://cpo.test/ocpi/versions", token_c)).status_code == 401
        assert (await _get(router, "http://cpo.test/ocpi/versions", new_c)).status_code == 200
        # the CPO holds the rotated TOKEN_B; the old one is dead at the eMSP
        assert (await _get(router, "http://emsp.test/ocpi/versions", token_b)).status_code == 401
        assert (
            await _get(router, "http://emsp.test/ocpi/versions", cpo.store.outgoing(at_cpo.partner_id))
        ).status_code == 200

        await unregister(emsp, pid)
        assert (await _get(router, "http://cpo.test/ocpi/versions", new_c)).status_code == 401
        assert list(emsp.store.partners()) == [] and list(cpo.store.partners()) == []

    asyncio.run(run())


def test_token_a_only_on_versions_and_credentials_and_expiry(router: HostRouter) -> None:
    async def run() -> None:
        cpo, _ = _pair(router)
        partner = cpo.store.create_partner("p")
        token_a = cpo.store.issue_token(partner.partner_id, "registration", ttl=timedelta(days=1))
        assert (await _get(router, "http://cpo.test/ocpi/versions", token_a)).status_code == 200
        detail = (await _get(router, "http://cpo.test/ocpi/2.2.1", token_a)).json()
        assert {e["identifier"] for e in detail["data"]["endpoints"]} >= {
            "credentials",
            "locations",
            "tokens",
        }
        module = await _get(router, "http://cpo.test/ocpi/2.2.1/cpo/locations", token_a)
        assert module.status_code == 401 and module.json()["status_code"] == 2000
        assert "data" not in module.json() and module.json()["timestamp"]
        # PUT/DELETE before registering -> 405
        assert (
            await _get(router, "http://cpo.test/ocpi/2.2.1/credentials", token_a, "DELETE")
        ).status_code == 405
        unknown = await _get(router, "http://cpo.test/ocpi/versions", "never-issued")
        assert unknown.status_code == 401 and unknown.json()["status_message"] == "unknown credentials token"
        async with httpx.AsyncClient(transport=router) as http:
            missing = await http.get("http://cpo.test/ocpi/versions")
        assert missing.status_code == 401
        expired = cpo.store.issue_token(partner.partner_id, "registration", ttl=timedelta(seconds=-1))
        gone = await _get(router, "http://cpo.test/ocpi/versions", expired)
        assert gone.status_code == 401 and gone.json()["status_message"] == "credentials token expired"

    asyncio.run(run())


def test_ids_echoed_and_routing_headers_only_on_modules(router: HostRouter) -> None:
    async def run() -> None:
        cpo, emsp = _pair(router)
        _, pid = await _handshake(cpo, emsp)
        versions_calls = [
            r for r in router.seen if r.url.path.endswith(("/versions", "/2.2.1", "/credentials"))
        ]
        assert versions_calls and all(h.TO_PARTY not in r.headers for r in versions_calls)
        assert all(h.REQUEST_ID in r.headers and h.CORRELATION_ID in r.headers for r in router.seen)
        router.seen.clear()
        async for _ in emsp.client.pull(
            "http://cpo.test/ocpi/2.2.1/cpo/locations", token=emsp.store.outgoing(pid), to=CPO
        ):
            pass
        sent = router.seen[-1]
        assert sent.headers[h.FROM_PARTY] == "EMS" and sent.headers[h.TO_PARTY] == "CPO"
        async with httpx.AsyncClient(transport=router) as http:
            resp = await http.get(
                "http://cpo.test/ocpi/2.2.1/cpo/locations",
                headers={
                    "Authorization": h.encode_token(emsp.store.outgoing(pid)),
                    h.REQUEST_ID: "req-1",
                    h.CORRELATION_ID: "corr-1",
                    **h.routing_headers(EMSP, CPO),
                },
            )
            assert resp.headers[h.REQUEST_ID] == "req-1" and resp.headers[h.CORRELATION_ID] == "corr-1"
            assert resp.headers[h.TO_PARTY] == "EMS" and resp.headers[h.FROM_PARTY] == "CPO"
            wrong = await http.get(
                "http://cpo.test/ocpi/2.2.1/cpo/locations",
                headers={
                    "Authorization": h.encode_token(emsp.store.outgoing(pid)),
                    **h.routing_headers(Party("FR", "XXX"), CPO),
                },
            )
            assert wrong.json()["status_code"] == 2000 and "OCPI-from" in wrong.json()["status_message"]
            v = await http.get(
                "http://cpo.test/ocpi/versions",
                headers={"Authorization": h.encode_token(emsp.store.outgoing(pid))},
            )
            assert h.TO_PARTY not in v.headers and v.headers[h.REQUEST_ID]

    asyncio.run(run())


def test_registering_with_a_partner_without_2_2_1_fails_cleanly(router: HostRouter) -> None:
    def old_peer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200,
            json={
                "status_code": 1000,
                "timestamp": "2026-01-01T00:00:00Z",
                "data": [{"version": "2.1.1", "url": "http://old.test/2.1.1"}],
            },
        )

    async def run() -> None:
        _, emsp = _pair(router)
        router.add_handler("old.test", old_peer)
        with pytest.raises(PartnerError) as err:
            await register(emsp, "old", "http://old.test/versions", "token-a")
        assert err.value.status_code == 3002 and "2.1.1" in str(err.value)
        assert list(emsp.store.partners()) == []  # nothing half-registered is left behind

    asyncio.run(run())


def test_registration_post_answers_3001_when_caller_versions_unreachable(router: HostRouter) -> None:
    async def run() -> None:
        cpo, emsp = _pair(router)
        partner = cpo.store.create_partner("p")
        token_a = cpo.store.issue_token(partner.partner_id, "registration")
        creds = emsp.credentials("tok-b")
        creds["url"] = "http://nowhere.test/ocpi/versions"
        resp = await _get(router, "http://cpo.test/ocpi/2.2.1/credentials", token_a, "POST", json=creds)
        assert resp.status_code == 200 and resp.json()["status_code"] == 3001
        # still unregistered: TOKEN_A keeps working for a retry
        assert (await _get(router, "http://cpo.test/ocpi/versions", token_a)).status_code == 200
        bad = await _get(
            router, "http://cpo.test/ocpi/2.2.1/credentials", token_a, "POST", json={"token": "x"}
        )
        assert bad.json()["status_code"] == 2001

    asyncio.run(run())


def test_an_internal_error_is_an_ocpi_envelope_with_ids(router: HostRouter) -> None:
    async def run() -> None:
        cpo, _ = _pair(router)
        partner = cpo.store.create_partner("p")
        token = cpo.store.issue_token(partner.partner_id, "registration")

        def broken(_token: str) -> Any:
            raise RuntimeError("store down")

        cpo.store.authenticate = broken  # type: ignore[method-assign]
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=router_app(router, "cpo.test"))
        ) as http:
            resp = await http.get(
                "http://cpo.test/ocpi/versions",
                headers={"Authorization": h.encode_token(token), h.REQUEST_ID: "r-500"},
            )
        assert resp.status_code == 500 and resp.json()["status_code"] == 3000
        assert resp.headers[h.REQUEST_ID] == "r-500" and "store down" not in resp.text

    asyncio.run(run())


def router_app(router: HostRouter, host: str) -> Any:
    transport = router.routes[host]
    assert isinstance(transport, httpx.ASGITransport)
    return transport.app
