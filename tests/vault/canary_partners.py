"""Canary proof helpers: an OCPI partner talking real HTTP to ``chargeguard serve``, and partner files for reconcile.

Used by tests/test_canary_full.py. The partner registers with the served connector (credentials handshake with
TOKEN_A, its versions endpoint served from a thread in this process), pushes a token, a session and a CDR
carrying canary uids and contract ids, pulls them and the platform's published objects back, asks for a
real-time authorisation, and sends requests the connector must refuse with a canary in the URL or body. Every
response (status, headers, body) is written to ``ocpi-responses.jsonl``; the request side never is (the test
knows the raw tokens, the product must not echo them).
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Protocol

import httpx
import orjson

from chargeguard.reconcile.generate import _cdr
from chargeguard.sources.ocpi.connector.config import load_serve_config
from chargeguard.sources.ocpi.connector.headers import encode_token
from chargeguard.sources.ocpi.connector.store import PartnerStore
from chargeguard.vault.keys import LocalKeyFileProvider, write_new_master_key_file
from vault.canary_zygote import Zygote
from waiting import answers, wait_until

# canaries that only the OCPI partner and the reconcile files carry
PUSHED_UID = "04CA7A10C0FFEE"  # a token the partner (as eMSP) pushes to the platform's CPO interface
PUSHED_CONTRACT = "NL-PTN-C00CANARY-7"
PUSHED_VISUAL = "VISUAL-CANARY-0042"
SESSION_UID = "04CA7A10BEEF01"  # the card in the session and CDR the partner (as CPO) pushes
PUBLISHED_UID = "04CA7A10D00D02"  # a token the platform publishes as eMSP (its own file)
PUBLISHED_CONTRACT = "DE-CGD-C77CANARY-3"
RECONCILE_UIDS = ("04CA7A10FACE03", "04CA7A10FEED04")
RECONCILE_CONTRACT = "NL-EMS-C11CANARY-5"
OCPI_CANARIES = (
    PUSHED_UID,
    PUSHED_CONTRACT,
    PUSHED_VISUAL,
    SESSION_UID,
    PUBLISHED_UID,
    PUBLISHED_CONTRACT,
    *RECONCILE_UIDS,
    RECONCILE_CONTRACT,
)

PARTY = ("NL", "PTN")
BASE = "/ocpi/2.2.1"
NOW = "2026-03-01T08:00:00Z"


class Runner(Protocol):
    """What the canary test's ``Run`` offers: a process wrapper writing each process's output under ``out``."""

    out: Path
    zygote: Zygote

    def spawn(self, *args: str, env: dict[str, str] | None = None) -> tuple[int, Path]: ...


def _token(uid: str, contract: str, party: tuple[str, str], visual: str | None = None) -> dict[str, Any]:
    token: dict[str, Any] = {
        "country_code": party[0],
        "party_id": party[1],
        "uid": uid,
        "type": "RFID",
        "contract_id": contract,
        "issuer": "Canary Mobility",
        "valid": True,
        "whitelist": "ALLOWED",
        "last_updated": NOW,
    }
    if visual is not None:
        token["visual_number"] = visual
    return token


def _cdr_with(i: int, uid: str, contract: str, party: tuple[str, str] = PARTY) -> dict[str, Any]:
    cdr: dict[str, Any] = _cdr(i, random.Random(i), 10)
    cdr["country_code"], cdr["party_id"] = party
    cdr["id"] = f"CDR-CANARY-{i}"
    cdr["cdr_token"] = {**cdr["cdr_token"], "uid": uid, "contract_id": contract}
    return cdr


def _session(cdr: dict[str, Any]) -> dict[str, Any]:
    return {
        "country_code": cdr["country_code"],
        "party_id": cdr["party_id"],
        "id": "SESSION-CANARY-1",
        "start_date_time": cdr["start_date_time"],
        "end_date_time": cdr["end_date_time"],
        "kwh": cdr["total_energy"],
        "cdr_token": cdr["cdr_token"],
        "auth_method": "WHITELIST",
        "location_id": cdr["cdr_location"]["id"],
        "evse_uid": cdr["cdr_location"]["evse_uid"],
        "connector_id": "1",
        "currency": "EUR",
        "status": "COMPLETED",
        "last_updated": cdr["last_updated"],
    }


class _PartnerVersions(BaseHTTPRequestHandler):
    """The partner's versions and version details, which the platform reads during the handshake."""

    def do_GET(self) -> None:
        base = f"http://127.0.0.1:{self.server.server_address[1]}"
        data: Any
        if self.path == "/versions":
            data = [{"version": "2.2.1", "url": f"{base}/2.2.1"}]
        elif self.path == "/2.2.1":
            data = {
                "version": "2.2.1",
                "endpoints": [
                    {"identifier": "credentials", "role": "RECEIVER", "url": f"{base}/2.2.1/credentials"},
                    {"identifier": "tokens", "role": "SENDER", "url": f"{base}/2.2.1/tokens"},
                    {"identifier": "cdrs", "role": "SENDER", "url": f"{base}/2.2.1/cdrs"},
                ],
            }
        else:
            self.send_error(404)
            return
        body = orjson.dumps({"data": data, "status_code": 1000, "timestamp": NOW})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return


