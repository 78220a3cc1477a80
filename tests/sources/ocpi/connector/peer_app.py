# ruff: noqa: UP017 - runs on the peer's Python 3.10, which has no datetime.UTC
"""An OCPI 2.2.1 peer built on extrawest-ocpi (py_ocpi), run unmodified in its own venv by test_peer_extrawest.

Not imported by chargeguard or collected by pytest. It serves over TLS (the library writes https:// into its
version URLs and Link headers), acts as CPO (locations) and eMSP (tokens, authorize), and, through /peer/*
routes, as a client that registers with chargeguard, pulls its locations and asks it for authorisation, checking
every answer against the library's pydantic models.

argv: certfile keyfile token_a n_locations. Prints the port on stdout, then serves.
"""

import base64
import json
import os
import secrets
import socket
import sys
from datetime import datetime, timezone

sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
sock.bind(("127.0.0.1", 0))
PORT = sock.getsockname()[1]
os.environ.update(
    OCPI_HOST=f"127.0.0.1:{PORT}",
    PROTOCOL="https",
    COUNTRY_CODE="NL",
    PARTY_ID="PEE",
    ENVIRONMENT="production",
)

import httpx  # noqa: E402
import uvicorn  # noqa: E402
from fastapi import Request  # noqa: E402
from py_ocpi import get_application  # noqa: E402
from py_ocpi.core.authentication.authenticator import Authenticator  # noqa: E402
from py_ocpi.core.crud import Crud  # noqa: E402
from py_ocpi.core.enums import Action, ModuleID, RoleEnum  # noqa: E402
from py_ocpi.modules.credentials.v_2_2_1.schemas import Credentials  # noqa: E402
from py_ocpi.modules.locations.v_2_2_1.schemas import Location  # noqa: E402
from py_ocpi.modules.tokens.v_2_2_1.schemas import AuthorizationInfo  # noqa: E402
from py_ocpi.modules.versions.enums import VersionNumber  # noqa: E402

CERT, KEY, TOKEN_A, N_LOCATIONS = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
BASE = f"https://127.0.0.1:{PORT}"
VERSIONS_URL = f"{BASE}/ocpi/versions"
VALID_A = {TOKEN_A}
VALID_C: set = set()
STATE: dict = {"client_token": None, "cg_token": None, "cg_endpoints": [], "authorize_calls": []}
NOW = datetime(2026, 1, 1, tzinfo=timezone.utc).isoformat()
ROLES = [
    {"role": r, "party_id": "PEE", "country_code": "NL", "business_details": {"name": "extrawest peer"}}
    for r in ("CPO", "EMSP")
]


def location(i: int) -> dict:
    return {
        "country_code": "NL",
        "party_id": "PEE",
        "id": f"PEER{i:03d}",
        "publish": True,
        "address": "Peerstraat 1",
        "city": "Delft",
        "country": "NLD",
        "coordinates": {"latitude": "52.011500", "longitude": "4.359300"},
        "time_zone": "Europe/Amsterdam",
        "last_updated": NOW,
        "evses": [
            {
                "uid": f"PE{i}",
                "status": "AVAILABLE",
                "last_updated": NOW,
                "connectors": [
                    {
                        "id": "1",
                        "standard": "IEC_62196_T2",
                        "format": "SOCKET",
                        "power_type": "AC_3_PHASE",
                        "max_voltage": 230,
                        "max_amperage": 16,
                        "last_updated": NOW,
                    }
                ],
            }
        ],
    }


LOCATIONS = [location(i) for i in range(N_LOCATIONS)]
TOKENS = {
    uid: {
        "country_code": "NL",
        "party_id": "PEE",
        "uid": uid,
        "type": "RFID",
        "contract_id": f"NL-PEE-C{uid}",
        "issuer": "Peer",
        "valid": valid,
        "whitelist": "ALLOWED",
        "last_updated": NOW,
    }
    for uid, valid in (("AA11BB22", True), ("CC33DD44", False))
}


class PeerAuthenticator(Authenticator):
    @classmethod
    async def get_valid_token_c(cls) -> list:
        return list(VALID_C)

    @classmethod
    async def get_valid_token_a(cls) -> list:
        return list(VALID_A)


def own_credentials(token: str) -> dict:
    return {"token": token, "url": VERSIONS_URL, "roles": ROLES}


