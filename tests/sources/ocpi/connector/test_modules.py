"""Module senders/receivers between two chargeguard platforms: pagination, pseudonymisation, bad input, authorize."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

import httpx
import msgspec
import pytest
import structlog

from chargeguard.sources.ocpi.connector import headers as h
from chargeguard.sources.ocpi.connector.context import Connector
from chargeguard.sources.ocpi.connector.credentials import register
from chargeguard.sources.ocpi.connector.decision import AuthorizeRequest, Decision
from chargeguard.sources.ocpi.connector.headers import Party
from chargeguard.sources.ocpi.connector.repository import ObjectRepository
from chargeguard.sources.ocpi.models import Location, Token
from sources.ocpi.connector.ocpi_kit import (
    PSEUDONYMISER,
    RAW_CONTRACT,
    RAW_UID,
    HostRouter,
    a_cdr,
    a_location,
    a_token,
    make_connector,
)

CPO = Party("NL", "CPO")
EMSP = Party("DE", "EMS")


async def _registered(router: HostRouter, **emsp_config: Any) -> tuple[Connector, Connector, str, str]:
    """Returns (cpo, emsp, token the eMSP uses at the CPO, token the CPO uses at the eMSP)."""
    cpo, _ = make_connector(router, "cpo.test", CPO, {"CPO"}, page_limit=7)
    emsp, _ = make_connector(router, "emsp.test", EMSP, {"EMSP"}, **emsp_config)
    partner = cpo.store.create_partner("emsp")
    token_a = cpo.store.issue_token(partner.partner_id, "registration", ttl=timedelta(days=1))
    at_emsp = await register(emsp, "cpo", cpo.config.versions_url, token_a)
    at_cpo = next(cpo.store.partners())
    return cpo, emsp, emsp.store.outgoing(at_emsp.partner_id), cpo.store.outgoing(at_cpo.partner_id)


async def _call(router: HostRouter, method: str, url: str, token: str, **kw: Any) -> httpx.Response:
    async with httpx.AsyncClient(transport=router) as http:
        return await http.request(method, url, headers={"Authorization": h.encode_token(token)}, **kw)


def test_pagination_served_and_pulled_with_link_total_and_limit(router: HostRouter) -> None:
    async def run() -> None:
        cpo, emsp, to_cpo, _ = await _registered(router)
        for i in range(23):
            day = f"2026-01-{1 + i % 20:02d}T00:00:00Z"
            cpo.published.put(
                "locations", msgspec.json.decode(msgspec.json.encode(a_location(i, day)), type=Location)
            )
        first = await _call(router, "GET", "http://cpo.test/ocpi/2.2.1/cpo/locations?limit=50", to_cpo)
        assert first.headers[h.TOTAL_COUNT] == "23" and first.headers[h.LIMIT] == "7"  # capped at page_limit
        assert len(first.json()["data"]) == 7
        assert h.parse_next_link(first.headers[h.LINK]) == (
            "http://cpo.test/ocpi/2.2.1/cpo/locations?limit=7&offset=7"
        )
        ids = [
            o["id"]
            async for o in emsp.client.pull("http://cpo.test/ocpi/2.2.1/cpo/locations", token=to_cpo, to=CPO)
        ]
        assert len(ids) == 23 and len(set(ids)) == 23
        # date filter: date_from inclusive, date_to exclusive
        window = [
            o
            async for o in emsp.client.pull(
                "http://cpo.test/ocpi/2.2.1/cpo/locations",
                token=to_cpo,
                params={"date_from": "2026-01-02T00:00:00Z", "date_to": "2026-01-04T00:00:00Z"},
            )
        ]
        assert sorted(o["id"] for o in window) == ["LOC0001", "LOC0002", "LOC0021", "LOC0022"]
        bad = await _call(router, "GET", "http://cpo.test/ocpi/2.2.1/cpo/locations?offset=-1", to_cpo)
        assert bad.json()["status_code"] == 2001
        one = await _call(router, "GET", "http://cpo.test/ocpi/2.2.1/cpo/locations/LOC0003", to_cpo)
        assert one.json()["data"]["id"] == "LOC0003"
        missing = await _call(router, "GET", "http://cpo.test/ocpi/2.2.1/cpo/locations/NOPE", to_cpo)
        assert missing.status_code == 404 and missing.json()["status_code"] == 2003

    asyncio.run(run())


def _page_handler(
    pages: dict[int, tuple[list[int], str | None]], total: int = 4, calls: list[int] | None = None
):
    def handler(request: httpx.Request) -> httpx.Response:
        offset = int(request.url.params.get("offset", "0"))
        if calls is not None:
            calls.append(offset)
        data, link = pages[offset]
        headers = {h.TOTAL_COUNT: str(total), h.LIMIT: "2"}
        if link:
            headers[h.LINK] = f'<{link}>; rel="next"'
        body = {"status_code": 1000, "timestamp": "2026-01-01T00:00:00Z", "data": [{"id": i} for i in data]}
        return httpx.Response(200, json=body, headers=headers)

    return handler


def test_pull_detects_pagination_loops(router: HostRouter) -> None:
    async def run() -> None:
        _, emsp, _, _ = await _registered(router)
        loop = {0: ([1, 2], "http://peer.test/l?offset=2"), 2: ([3, 4], "http://peer.test/l?offset=0")}
        router.add_handler("peer.test", _page_handler(loop))
        got: list[Any] = []
        from chargeguard.sources.ocpi.connector.envelope import PaginationLoopError

        with pytest.raises(PaginationLoopError):
            async for o in emsp.client.pull("http://peer.test/l?offset=0", token="t"):
                got.append(o["id"])
        assert got == [1, 2, 3, 4]  # what came before the loop is kept
        # a partner whose offsets keep moving but never end
        endless = {i: ([i], f"http://peer.test/e?offset={i + 1}") for i in range(50)}
        router.add_handler("peer.test", _page_handler(endless, total=4))
        with pytest.raises(PaginationLoopError, match="does not end"):
            async for _ in emsp.client.pull("http://peer.test/e?offset=0", token="t"):
                pass
        empty = {0: ([], "http://peer.test/x?offset=1")}
        router.add_handler("peer.test", _page_handler(empty))
        with pytest.raises(PaginationLoopError, match="empty page"):
            async for _ in emsp.client.pull("http://peer.test/x?offset=0", token="t"):
                pass

    asyncio.run(run())


def test_client_retries_5xx_and_timeouts_with_backoff_then_gives_up(router: HostRouter) -> None:
    async def run() -> None:
        _, emsp, _, _ = await _registered(router)
        calls: list[str] = []

        def flaky(request: httpx.Request) -> httpx.Response:
            calls.append(request.headers[h.REQUEST_ID])
            if len(calls) == 1:
                raise httpx.ReadTimeout("slow", request=request)
            if len(calls) < 4:
                return httpx.Response(503, text="busy")
            return httpx.Response(200, json={"status_code": 1000, "timestamp": "t", "data": [{"id": 1}]})

        router.add_handler("flaky.test", flaky)
        assert await emsp.client.call("GET", "http://flaky.test/x", token="t") == [{"id": 1}]
        assert len(calls) == 4 and len(set(calls)) == 4  # a new X-Request-ID per attempt
        router.add_handler("down.test", lambda r: httpx.Response(502))
        from chargeguard.sources.ocpi.connector.envelope import PartnerError

        with pytest.raises(PartnerError, match="after 4 attempts"):
            await emsp.client.call("GET", "http://down.test/x", token="t")
        posts: list[int] = []

        def down_post(r: httpx.Request) -> httpx.Response:
            posts.append(1)
            return httpx.Response(500, json={"status_code": 3000, "timestamp": "t"})

        router.add_handler("post.test", down_post)
        with pytest.raises(PartnerError, match="3000"):
            await emsp.client.call("POST", "http://post.test/x", token="t", json={})
        assert posts == [1]  # a non-idempotent POST is not repeated after the partner answered

    asyncio.run(run())


def test_receiver_pseudonymises_validates_and_keeps_duplicates_apart(router: HostRouter) -> None:
    async def run() -> None:
        cpo, emsp, _, to_emsp = await _registered(router)
        received: list[tuple[str, Any]] = []
        emsp.on_received = lambda module, obj, partner: received.append((module, obj))
        with structlog.testing.capture_logs() as logs:
            url = "http://emsp.test/ocpi/2.2.1/emsp/cdrs"
            ok = await _call(router, "POST", url, to_emsp, json=a_cdr(1))
            assert ok.json()["status_code"] == 1000
            assert ok.headers["Location"] == "http://emsp.test/ocpi/2.2.1/emsp/cdrs/NL/CPO/CDR1"
            same = await _call(router, "POST", url, to_emsp, json=a_cdr(1))
            assert same.json()["status_code"] == 1000  # an identical resend is idempotent
            other = await _call(router, "POST", url, to_emsp, json=a_cdr(1, total_energy=99.0))
            assert other.json()["status_code"] == 2001 and "already exists" in other.json()["status_message"]
            assert [m for m, _ in received] == ["cdrs", "cdrs.duplicate_id"]
            stored = emsp.received.get("cdrs", "NL", "CPO", "CDR1")
            assert (
                stored.cdr_token.uid == PSEUDONYMISER(RAW_UID)
                and stored.cdr_token.contract_id != RAW_CONTRACT
            )
            got = await _call(router, "GET", ok.headers["Location"], to_emsp)
            assert RAW_UID not in got.text and got.json()["data"]["total_energy"] == 15.342
            # malformed: missing field, wrong type, empty charging periods, wrong party
            for broken in (
                {k: v for k, v in a_cdr(2).items() if k != "currency"},
                a_cdr(3, total_energy="lots"),
                a_cdr(4, charging_periods=[]),
                a_cdr(5, party=("FR", "XXX")),
            ):
                resp = await _call(router, "POST", url, to_emsp, json=broken)
                assert resp.json()["status_code"] == 2001, broken["id"]
            not_json = await _call(router, "POST", url, to_emsp, content=b"{nope")
            assert not_json.json()["status_code"] == 2001
            # locations: PUT, URL/object mismatch, PATCH, unknown PATCH
            loc_url = "http://emsp.test/ocpi/2.2.1/emsp/locations/NL/CPO/LOC0001"
            assert (await _call(router, "PUT", loc_url, to_emsp, json=a_location(1))).json()[
                "status_code"
            ] == 1000
            mismatch = await _call(router, "PUT", loc_url, to_emsp, json=a_location(2))
            assert mismatch.json()["status_code"] == 2001
            patch = {"name": "Centraal", "last_updated": "2026-02-01T00:00:00Z"}
            assert (await _call(router, "PATCH", loc_url, to_emsp, json=patch)).json()["status_code"] == 1000
            assert emsp.received.get("locations", "NL", "CPO", "LOC0001").name == "Centraal"
            unknown = await _call(router, "PATCH", loc_url.replace("LOC0001", "LOC9"), to_emsp, json=patch)
            assert unknown.status_code == 404 and unknown.json()["status_code"] == 2003
            no_module = await _call(
                router, "GET", "http://emsp.test/ocpi/2.2.1/emsp/widgets/NL/CPO/1", to_emsp
            )
            assert no_module.status_code == 404 and no_module.json()["status_code"] == 2000
        with structlog.testing.capture_logs() as token_logs:
            # tokens pushed to the CPO: uid in the URL and the body become pseudonyms before storage
            tok_url = f"http://cpo.test/ocpi/2.2.1/cpo/tokens/DE/EMS/{RAW_UID}?type=RFID"
            to_cpo = emsp.store.outgoing(next(emsp.store.partners()).partner_id)
            assert (await _call(router, "PUT", tok_url, to_cpo, json=a_token())).json()["status_code"] == 1000
            kept = cpo.received.get("tokens", "DE", "EMS", PSEUDONYMISER(RAW_UID))
            assert isinstance(kept, Token) and kept.visual_number != "DF000-2001-8999-1"
            patch_t = {"valid": False, "last_updated": "2026-02-01T00:00:00Z"}
            assert (await _call(router, "PATCH", tok_url, to_cpo, json=patch_t)).json()["status_code"] == 1000
            again = await _call(router, "GET", tok_url, to_cpo)
            assert again.json()["data"]["valid"] is False and RAW_UID not in again.text
        rendered = repr(logs) + repr(token_logs) + repr(received)
        assert any(e.get("path", "").endswith("/[redacted:token]") for e in token_logs)
        assert RAW_UID not in rendered and RAW_CONTRACT not in rendered

    asyncio.run(run())


def _publish_token(emsp: Connector, **kw: Any) -> None:
    token = msgspec.json.decode(msgspec.json.encode(a_token(**kw)), type=Token)
    from chargeguard.sources.ocpi.importer import pseudonymise

    emsp.published.put("tokens", pseudonymise(token, PSEUDONYMISER))


def test_real_time_authorisation_uses_the_fraud_decision(router: HostRouter) -> None:
    async def run() -> None:
        alerts: dict[str, list[str]] = {}
        seen: list[AuthorizeRequest] = []
        _, emsp, _, to_emsp = await _registered(router)

        def decide(request: AuthorizeRequest) -> Decision | None:
            seen.append(request)
            return emsp.fallback(request) if not alerts.get(request.token) else Decision("BLOCKED", "alerts")

        emsp.decision = decide
        _publish_token(emsp)
        _publish_token(emsp, uid="11223344", valid=False)
        url = f"http://emsp.test/ocpi/2.2.1/emsp/tokens/{RAW_UID}/authorize?type=RFID"
        with structlog.testing.capture_logs() as logs:
            ok = await _call(
                router, "POST", url, to_emsp, json={"location_id": "LOC0001", "evse_uids": ["E1"]}
            )
            body = ok.json()
            assert body["status_code"] == 1000 and body["data"]["allowed"] == "ALLOWED"
            assert body["data"]["token"]["uid"] == RAW_UID  # echoes what the CPO sent; nothing else raw
            assert body["data"]["token"]["contract_id"] != RAW_CONTRACT
            assert body["data"]["location"] == {"location_id": "LOC0001", "evse_uids": ["E1"]}
            assert seen[-1].token == PSEUDONYMISER(RAW_UID) and seen[-1].location == body["data"]["location"]
            alerts[PSEUDONYMISER(RAW_UID)] = ["token.velocity"]
            blocked = await _call(router, "POST", url, to_emsp)
            assert blocked.json()["data"]["allowed"] == "BLOCKED"
            invalid = await _call(router, "POST", url.replace(RAW_UID, "11223344"), to_emsp)
            assert invalid.json()["data"]["allowed"] == "BLOCKED"
            unknown = await _call(router, "POST", url.replace(RAW_UID, "DEADBEEF99"), to_emsp)
            assert unknown.status_code == 404 and unknown.json()["status_code"] == 2004
            wrong_type = await _call(router, "POST", url.replace("RFID", "APP_USER"), to_emsp)
            assert wrong_type.json()["status_code"] == 2004
            bad_type = await _call(router, "POST", url.replace("RFID", "NFC"), to_emsp)
            assert bad_type.json()["status_code"] == 2001
            bad_body = await _call(router, "POST", url, to_emsp, json={"evse_uids": []})
            assert bad_body.json()["status_code"] == 2001
        access = [e for e in logs if e["event"] == "ocpi.http.access"]
        assert access and all(RAW_UID not in e["path"] for e in access)
        assert RAW_UID not in repr(logs)

    asyncio.run(run())


def test_slow_fraud_decision_falls_back_within_budget(router: HostRouter) -> None:
    async def run() -> None:
        _, emsp, _, to_emsp = await _registered(router, authorize_budget_s=0.05)

        def slow(request: AuthorizeRequest) -> Decision | None:
            time.sleep(0.5)
            return Decision("BLOCKED", "too late")

        emsp.decision = slow
        _publish_token(emsp)
        started = time.perf_counter()
        resp = await _call(
            router, "POST", f"http://emsp.test/ocpi/2.2.1/emsp/tokens/{RAW_UID}/authorize", to_emsp
        )
        assert time.perf_counter() - started < 0.4
        data = resp.json()["data"]
        assert data["allowed"] == "ALLOWED" and "over time budget" in data["info"]["text"]

    asyncio.run(run())


def test_tariff_delete_and_repository_index(router: HostRouter) -> None:
    async def run() -> None:
        _, _, _, to_emsp = await _registered(router)
        tariff = {
            "country_code": "NL",
            "party_id": "CPO",
            "id": "T1",
            "currency": "EUR",
            "elements": [{"price_components": [{"type": "ENERGY", "price": 0.25, "step_size": 1}]}],
            "last_updated": "2026-01-01T00:00:00Z",
        }
        url = "http://emsp.test/ocpi/2.2.1/emsp/tariffs/NL/CPO/T1"
        assert (await _call(router, "PUT", url, to_emsp, json=tariff)).json()["status_code"] == 1000
        got = await _call(router, "GET", url, to_emsp)
        assert got.json()["data"]["elements"][0]["price_components"][0]["price"] == 0.25  # a number, exact
        assert (await _call(router, "DELETE", url, to_emsp)).json()["status_code"] == 1000
        assert (await _call(router, "GET", url, to_emsp)).status_code == 404
        assert (await _call(router, "DELETE", url, to_emsp)).json()["status_code"] == 2003

    asyncio.run(run())
    repo = ObjectRepository()
    first = msgspec.convert(a_location(1, party=("NL", "AAA")), type=Location)
    second = msgspec.convert(a_location(1, party=("BE", "BBB")), type=Location)
    repo.put("locations", first)
    repo.put("locations", second)
    assert repo.find("locations", "loc0001") == first
    repo.delete("locations", ("NL", "AAA", "LOC0001"))
    assert repo.find("locations", "LOC0001") == second and repo.count("locations") == 1
    small = ObjectRepository(max_objects=1)
    small.put("locations", first)
    with pytest.raises(OverflowError):
        small.put("locations", second)


def test_location_receiver_at_evse_and_connector_level(router: HostRouter) -> None:
    async def run() -> None:
        _, emsp, _, to_emsp = await _registered(router)
        base = "http://emsp.test/ocpi/2.2.1/emsp/locations/NL/CPO/LOC0001"
        evse2 = dict(a_location(2)["evses"][0], uid="EVSE2", last_updated="2026-03-01T00:00:00Z")
        early = await _call(router, "PUT", base + "/EVSE2", to_emsp, json=evse2)
        assert early.status_code == 404 and early.json()["status_code"] == 2003  # no Location yet
        assert (await _call(router, "PUT", base, to_emsp, json=a_location(1))).json()["status_code"] == 1000
        assert (await _call(router, "PUT", base + "/EVSE2", to_emsp, json=evse2)).json()[
            "status_code"
        ] == 1000
        stored = emsp.received.get("locations", "NL", "CPO", "LOC0001")
        assert [e.uid for e in stored.evses] == ["EVSE1", "EVSE2"]
        assert stored.last_updated.isoformat().startswith("2026-03-01")
        status = {"status": "CHARGING", "last_updated": "2026-03-02T00:00:00Z"}
        assert (await _call(router, "PATCH", base + "/EVSE1", to_emsp, json=status)).json()[
            "status_code"
        ] == 1000
        got = await _call(router, "GET", base + "/EVSE1", to_emsp)
        assert got.json()["data"]["status"] == "CHARGING"
        connector = dict(evse2["connectors"][0], id="2", last_updated="2026-03-03T00:00:00Z")
        put_c = await _call(router, "PUT", base + "/EVSE1/2", to_emsp, json=connector)
        assert put_c.json()["status_code"] == 1000
        patch_c = {"max_amperage": 63, "last_updated": "2026-03-04T00:00:00Z"}
        assert (await _call(router, "PATCH", base + "/EVSE1/2", to_emsp, json=patch_c)).json()[
            "status_code"
        ] == 1000
        one = await _call(router, "GET", base + "/EVSE1/2", to_emsp)
        assert one.json()["data"]["max_amperage"] == 63
        # refused without changing what is stored: bad status value, uid mismatch, unknown connector
        before = emsp.received.get("locations", "NL", "CPO", "LOC0001")
        bad = {"status": "ON_FIRE", "last_updated": "2026-03-05T00:00:00Z"}
        assert (await _call(router, "PATCH", base + "/EVSE1", to_emsp, json=bad)).json()[
            "status_code"
        ] == 2001
        mismatch = await _call(router, "PUT", base + "/EVSE9", to_emsp, json=evse2)
        assert mismatch.json()["status_code"] == 2001
        missing = await _call(router, "PATCH", base + "/EVSE1/7", to_emsp, json=patch_c)
        assert missing.status_code == 404
        assert emsp.received.get("locations", "NL", "CPO", "LOC0001") == before

    asyncio.run(run())