@contextmanager
def _partner_versions() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _PartnerVersions)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/versions"
    finally:
        server.shutdown()
        server.server_close()


def write_serve_inputs(inputs: Path, keys: Path, out: Path, port: int) -> Path:
    """The serve config (partners file under ``out``) and the platform's published tokens, sessions and CDRs."""
    master = keys / "ocpi-master.key"
    write_new_master_key_file(master)
    own = ("DE", "CGD")
    (inputs / "published-tokens.jsonl").write_bytes(
        orjson.dumps(_token(PUBLISHED_UID, PUBLISHED_CONTRACT, own, visual=PUBLISHED_UID)) + b"\n"
    )
    cdr = _cdr_with(7, PUBLISHED_UID, PUBLISHED_CONTRACT, own)
    (inputs / "published-cdrs.jsonl").write_bytes(orjson.dumps(cdr) + b"\n")
    (inputs / "published-sessions.jsonl").write_bytes(orjson.dumps(_session(cdr)) + b"\n")
    config = inputs / "ocpi.toml"
    config.write_text(
        f'[ocpi]\nbase_url = "http://127.0.0.1:{port}"\ncountry_code = "DE"\nparty_id = "CGD"\n'
        f'port = {port}\npartners_file = "{out / "ocpi-partners.json"}"\nmaster_key_file = "{master}"\n'
        f'[ocpi.publish]\ntokens = "{inputs / "published-tokens.jsonl"}"\n'
        f'sessions = "{inputs / "published-sessions.jsonl"}"\ncdrs = "{inputs / "published-cdrs.jsonl"}"\n',
        encoding="utf-8",
    )
    return config


class _Recorder:
    """Sends requests to the platform and writes every response (never the request) to a JSON Lines file."""

    def __init__(self, base_url: str, target: Path) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=30)
        self.target = target.open("ab")
        self.statuses: list[int] = []

    def __call__(
        self,
        method: str,
        path: str,
        token: str,
        body: Any = None,
        echoed_uid: str | None = None,
        **params: str,
    ) -> httpx.Response:
        """One request; ``echoed_uid``: the answer must echo this uid (the caller's own) as ``data.token.uid``,
        which is then the one value not written for the search (see ``_partner_session``)."""
        response = self.http.request(
            method,
            path,
            params=params or None,
            headers={"Authorization": encode_token(token)},
            content=body if body is None or isinstance(body, bytes) else orjson.dumps(body),
        )
        self.statuses.append(response.status_code)
        text = response.text
        if echoed_uid is not None:
            envelope = response.json()
            assert envelope["data"]["token"]["uid"] == echoed_uid, text
            envelope["data"]["token"]["uid"] = "<the uid of the request URL, echoed to its sender>"
            text = orjson.dumps(envelope).decode()
            assert text.count('"uid"') == 1, text  # nothing else in the answer is exempt
        record = {"status": response.status_code, "headers": dict(response.headers), "body": text}
        self.target.write(orjson.dumps(record) + b"\n")
        return response

    def close(self) -> None:
        self.http.close()
        self.target.close()


def _invite(config: Path) -> str:
    """What ``chargeguard serve --invite`` does (tests/cli/test_serve_cli.py runs that command): a partner
    and its TOKEN_A in the partners file. Done in this process to spare one interpreter start (~5 CPU-s)."""
    serve_config = load_serve_config(config)
    assert serve_config.partners_file is not None and serve_config.master_key_file is not None
    store = PartnerStore(
        serve_config.partners_file, key_provider=LocalKeyFileProvider(serve_config.master_key_file)
    )
    partner = store.create_partner("canary-partner")
    return store.issue_token(partner.partner_id, "registration", ttl=timedelta(hours=1))


def drive_ocpi(run: Runner, config: Path, port: int) -> list[int]:
    """Invite a partner, serve, and run the partner's session against the platform; returns the HTTP statuses."""
    token_a = _invite(config)
    base_url = f"http://127.0.0.1:{port}"
    pid, rc = run.spawn("serve", "--config", str(config))
    send = _Recorder(base_url, run.out / "ocpi-responses.jsonl")
    try:
        wait_until(
            lambda: answers(base_url + "/ocpi/versions"),
            died=lambda: None if Zygote.alive(pid) else "chargeguard serve exited before serving",
            what="serve",
        )
        _partner_session(send, token_a)
    finally:
        send.close()
        code = run.zygote.stop(pid, rc)
    assert code in (0, None), rc.with_suffix(".stderr").read_text(errors="replace")[-1500:]
    return send.statuses


