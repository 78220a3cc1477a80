"""Shared helpers for the OCPI connector tests: two chargeguard platforms wired over an in-process HTTP router."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from chargeguard.sources.ocpi.connector.app import create_app
from chargeguard.sources.ocpi.connector.client import OcpiClient
from chargeguard.sources.ocpi.connector.context import Connector, ConnectorConfig
from chargeguard.sources.ocpi.connector.headers import Party
from chargeguard.sources.ocpi.connector.store import PartnerStore
from chargeguard.vault.pseudonyms import Pseudonymiser

PSEUDONYMISER = Pseudonymiser({1: b"k" * 32}, 1)
RAW_UID = "04A2B3C4D5E6F7"
RAW_CONTRACT = "DE8ACC12E46L89"


class HostRouter(httpx.AsyncBaseTransport):
    """Routes requests by host to ASGI apps (or handlers), so two platforms talk HTTP without sockets."""

    def __init__(self) -> None:
        self.routes: dict[str, httpx.AsyncBaseTransport] = {}
        self.seen: list[httpx.Request] = []

    def add(self, host: str, app: Any) -> None:
        self.routes[host] = httpx.ASGITransport(app=app)

    def add_handler(self, host: str, handler: Callable[[httpx.Request], httpx.Response]) -> None:
        self.routes[host] = httpx.MockTransport(handler)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        transport = self.routes.get(request.url.host)
        if transport is None:
            raise httpx.ConnectError(f"no route to {request.url.host}", request=request)
        return await transport.handle_async_request(request)


async def _no_sleep(_s: float) -> None:
    return None


def make_connector(
    router: HostRouter, host: str, party: Party, roles: set[str], **config: Any
) -> tuple[Connector, Any]:
    connector = Connector(
        config=ConnectorConfig(base_url=f"http://{host}", party=party, roles=frozenset(roles), **config),
        store=PartnerStore(),
        client=OcpiClient(party, transport=router, sleep=_no_sleep, backoff_s=0.001),
        pseudonymiser=PSEUDONYMISER,
    )
    app = create_app(connector)
    router.add(host, app)
    return connector, app


def a_location(
    i: int, updated: str = "2026-01-01T00:00:00Z", party: tuple[str, str] = ("NL", "CPO")
) -> dict[str, Any]:
    return {
        "country_code": party[0],
        "party_id": party[1],
        "id": f"LOC{i:04d}",
        "publish": True,
        "address": "Stationsplein 1",
        "city": "Utrecht",
        "country": "NLD",
        "coordinates": {"latitude": "52.089000", "longitude": "5.110000"},
        "time_zone": "Europe/Amsterdam",
        "evses": [
            {
                "uid": f"EVSE{i}",
                "status": "AVAILABLE",
                "connectors": [
                    {
                        "id": "1",
                        "standard": "IEC_62196_T2",
                        "format": "SOCKET",
                        "power_type": "AC_3_PHASE",
                        "max_voltage": 230,
                        "max_amperage": 32,
                        "last_updated": updated,
                    }
                ],
                "last_updated": updated,
            }
        ],
        "last_updated": updated,
    }


def a_token(
    uid: str = RAW_UID, *, valid: bool = True, party: tuple[str, str] = ("DE", "EMS")
) -> dict[str, Any]:
    return {
        "country_code": party[0],
        "party_id": party[1],
        "uid": uid,
        "type": "RFID",
        "contract_id": RAW_CONTRACT,
        "visual_number": "DF000-2001-8999-1",
        "issuer": "TheNewMotion",
        "valid": valid,
        "whitelist": "ALLOWED",
        "last_updated": "2026-01-01T00:00:00Z",
    }


def a_cdr(i: int = 1, party: tuple[str, str] = ("NL", "CPO"), **extra: Any) -> dict[str, Any]:
    return {
        "country_code": party[0],
        "party_id": party[1],
        "id": f"CDR{i}",
        "start_date_time": "2026-01-01T21:39:09Z",
        "end_date_time": "2026-01-01T23:37:32Z",
        "cdr_token": {
            "country_code": "DE",
            "party_id": "EMS",
            "uid": RAW_UID,
            "type": "RFID",
            "contract_id": RAW_CONTRACT,
        },
        "auth_method": "WHITELIST",
        "cdr_location": {
            "id": "LOC0001",
            "address": "Stationsplein 1",
            "city": "Utrecht",
            "country": "NLD",
            "coordinates": {"latitude": "52.089000", "longitude": "5.110000"},
            "evse_uid": "EVSE1",
            "evse_id": "NL*CPO*E1",
            "connector_id": "1",
            "connector_standard": "IEC_62196_T2",
            "connector_format": "SOCKET",
            "connector_power_type": "AC_3_PHASE",
        },
        "currency": "EUR",
        "charging_periods": [
            {"start_date_time": "2026-01-01T21:39:09Z", "dimensions": [{"type": "TIME", "volume": 1.973}]}
        ],
        "total_cost": {"excl_vat": 4.00, "incl_vat": 4.40},
        "total_energy": 15.342,
        "total_time": 1.973,
        "last_updated": "2026-01-01T23:38:00Z",
        **extra,
    }
