"""The full canary proof (issue 4): the whole product on captures seeded with canary tokens, then every byte written.

One run drives, each as its own process through the real CLI with ``CHARGEGUARD_LOG_LEVEL=debug`` (forked
from a server that imported the CLI once, ``vault/canary_zygote.py``: the import is most of a start's CPU):

* ``chargeguard scan`` of a seeded capture into SQLite (WAL mode; the WAL is snapshotted while a writer has it
  open) and into PostgreSQL (``CHARGEGUARD_TEST_PG_URL``; skipped when unset unless ``CHARGEGUARD_REQUIRE_PG=1``),
  whose tables are then dumped through SQLAlchemy to bytes (decompressed: TOASTed values come back whole);
* the OCPP gateway (``chargeguard gateway``) between a station and a central system both built with the ``ocpp``
  library, with the capture recorder on and rotation small enough that finished files are gzipped;
* ``chargeguard serve`` (the OCPI connector, the HTTP API that exists today): a partner registers over real HTTP,
  pushes a token, a session and a CDR with canary uids and contract ids, pulls them and the platform's
  published objects back, asks for a real-time authorisation and sends requests that must be refused; every
  response (status, headers, body) is kept, and the server's access and debug logs are its stderr;
* ``chargeguard reconcile`` on partner CDR files carrying canary uids: its CSV files, HTML report and terminal;
* ``chargeguard tokens pseudonymise`` of the capture and of a CSV export;
* sealed tokens (``seal_tokens`` on, through ``open_token_vault``), a SQLite ``VACUUM INTO`` backup and a
  text dump of the SQLite database;
* every process's stdout and stderr.

``chargeguard.vault.canary.search_tree`` then searches all of it for each canary in every encoding that matters
(plain, upper/lower hex, base64 at every alignment, UTF-16, URL-encoded, JSON ``\\u`` escapes, inside gzip
members): zero hits. The same run with pseudonymisation switched to identity (a monkeypatch applied only inside
the test's own process wrapper, never by the product) must find hits - proof that the search can fail.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import gzip
import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest
from ocpp.routing import on
from ocpp.v16 import ChargePoint as Cp16
from ocpp.v16 import call as c16
from ocpp.v16 import call_result as r16
from ocpp.v16.enums import Action, AuthorizationStatus, RegistrationStatus
from sqlalchemy import MetaData, create_engine, select
from sqlalchemy.engine import make_url
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.headers import build_authorization_basic

from chargeguard import scenario
from chargeguard.settings import Settings
from chargeguard.sources.ocpp.gateway.auth import hash_password
from chargeguard.store import Store
from chargeguard.vault.canary import CanaryReport, search_tree
from chargeguard.vault.keys import write_new_master_key_file
from chargeguard.vault.token_vault import open_token_vault
from vault.canary_partners import (
    OCPI_CANARIES,
    drive_ocpi,
    write_reconcile_inputs,
    write_serve_inputs,
)
from vault.canary_zygote import Zygote

STATION_PASSWORD = "0123456789abcdef0123456789abcdef01234567"
SECRETS = ("00112233445566778899AABBCCDDEEFF", "hunter2pass", STATION_PASSWORD)
GATEWAY_TOKENS = ("04C0FFEE123456", "DE-8EO-C12345678-9")  # an RFID UID and an eMAID
VENDOR_FIELD_CARD = "04DEADBEEF0042"  # a card that slipped into a vendor-specific field
CANARIES = [
    *scenario.BENIGN_TOKENS, scenario.CLONED, scenario.BLOCKED, *GATEWAY_TOKENS, *OCPI_CANARIES, *SECRETS
]  # fmt: skip


def _capture_lines() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    lines, inventory = scenario.build(11)
    t = lines[-1]["ts"]
    extra = [
        ("csms", [2, "k1", "ChangeConfiguration", {"key": "AuthorizationKey", "value": SECRETS[0]}]),
        ("csms", [2, "k2", "GetDiagnostics", {"location": f"ftp://diag:{SECRETS[1]}@192.0.2.9/up"}]),
        ("station", [2, "k3", "Authorize", {"idTag": scenario.CLONED + "FFFFFFFFFFFFFFFFFF"}]),  # too long
        ("station", [2, "k4", "DataTransfer", {"vendorId": "acme", "data": f"card {scenario.BLOCKED} seen"}]),
    ]
    for side, frame in extra:
        lines.append({"ts": t, "station": "DUN-01", "ocpp": "1.6", "from": side, "frame": frame})
    return lines, inventory


class Csms(Cp16):
    """A minimal OCPP 1.6 central system (``ocpp`` library) answering what the station sends."""

    @on(Action.boot_notification)
    async def on_boot(self, **kwargs: Any) -> r16.BootNotification:
        return r16.BootNotification(
            current_time=dt.datetime.now(dt.UTC).isoformat(), interval=300, status=RegistrationStatus.accepted
        )

    @on(Action.heartbeat)
    async def on_heartbeat(self) -> r16.Heartbeat:
        return r16.Heartbeat(current_time=dt.datetime.now(dt.UTC).isoformat())

    @on(Action.authorize)
    async def on_authorize(self, id_tag: str) -> r16.Authorize:
        return r16.Authorize(id_tag_info={"status": AuthorizationStatus.accepted, "parent_id_tag": id_tag})

    @on(Action.start_transaction)
    async def on_start(self, **kwargs: Any) -> r16.StartTransaction:
        return r16.StartTransaction(transaction_id=4711, id_tag_info={"status": AuthorizationStatus.accepted})

    @on(Action.stop_transaction)
    async def on_stop(self, **kwargs: Any) -> r16.StopTransaction:
        return r16.StopTransaction(id_tag_info={"status": AuthorizationStatus.accepted})

    @on(Action.data_transfer)
    async def on_data(self, **kwargs: Any) -> r16.DataTransfer:
        return r16.DataTransfer(status="Accepted")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Run:
    """One run of the product into ``out``; collects every process's output as files under ``out``.

    Each command is its own process forked from one fork server that imported the CLI once
    (``vault/canary_zygote.py``); ``CANARY_IDENTITY=1`` in the environment switches pseudonymisation off in
    those processes, which is how the test proves the search can fail.
    """

    def __init__(self, out: Path, *, identity: bool) -> None:
        self.out = out
        self.home = out / "home"
        self.home.mkdir(parents=True)
        self.env = {
            **os.environ,
            "CHARGEGUARD_HOME": str(self.home),
            "CHARGEGUARD_LOG_LEVEL": "debug",
            "CHARGEGUARD_LOG_FORMAT": "json",
            "CHARGEGUARD_KEY_FILE": str(self.home / "pseudonym.key"),
            "CANARY_IDENTITY": "1" if identity else "0",
        }
        self.env.pop("CHARGEGUARD_DB_URL", None)
        self.env.pop("CHARGEGUARD_PSEUDONYM_KEY", None)
        self.calls = 0
        self._lock = threading.Lock()
        self.timings: dict[str, float] = {}
        self.zygote = Zygote(self.env)

    def next_call(self) -> int:
        """The number of the next process (its output files are procNN.stdout / procNN.stderr)."""
        with self._lock:
            self.calls += 1
            return self.calls

    @contextmanager
    def timed(self, step: str) -> Iterator[None]:
        started = time.monotonic()
        try:
            yield
        finally:
            self.timings[step] = round(time.monotonic() - started, 1)

    def spawn(self, *args: str, env: dict[str, str] | None = None) -> tuple[int, Path]:
        """Start ``chargeguard ARGS``; returns its pid and the file its exit code goes to."""
        return self.zygote.spawn(list(args), env or self.env, self.out, self.next_call())

    def command(self, *args: str, env: dict[str, str] | None = None, ok: tuple[int, ...] = (0,)) -> bytes:
        """Run ``chargeguard ARGS`` to its end; returns its stdout."""
        pid, rc = self.spawn(*args, env=env)
        code = self.zygote.wait(pid, rc)
        stderr = rc.with_suffix(".stderr").read_bytes()
        assert code in ok, f"{args[0]}: exit {code}: {stderr.decode(errors='replace')[-1500:]}"
        return rc.with_suffix(".stdout").read_bytes()


def _write_inputs(inputs: Path) -> tuple[Path, Path, Path]:
    lines, inventory = _capture_lines()
    inputs.mkdir()
    capture = inputs / "capture.jsonl.gz"
    capture.write_bytes(gzip.compress(b"".join(orjson.dumps(line) + b"\n" for line in lines)))
    stations = inputs / "stations.csv"
    header = list(inventory[0])
    stations.write_text(
        ",".join(header) + "\n" + "\n".join(",".join(str(r[h]) for h in header) for r in inventory)
    )
    export = inputs / "sessions.csv"
    with export.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["session", "idTag", "kwh"])
        for i, token in enumerate([*scenario.BENIGN_TOKENS[:10], scenario.CLONED]):
            writer.writerow([i, token, 7.5])
    return capture, stations, export


@contextmanager
def _pg_schema() -> Iterator[str | None]:
    base = os.environ.get("CHARGEGUARD_TEST_PG_URL")
    if not base:
        if os.environ.get("CHARGEGUARD_REQUIRE_PG") == "1":
            pytest.fail("CHARGEGUARD_REQUIRE_PG=1 but CHARGEGUARD_TEST_PG_URL is not set")
        yield None
        return
    libpq = make_url(base).set(drivername="postgresql").render_as_string(hide_password=False)
    schema = f"cgcanary_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(libpq, autocommit=True, connect_timeout=10) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        url = make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)
    finally:
        with psycopg.connect(libpq, autocommit=True, connect_timeout=10) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def _dump_database(url: str, target: Path) -> None:
    """Every row of every table, as the database returns it (TOAST-decompressed), one JSON line per row."""
    engine = create_engine(url)
    try:
        meta = MetaData()
        meta.reflect(engine)
        assert meta.tables, "nothing was written to the database"
        with engine.connect() as conn, target.open("wb") as out:
            for table in meta.sorted_tables:
                for row in conn.execute(select(table)):
                    out.write(orjson.dumps([table.name, *(repr(v) for v in row)]) + b"\n")
    finally:
        engine.dispose()


async def _drive_gateway(port: int) -> None:
    """A station (``ocpp`` library) charging with canary cards through the gateway to the central system."""
    url = f"ws://127.0.0.1:{port}/ocpp/CP-1"
    headers = {"Authorization": build_authorization_basic("CP-1", STATION_PASSWORD)}
    deadline = time.monotonic() + 120  # start-up beside the other processes on a loaded machine
    while True:
        try:
            ws = await connect(url, subprotocols=["ocpp1.6"], additional_headers=headers, proxy=None)  # type: ignore[list-item]
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)
    station = Cp16("CP-1", ws)
    listener = asyncio.create_task(station.start())
    try:
        now = dt.datetime.now(dt.UTC).isoformat()
        await station.call(c16.BootNotification(charge_point_model="M1", charge_point_vendor="Acme"))
        for card in GATEWAY_TOKENS:
            await station.call(c16.Authorize(id_tag=card))
            await station.call(
                c16.StartTransaction(connector_id=1, id_tag=card, meter_start=0, timestamp=now)
            )
            await station.call(
                c16.StopTransaction(meter_stop=7000, timestamp=now, transaction_id=4711, id_tag=card)
            )
        await station.call(c16.DataTransfer(vendor_id="acme", message_id="status", data="door closed"))
        for _ in range(15):  # enough bytes for several rotations at capture_max_bytes = 1024
            await station.call(c16.Heartbeat())
    finally:
        listener.cancel()
        await ws.close()


async def _serve_csms_and_drive(run: Run, gw_config: Path, port: int) -> None:
    async def handle(connection: ServerConnection) -> None:
        with suppress(ConnectionClosed):
            await Csms("CP-1", connection).start()

    server = await serve(handle, "127.0.0.1", 0, subprotocols=["ocpp1.6"])  # type: ignore[list-item]
    csms_port = server.sockets[0].getsockname()[1]
    gw_config.write_text(
        f'capture_dir = "{run.out / "captures"}"\ncapture_max_bytes = 1024\n'
        f'[listen]\nhost = "127.0.0.1"\nplain_port = {port}\n'
        f'[upstream]\nurl = "ws://127.0.0.1:{csms_port}/csms"\n'
        f"[stations.CP-1]\nsecurity_profile = 1\nallow_plain = true\n"
        f'password_hash = "{hash_password(STATION_PASSWORD, n=2**10)}"\n',
        encoding="utf-8",
    )
    pid, rc = run.spawn("gateway", "--config", str(gw_config))
    try:
        await _drive_gateway(port)
    finally:
        code = await asyncio.to_thread(run.zygote.stop, pid, rc)  # the loop keeps serving the CSMS meanwhile
        server.close()
        await server.wait_closed()
    assert code in (0, None), rc.with_suffix(".stderr").read_text(errors="replace")[-1500:]


def run_product(tmp_path: Path, *, identity: bool) -> tuple[Run, CanaryReport]:
    out = tmp_path / "out"
    run = Run(out, identity=identity)
    capture, stations, export = _write_inputs(tmp_path / "in")
    # the scan into SQLite (the default store in CHARGEGUARD_HOME); it creates the pseudonym key
    with run.timed("scan"):
        run.command("scan", str(capture), "--stations", str(stations), "--alerts", str(out / "alerts.jsonl"))
    db = run.home / "chargeguard.db"
    # ... and into PostgreSQL, dumped to bytes
    with _pg_schema() as pg_url, run.timed("scan into PostgreSQL"):
        if pg_url is not None:
            run.command(
                "scan", str(capture), "--stations", str(stations), "--alerts", str(out / "alerts-pg.jsonl"),
                env={**run.env, "CHARGEGUARD_DB_URL": pg_url},
            )  # fmt: skip
            _dump_database(pg_url, out / "postgres-dump.jsonl")
    inputs, keys = tmp_path / "in", tmp_path / "keys"
    keys.mkdir()
    ocpi_port, gateway_port = _free_port(), _free_port()
    serve_config = write_serve_inputs(inputs, keys, out, ocpi_port)
    cpo, emsp = write_reconcile_inputs(inputs)

    def timed(step: str, fn: Callable[..., Any], *args: Any) -> Callable[[], Any]:
        def go() -> Any:
            with run.timed(step):
                return fn(*args)

        return go

    # independent processes side by side (each is mostly interpreter start-up and imports)
    with ThreadPoolExecutor(max_workers=5) as pool:
        jobs = [
            # the gateway between a real station and a real central system, capture recorder rotating to gzip
            timed("gateway", asyncio.run, _serve_csms_and_drive(run, tmp_path / "gateway.toml", gateway_port)),
            # the OCPI connector over real HTTP with a partner
            timed("serve + OCPI partner", drive_ocpi, run, serve_config, ocpi_port),
            # reconcile reports on partner files
            timed("reconcile", run.command, "reconcile", "--cpo", str(cpo), "--emsp", str(emsp),
                  "--out", str(out / "reconcile")),
            # exports for sharing
            timed("pseudonymise capture", run.command, "tokens", "pseudonymise", str(capture),
                  str(out / "shared.jsonl.gz")),
            timed("pseudonymise CSV", run.command, "tokens", "pseudonymise", str(export), str(out / "shared.csv"),
                  "--column", "idTag"),
        ]  # fmt: skip
        results = [f.result() for f in [pool.submit(job) for job in jobs]]
    statuses = results[1]
    assert statuses.count(200) >= 10, statuses
    if not identity:
        # sealing on: the canaries sealed into the SQLite store, the WAL snapshotted while the writer holds it
        master = keys / "master.key"
        write_new_master_key_file(master)
        settings = Settings(home=run.home, seal_tokens=True, master_key_file=master)
        with Store.open(settings.effective_db_url) as store, open_token_vault(settings, store) as vault:
            for token in CANARIES[:-3]:
                vault(token)
            vault.flush()
            snapshot = out / "wal-snapshot"
            snapshot.mkdir()
            for part in run.home.glob("chargeguard.db*"):
                (snapshot / part.name).write_bytes(part.read_bytes())
            assert (snapshot / "chargeguard.db-wal").stat().st_size > 0
        assert vault.sealed_count == len(CANARIES) - 3
    # a backup, and a text dump of the SQLite store
    with sqlite3.connect(db) as conn:
        conn.execute("VACUUM INTO ?", (str(out / "backup.db"),))
        (out / "sqlite-dump.sql").write_text("\n".join(conn.iterdump()), encoding="utf-8")
    run.zygote.close()
    run.timings["CPU s of the product's commands"] = round(run.zygote.cpu_s, 1)
    with run.timed("search"):
        report = search_tree([out], CANARIES)
    return run, report


@pytest.mark.slow
def test_no_canary_in_any_byte_the_product_writes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run, report = run_product(tmp_path, identity=False)
    out = run.out
    rotated = sorted((out / "captures").glob("*.jsonl.gz"))
    assert len(rotated) >= 2, "the gateway capture did not rotate to gzip"
    assert b"tok1_" in gzip.decompress(
        rotated[0].read_bytes()
    )  # pseudonyms are there: the search is meaningful
    assert b"tok1_" in (out / "alerts.jsonl").read_bytes()
    assert (out / "backup.db").stat().st_size > 0 and (out / "shared.jsonl.gz").stat().st_size > 0
    debug_lines = sum(p.read_bytes().count(b'"level": "debug"') for p in out.glob("proc*.std*"))
    assert debug_lines > 0, "no debug-level log line was written: the log search would prove nothing"
    responses = (out / "ocpi-responses.jsonl").read_bytes()
    assert responses.count(b"\n") >= 15 and b"tok1_" in responses  # pseudonyms came back over HTTP
    serve_logs = b"".join(p.read_bytes() for p in out.glob("proc*.stderr"))
    assert serve_logs.count(b"ocpi.http.access") >= 15, "the OCPI access log was not written"
    reports = sorted(p.name for p in (out / "reconcile").iterdir())
    assert "report.html" in reports and any(name.endswith(".csv") for name in reports), reports
    assert b"tok1_" in (out / "reconcile" / "report.html").read_bytes()
    assert report.bytes_searched > 1_000_000
    where = sorted({(Path(h.path).relative_to(out).as_posix(), h.member, h.canary) for h in report.hits})
    with capsys.disabled():
        print(
            f"\ncanary proof: {report.files} files, {report.bytes_searched} bytes searched, {len(where)} hits; "
            f"seconds per step: {run.timings}"
        )
    assert where == [], f"canary hits (file, view, canary index): {where[:20]}"


@pytest.mark.slow
def test_the_canary_search_fails_when_pseudonymisation_is_off(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run, report = run_product(tmp_path, identity=True)
    with capsys.disabled():
        print(
            f"\ncanary proof, pseudonymisation off: {report.bytes_searched} bytes, {len(report.hits)} hits; "
            f"seconds per step: {run.timings}"
        )
    files = {Path(h.path).relative_to(run.out).parts[0] for h in report.hits}
    # the store, its backup and dump, the gateway's gzip-rotated captures, both exports, the OCPI connector's
    # HTTP responses and the reconcile reports all leak
    leaking = {"home", "backup.db", "sqlite-dump.sql", "captures", "shared.csv", "shared.jsonl.gz"}
    leaking |= {"ocpi-responses.jsonl", "reconcile"}
    assert leaking <= files, files
    assert any(h.member.startswith("gzip") for h in report.hits)
    if os.environ.get("CHARGEGUARD_TEST_PG_URL"):
        assert "postgres-dump.jsonl" in files


def test_gateway_capture_redacts_a_card_in_a_vendor_field(tmp_path: Path) -> None:
    from chargeguard.sources.ocpp.gateway.redact import sanitise_frame
    from chargeguard.vault.pseudonyms import Pseudonymiser

    pseudonymiser = Pseudonymiser({1: b"k" * 32}, 1)
    frames = [
        [2, "d1", "DataTransfer", {"vendorId": "acme", "messageId": "card", "data": VENDOR_FIELD_CARD}],
        [4, "d1", "InternalError", f"unknown card {VENDOR_FIELD_CARD}", {}],
    ]
    (tmp_path / "capture.jsonl").write_bytes(
        b"".join(orjson.dumps(sanitise_frame(frame, pseudonymiser)) + b"\n" for frame in frames)
    )
    assert search_tree([tmp_path], [VENDOR_FIELD_CARD]).hits == []