def _partner_session(send: _Recorder, token_a: str) -> None:
    with _partner_versions() as versions_url:
        roles = [
            {"role": role, "party_id": PARTY[1], "country_code": PARTY[0], "business_details": {"name": "P"}}
            for role in ("CPO", "EMSP")
        ]
        answer = send(
            "POST",
            BASE + "/credentials",
            token_a,
            {"token": "partner-token-b", "url": versions_url, "roles": roles},
        )
        assert answer.status_code == 200, answer.text
        token_c = str(answer.json()["data"]["token"])
    # the partner as eMSP: a token to the platform's CPO interface; read back by its raw uid (in the URL)
    pushed = _token(PUSHED_UID, PUSHED_CONTRACT, PARTY, visual=PUSHED_VISUAL)
    path = f"{BASE}/cpo/tokens/{PARTY[0]}/{PARTY[1]}/{PUSHED_UID}"
    assert send("PUT", path, token_c, pushed, type="RFID").status_code == 200
    assert send("PATCH", path, token_c, {"valid": False, "last_updated": NOW}, type="RFID").status_code == 200
    got = send("GET", path, token_c, type="RFID")
    assert got.status_code == 200 and got.json()["data"]["valid"] is False, got.text
    # the partner as CPO: a session and a CDR with a canary card to the platform's eMSP interface
    cdr = _cdr_with(1, SESSION_UID, PUSHED_CONTRACT)
    session = _session(cdr)
    spath = f"{BASE}/emsp/sessions/{PARTY[0]}/{PARTY[1]}/{session['id']}"
    assert send("PUT", spath, token_c, session).status_code == 200
    assert send("GET", spath, token_c).status_code == 200
    assert send("POST", BASE + "/emsp/cdrs", token_c, cdr).status_code in (200, 201)
    got = send("GET", f"{BASE}/emsp/cdrs/{PARTY[0]}/{PARTY[1]}/{cdr['id']}", token_c)
    assert got.status_code == 200, got.text
    # the platform's own published objects, and a real-time authorisation of its published token
    for module in ("cpo/sessions", "cpo/cdrs", "emsp/tokens"):
        listed = send("GET", f"{BASE}/{module}", token_c)
        assert listed.status_code == 200 and len(listed.json()["data"]) == 1, listed.text
    # OCPI 2.2.1 AuthorizationInfo.token is "the complete Token object for which this authorization was
    # requested": the connector (which keeps only pseudonyms) echoes the uid the CPO put in the URL, to that
    # CPO only, in this one field. That echo is checked, then left out of the search; the rest of the answer
    # (contract id, visual number) is searched like every other byte.
    auth = send(
        "POST",
        f"{BASE}/emsp/tokens/{PUBLISHED_UID}/authorize",
        token_c,
        {"location_id": "LOC1"},
        echoed_uid=PUBLISHED_UID,
        type="RFID",
    )
    assert auth.status_code == 200, auth.text
    # requests the connector refuses, each with a canary where a careless error message would echo it
    unknown = f"{BASE}/cpo/tokens/{PARTY[0]}/{PARTY[1]}/{PUSHED_UID}FF"
    assert _refused(send("GET", unknown, token_c, type="RFID"))
    too_long = _token(PUSHED_UID * 3, PUSHED_CONTRACT, PARTY)  # uid over CiString(36)
    assert _refused(send("PUT", f"{BASE}/cpo/tokens/NL/PTN/{PUSHED_UID * 3}", token_c, too_long, type="RFID"))
    broken = orjson.dumps(pushed)[:60]  # cut off inside the object, after the uid
    assert _refused(send("PUT", path, token_c, broken, type="RFID"))
    other = _token(SESSION_UID, PUSHED_CONTRACT, PARTY)
    assert _refused(send("PUT", path, token_c, other, type="RFID"))  # URL and body uids differ
    assert _refused(send("POST", f"{BASE}/emsp/tokens/{PUSHED_UID}/authorize", token_c, type="RFID"))


def _refused(response: httpx.Response) -> bool:
    """An OCPI refusal: an HTTP error, or an envelope whose status_code is not 1000 (OCPI 2xxx on HTTP 200)."""
    return response.status_code >= 400 or response.json().get("status_code") != 1000


def write_reconcile_inputs(inputs: Path) -> tuple[Path, Path]:
    """A CPO and an eMSP CDR file carrying canary uids and contract ids, one CDR disputed, one missing."""
    cpo = [_cdr_with(i, RECONCILE_UIDS[i % 2], RECONCILE_CONTRACT) for i in range(6)]
    emsp = [dict(c) for c in cpo[:5]]
    emsp[0] = {**emsp[0], "total_cost": {"excl_vat": 0.5}}
    cpo_path, emsp_path = inputs / "cpo-cdrs.jsonl", inputs / "emsp-cdrs.jsonl"
    cpo_path.write_bytes(b"".join(orjson.dumps(c) + b"\n" for c in cpo))
    emsp_path.write_bytes(b"".join(orjson.dumps(c) + b"\n" for c in emsp))
    return cpo_path, emsp_path
