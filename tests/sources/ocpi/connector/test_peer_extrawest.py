"""Interop with a peer chargeguard did not write: an OCPI app on extrawest-ocpi (pydantic 1), over real HTTP(S).

The peer runs unmodified in its own virtual environment (cached under ~/.cache/chargeguard-test, or
$CHARGEGUARD_TEST_CACHE), started as a subprocess on 127.0.0.1 with an ephemeral port and a certificate made
here. Both directions: chargeguard registers with the peer, pulls its paginated locations and asks it for
authorisation; the peer registers with chargeguard, pulls chargeguard's locations and asks chargeguard for
authorisation (answers checked by the library's own models). When pip cannot install the peer the test fails,
unless CHARGEGUARD_TEST_OCPI_PEER=unavailable says the peer cannot be had on this machine.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import json
import os
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Coroutine, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
import msgspec
import pytest
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from chargeguard.sources.ocpi.connector.app import create_app
from chargeguard.sources.ocpi.connector.calls import pull_module, request_authorization
from chargeguard.sources.ocpi.connector.client import OcpiClient
from chargeguard.sources.ocpi.connector.context import Connector, ConnectorConfig
from chargeguard.sources.ocpi.connector.credentials import register, rotate, unregister
from chargeguard.sources.ocpi.connector.envelope import PartnerError
from chargeguard.sources.ocpi.connector.headers import Party
from chargeguard.sources.ocpi.connector.store import PartnerStore
from chargeguard.sources.ocpi.importer import pseudonymise
from chargeguard.sources.ocpi.models import Location, Token
from sources.ocpi.connector.ocpi_kit import PSEUDONYMISER, a_location, a_token

PEER_REQUIREMENTS = ("extrawest-ocpi==2025.7.16", "uvicorn>=0.23,<0.31")
PEER_TOKEN_A = "peer-registration-token-a"
N_PEER_LOCATIONS = 11
T = TypeVar("T")


def _peer_python() -> str:
    """Python 3.10 for the peer: extrawest-ocpi formats enums into URLs with f-strings, which since Python 3.11
    render as ``VersionNumber.v_2_2_1`` and break its Link headers; 3.10 is the oldest it supports."""
    override = os.environ.get("CHARGEGUARD_TEST_PEER_PYTHON")
    candidates = [override] if override else []
    candidates += [shutil.which("python3.10") or ""]
    candidates += sorted(str(p) for p in Path.home().glob(".pyenv/versions/3.10*/bin/python3.10"))
    candidates += sorted(str(p) for p in Path("/usr/bin").glob("python3.10"))
    for candidate in filter(None, candidates):
        probe = subprocess.run(
            [candidate, "-c", "import sys; print(sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if probe.returncode == 0 and probe.stdout.strip() == "(3, 10)":
            return candidate
    if os.environ.get("CHARGEGUARD_TEST_OCPI_PEER") == "unavailable":
        pytest.skip("CHARGEGUARD_TEST_OCPI_PEER=unavailable and no Python 3.10 for the extrawest-ocpi peer")
    pytest.fail("the extrawest-ocpi peer needs Python 3.10 (set CHARGEGUARD_TEST_PEER_PYTHON); none found")


def _peer_venv() -> Path:
    cache = Path(os.environ.get("CHARGEGUARD_TEST_CACHE", Path.home() / ".cache" / "chargeguard-test"))
    tag = hashlib.sha256(" ".join(("py3.10", *PEER_REQUIREMENTS)).encode()).hexdigest()[:12]
    venv = cache / f"extrawest-ocpi-{tag}"
    python = venv / "bin" / "python"
    if python.exists():
        return venv
    if os.environ.get("CHARGEGUARD_TEST_OCPI_PEER") == "unavailable":
        pytest.skip(
            "CHARGEGUARD_TEST_OCPI_PEER=unavailable: the extrawest-ocpi peer cannot be installed here"
        )
    building = cache / f".building-{tag}-{os.getpid()}"
    shutil.rmtree(building, ignore_errors=True)
    building.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([_peer_python(), "-m", "venv", str(building)], check=True, timeout=120)
    pip = subprocess.run(
        [str(building / "bin" / "pip"), "install", "-q", *PEER_REQUIREMENTS],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if pip.returncode != 0:
        shutil.rmtree(building, ignore_errors=True)
        pytest.fail(
            f"cannot install the OCPI peer ({', '.join(PEER_REQUIREMENTS)}) with pip: "
            f"{pip.stderr.strip()[-800:]}\nset CHARGEGUARD_TEST_OCPI_PEER=unavailable if it cannot be had here"
        )
    try:
        building.rename(venv)
    except OSError:  # another run finished first
        shutil.rmtree(building, ignore_errors=True)
    return venv


def _certificate(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "peer.pem", directory / "peer.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


class Platform:
    """chargeguard's OCPI app served by uvicorn on a loopback socket, with its own event loop in a thread."""

    def __init__(self, cafile: Path) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # TCP_NODELAY
        self.sock.bind(("127.0.0.1", 0))
        self.base = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.loop = asyncio.new_event_loop()
        party = Party("DE", "CGD")
        self.connector = Connector(
            config=ConnectorConfig(base_url=self.base, party=party, page_limit=50),
            store=PartnerStore(),
            client=OcpiClient(party, verify=ssl.create_default_context(cafile=str(cafile)), backoff_s=0.05),
            pseudonymiser=PSEUDONYMISER,
        )
        self.server = uvicorn.Server(
            uvicorn.Config(create_app(self.connector), log_level="warning", lifespan="off")
        )
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self.server.serve(sockets=[self.sock]))

    def run(self, coro: Coroutine[Any, Any, T], timeout_s: float = 30) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout_s)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.loop.close()