class PeerCrud(Crud):
    @classmethod
    async def get(cls, module, role, id, *args, **kwargs):
        if module == ModuleID.credentials_and_registration:
            return own_credentials(id) if id in VALID_C else None
        if (
            module == ModuleID.tokens
        ):  # the library lower-cases CiStrings; OCPI compares them case-insensitively
            return TOKENS.get(str(id).upper())
        if module == ModuleID.locations:
            return next((loc for loc in LOCATIONS if loc["id"].upper() == str(id).upper()), None)
        return None

    @classmethod
    async def list(cls, module, role, filters, *args, **kwargs):
        items = LOCATIONS if module == ModuleID.locations else list(TOKENS.values())
        offset, limit = filters["offset"], filters["limit"]
        page = items[offset : offset + limit]
        return page, len(items), offset + limit >= len(items)

    @classmethod
    async def create(cls, module, role, data, *args, **kwargs):
        STATE["client_token"] = data["credentials"]["token"]  # token B: to call the registering party
        STATE["client_endpoints"] = data["endpoints"]
        VALID_A.discard(kwargs["auth_token"])
        token_c = secrets.token_hex(16)
        VALID_C.add(token_c)
        return own_credentials(token_c)

    @classmethod
    async def update(cls, module, role, data, id, *args, **kwargs):
        STATE["client_token"] = data["credentials"]["token"]
        VALID_C.discard(kwargs["auth_token"])
        token_c = secrets.token_hex(16)
        VALID_C.add(token_c)
        return own_credentials(token_c)

    @classmethod
    async def delete(cls, module, role, id, *args, **kwargs):
        VALID_C.discard(kwargs["auth_token"])

    @classmethod
    async def do(cls, module, role, action, *args, data=None, **kwargs):
        if action == Action.authorize_token:
            token = TOKENS[str(data["token_uid"]).upper()]
            STATE["authorize_calls"].append(data)
            return {
                "allowed": "ALLOWED" if token["valid"] else "BLOCKED",
                "token": token,
                "authorization_reference": "peer-ref-1",
            }
        return None


app = get_application(
    version_numbers=[VersionNumber.v_2_2_1],
    roles=[RoleEnum.cpo, RoleEnum.emsp],
    crud=PeerCrud,
    modules=[ModuleID.credentials_and_registration, ModuleID.locations, ModuleID.tokens],
    authenticator=PeerAuthenticator,
)


def auth(token: str) -> dict:
    return {"Authorization": "Token " + base64.b64encode(token.encode()).decode()}


def endpoint(identifier: str, role: str) -> str:
    return next(
        e["url"] for e in STATE["cg_endpoints"] if e["identifier"] == identifier and e["role"] == role
    )


@app.get("/peer/state")
async def peer_state() -> dict:
    return {
        "registered_by_client": STATE["client_token"] is not None,
        "valid_c": len(VALID_C),
        "valid_a": len(VALID_A),
        "authorize_calls": STATE["authorize_calls"],
    }


@app.post("/peer/register")
async def peer_register(request: Request) -> dict:
    """The peer registers with chargeguard: its TOKEN_B out, chargeguard's TOKEN_C back."""
    body = await request.json()
    token_b = secrets.token_hex(16)
    VALID_C.add(token_b)
    async with httpx.AsyncClient() as http:
        versions = (await http.get(body["versions_url"], headers=auth(body["token_a"]))).json()["data"]
        details_url = next(v["url"] for v in versions if v["version"] == "2.2.1")
        details = (await http.get(details_url, headers=auth(body["token_a"]))).json()["data"]
        STATE["cg_endpoints"] = details["endpoints"]
        creds = Credentials(token=token_b, url=VERSIONS_URL, roles=ROLES)
        answer = await http.post(
            endpoint("credentials", "RECEIVER"), headers=auth(body["token_a"]), content=creds.json()
        )
        parsed = Credentials(**answer.json()["data"])
        again = await http.post(
            endpoint("credentials", "RECEIVER"), headers=auth(parsed.token), content=creds.json()
        )
    STATE["cg_token"] = parsed.token
    return {
        "status_code": answer.json()["status_code"],
        "roles": [r.role for r in parsed.roles],
        "post_again_http": again.status_code,
    }


@app.post("/peer/pull")
async def peer_pull(request: Request) -> dict:
    """The peer pulls chargeguard's locations, following Link headers; each object checked by the library model."""
    body = await request.json()
    url = endpoint("locations", "SENDER") + f"?limit={body['limit']}"
    ids, pages, totals, limits = [], 0, set(), set()
    async with httpx.AsyncClient() as http:
        while url:
            resp = await http.get(url, headers=auth(STATE["cg_token"]))
            pages += 1
            totals.add(resp.headers.get("X-Total-Count"))
            limits.add(resp.headers.get("X-Limit"))
            ids += [Location(**obj).id for obj in resp.json()["data"]]
            link = resp.headers.get("Link", "")
            url = link[link.index("<") + 1 : link.index(">")] if 'rel="next"' in link else None
    return {"ids": ids, "pages": pages, "totals": sorted(totals), "limits": sorted(limits)}


@app.post("/peer/authorize")
async def peer_authorize(request: Request) -> dict:
    """The peer, as CPO, asks chargeguard (eMSP) for real-time authorisation; answer checked by the library."""
    body = await request.json()
    url = endpoint("tokens", "SENDER").rstrip("/") + f"/{body['uid']}/authorize?type=RFID"
    async with httpx.AsyncClient() as http:
        resp = await http.post(url, headers=auth(STATE["cg_token"]), json={"location_id": "PEER001"})
    payload = resp.json()
    if payload["status_code"] != 1000:
        return {"http": resp.status_code, "status_code": payload["status_code"]}
    info = AuthorizationInfo(**payload["data"])
    return {
        "http": resp.status_code,
        "status_code": 1000,
        "allowed": info.allowed.value,
        "uid": info.token.uid,
        "request_id": resp.headers.get("X-Request-ID"),
    }


if __name__ == "__main__":
    print(json.dumps({"port": PORT}), flush=True)
    config = uvicorn.Config(app, ssl_certfile=CERT, ssl_keyfile=KEY, log_level="warning")
    uvicorn.Server(config).run(sockets=[sock])
