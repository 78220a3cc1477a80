"""Arbitrary bodies and ids from a partner get OCPI client-error answers, never a server error or a stored object."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chargeguard.sources.ocpi.connector import headers as h
from chargeguard.sources.ocpi.connector.headers import Party
from sources.ocpi.connector.ocpi_kit import HostRouter, a_cdr, make_connector

_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=20,
)
_cdr_keys = list(a_cdr(1))


def _setup() -> tuple[HostRouter, Any, str]:
    router = HostRouter()
    emsp, _ = make_connector(router, "emsp.test", Party("DE", "EMS"), {"EMSP"})
    partner = emsp.store.create_partner("cpo")
    partner.roles = [{"role": "CPO", "country_code": "NL", "party_id": "CPO", "business_details": {}}]
    partner.registered = True
    emsp.store.update(partner)
    return router, emsp, emsp.store.issue_token(partner.partner_id, "access", ttl=timedelta(hours=1))


ROUTER, EMSP, TOKEN = _setup()


async def _send(method: str, url: str, **kw: Any) -> httpx.Response:
    async with httpx.AsyncClient(transport=ROUTER) as http:
        return await http.request(method, url, headers={"Authorization": h.encode_token(TOKEN)}, **kw)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=_json, raw=st.binary(max_size=64))
def test_arbitrary_bodies_are_refused_cleanly(body: Any, raw: bytes) -> None:
    async def run() -> None:
        for method, url, kw in (
            ("POST", "http://emsp.test/ocpi/2.2.1/emsp/cdrs", {"json": body}),
            ("POST", "http://emsp.test/ocpi/2.2.1/emsp/cdrs", {"content": raw}),
            ("PUT", "http://emsp.test/ocpi/2.2.1/emsp/locations/NL/CPO/L1", {"json": body}),
            ("PATCH", "http://emsp.test/ocpi/2.2.1/emsp/sessions/NL/CPO/S1", {"json": body}),
            ("POST", "http://emsp.test/ocpi/2.2.1/emsp/tokens/X1/authorize", {"content": raw}),
        ):
            resp = await _send(method, url, **kw)
            assert resp.status_code < 500, (method, url, resp.text[:200])
            assert resp.json()["status_code"] in (2001, 2003, 2004), resp.text[:200]
        assert EMSP.received.count("cdrs") == 0 and EMSP.received.count("locations") == 0

    asyncio.run(run())


@settings(max_examples=40, deadline=None)
@given(mutation=st.dictionaries(st.sampled_from(_cdr_keys), _json, min_size=1, max_size=3))
def test_mutated_cdrs_are_stored_valid_or_refused(mutation: dict[str, Any]) -> None:
    async def run() -> None:
        cdr = a_cdr(1) | mutation
        resp = await _send("POST", "http://emsp.test/ocpi/2.2.1/emsp/cdrs", json=cdr)
        assert resp.status_code < 500 and resp.json()["status_code"] in (1000, 2001)
        if resp.json()["status_code"] == 1000:
            key = (str(cdr["country_code"]), str(cdr["party_id"]), str(cdr["id"]))
            assert EMSP.received.get("cdrs", *key) is not None
            EMSP.received.delete("cdrs", tuple(part.upper() for part in key))  # type: ignore[arg-type]

    asyncio.run(run())