@pytest.fixture(scope="module")
def peer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    venv = _peer_venv()
    directory = tmp_path_factory.mktemp("peer")
    cert, key = _certificate(directory)
    script = Path(__file__).with_name("peer_app.py")
    stderr_path = directory / "peer.stderr"
    with stderr_path.open("w") as stderr:
        proc = subprocess.Popen(
            [
                str(venv / "bin" / "python"),
                str(script),
                str(cert),
                str(key),
                PEER_TOKEN_A,
                str(N_PEER_LOCATIONS),
            ],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            cwd=directory,
        )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            pytest.fail(f"the extrawest-ocpi peer did not start: {stderr_path.read_text()[-2000:]}")
        base = f"https://127.0.0.1:{json.loads(line)['port']}"
        ctx = ssl.create_default_context(cafile=str(cert))
        for _ in range(100):  # wait until it answers
            try:
                httpx.get(base + "/peer/state", verify=ctx, timeout=1)
                break
            except httpx.TransportError:
                threading.Event().wait(0.1)
        yield base, cert
    finally:
        proc.terminate()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


@pytest.fixture(scope="module")
def platform(peer: tuple[str, Path]) -> Iterator[Platform]:
    p = Platform(peer[1])
    yield p
    p.run(p.connector.client.aclose())
    p.stop()


def _peer_post(peer: tuple[str, Path], path: str, body: dict[str, Any]) -> dict[str, Any]:
    ctx = ssl.create_default_context(cafile=str(peer[1]))
    resp = httpx.post(peer[0] + path, json=body, verify=ctx, timeout=30)
    assert resp.status_code == 200, resp.text[:500]
    result: dict[str, Any] = resp.json()
    return result


def test_chargeguard_registers_pulls_and_authorises_at_the_peer(
    peer: tuple[str, Path], platform: Platform
) -> None:
    cg = platform.connector
    partner = platform.run(register(cg, "extrawest", peer[0] + "/ocpi/versions", PEER_TOKEN_A))
    assert partner.registered and Party("NL", "PEE") in partner.parties
    state = httpx.get(peer[0] + "/peer/state", verify=ssl.create_default_context(cafile=str(peer[1]))).json()
    assert state["registered_by_client"] and state["valid_a"] == 0  # the peer retired TOKEN_A

    # pagination against the peer: 11 locations, 4 per page, following its Link headers (the peer writes its
    # filters into the link, so a date window is sent: it would otherwise render date_from=None)
    pulled = platform.run(
        pull_module(
            cg,
            partner.partner_id,
            "locations",
            limit=4,
            params={"date_from": "2020-01-01T00:00:00+00:00", "date_to": "2030-01-01T00:00:00+00:00"},
        )
    )
    assert not pulled.errors
    assert sorted(o.id.upper() for o in pulled.objects) == [f"PEER{i:03d}" for i in range(N_PEER_LOCATIONS)]
    assert all(isinstance(o, Location) for o in pulled.objects)

    allowed = platform.run(request_authorization(cg, partner.partner_id, "AA11BB22"))
    assert allowed.allowed == "ALLOWED" and allowed.token == PSEUDONYMISER("AA11BB22")
    assert allowed.authorization_reference == "peer-ref-1"
    blocked = platform.run(request_authorization(cg, partner.partner_id, "CC33DD44"))
    assert blocked.allowed == "BLOCKED"
    with pytest.raises(PartnerError):
        platform.run(request_authorization(cg, partner.partner_id, "FFFF0000"))

    old = cg.store.outgoing(partner.partner_id)
    platform.run(rotate(cg, partner.partner_id))
    assert cg.store.outgoing(partner.partner_id) != old
    again = platform.run(
        pull_module(
            cg, partner.partner_id, "locations", limit=50, params={"date_from": "2020-01-01T00:00:00+00:00"}
        )
    )
    assert len(again.objects) == N_PEER_LOCATIONS
    platform.run(unregister(cg, partner.partner_id))
    state = httpx.get(peer[0] + "/peer/state", verify=ssl.create_default_context(cafile=str(peer[1]))).json()
    assert state["valid_c"] == 0


def test_peer_registers_pulls_and_asks_chargeguard_for_authorisation(
    peer: tuple[str, Path], platform: Platform
) -> None:
    cg = platform.connector
    for i in range(9):
        cg.published.put(
            "locations",
            msgspec.json.decode(msgspec.json.encode(a_location(i, party=("DE", "CGD"))), type=Location),
        )
    for uid, valid in (("5566AABB", True), ("7788CCDD", False)):
        token = msgspec.json.decode(
            msgspec.json.encode(a_token(uid, valid=valid, party=("DE", "CGD"))), type=Token
        )
        cg.published.put("tokens", pseudonymise(token, PSEUDONYMISER))
    invitation = cg.store.create_partner("extrawest-as-client")
    token_a = cg.store.issue_token(invitation.partner_id, "registration", ttl=timedelta(hours=1))

    result = _peer_post(
        peer, "/peer/register", {"versions_url": platform.base + "/ocpi/versions", "token_a": token_a}
    )
    assert result["status_code"] == 1000 and result["roles"] == ["CPO", "EMSP"]
    assert result["post_again_http"] == 405
    assert cg.store.get(invitation.partner_id).registered
    assert cg.store.authenticate(token_a).status == "unknown"

    pulled = _peer_post(peer, "/peer/pull", {"limit": 4})
    assert [i.upper() for i in pulled["ids"]] == [f"LOC{i:04d}" for i in range(9)]
    assert pulled["pages"] == 3 and pulled["totals"] == ["9"] and pulled["limits"] == ["4"]

    ok = _peer_post(peer, "/peer/authorize", {"uid": "5566AABB"})
    assert (
        ok["status_code"] == 1000
        and ok["allowed"] == "ALLOWED"
        and ok["uid"].upper() == "5566AABB"
        and ok["request_id"]
    )
    no = _peer_post(peer, "/peer/authorize", {"uid": "7788CCDD"})
    assert no["allowed"] == "BLOCKED"
    unknown = _peer_post(peer, "/peer/authorize", {"uid": "99999999"})
    assert unknown == {"http": 404, "status_code": 2004}
