"""``chargeguard scan`` with OCPI files next to a capture: every billing kind end to end, bad records, canary."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from chargeguard.cli import app
from chargeguard.store import Store
from cli.ocpi_case import BLOCKED, RAW_TOKENS, T0, Case, a_cdr, write_case
from test_canary import _encodings

BILLING = {
    "cdr.duplicate": ["BE*BEC/C1", "BE*BEC/C1-AGAIN"],
    "cdr.energy_mismatch": ["BE*BEC/C2", "103"],
    "cdr.orphan": ["BE*BEC/CDR000003"],
    "cdr.price_mismatch": ["BE*BEC/C4"],
    "cdr.party_mismatch": ["FR*EVL/C5"],
    "token.unauthorized_charging": ["BE*BEC/C6"],
}


def _scan(args: list[str], home: Path) -> tuple[Any, list[dict[str, Any]]]:
    alerts = home.parent / "alerts.jsonl"
    result = CliRunner().invoke(
        app, ["scan", *args, "--alerts", str(alerts)], env={"CHARGEGUARD_HOME": str(home)}
    )
    found = [orjson.loads(line) for line in alerts.read_bytes().splitlines()] if alerts.exists() else []
    return result, found


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> Case:
    return write_case(tmp_path_factory.mktemp("ocpi"))


def test_every_billing_kind_fires_from_scan_and_lands_in_the_store(case: Case, tmp_path: Path) -> None:
    result, alerts = _scan(case.args(), tmp_path / "home")
    assert result.exit_code == 0, result.output
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for alert in alerts:
        by_kind.setdefault(alert["kind"], []).append(alert)
    for kind, transactions in BILLING.items():
        assert [a["transactions"] for a in by_kind.get(kind, [])] == [transactions], kind
    unbilled = sorted(a["transactions"][0] for a in by_kind["session.unbilled"])
    assert unbilled == ["102", "BE*BEC/S8"]  # the OCPP transaction and the OCPI session nobody billed
    (unauthorized,) = by_kind["token.unauthorized_charging"]
    evidence = unauthorized["evidence"]
    assert evidence["source"] == "ocpi" and evidence["blame"] == "cpo"
    assert (
        evidence["cpo_copy_at_start"] == "invalid"
        and evidence["cpo_received_update"] == "2026-03-01T04:00:00+00:00"
    )
    # Locations are the inventory: EVSE-B is rated 3.68 kW there, so its 10+ kW sessions exceed it
    assert {a["station"] for a in by_kind["meter.exceeds_capacity"]} == {"EVSE-B"}
    assert "OCPI 5 file(s): 8 cdrs, 1 locations, 2 sessions, 1 tariffs, 3 tokens" in result.output
    store = Store.open(f"sqlite:///{tmp_path / 'home' / 'chargeguard.db'}")
    try:
        stored = {a.kind for a in store.alerts(limit=100)}
    finally:
        store.close()
    assert set(BILLING) | {"session.unbilled"} <= stored
    # same input, same ids
    _, again = _scan(case.args(), tmp_path / "home")
    assert sorted(a["id"] for a in again) == sorted(a["id"] for a in alerts)


def test_without_locations_no_rating_and_ocpi_alone_still_scans(case: Case, tmp_path: Path) -> None:
    no_locations = [a for a in case.args() if a not in ("--locations", str(case.locations))]
    result, alerts = _scan(no_locations, tmp_path / "a" / "home")
    assert result.exit_code == 0, result.output
    kinds = {a["kind"] for a in alerts}
    assert "meter.exceeds_capacity" not in kinds and set(BILLING) <= kinds
    # OCPI files only: party and price rules need no capture; orphans need one (no station reports charging)
    only_ocpi = case.args()[1:]
    result, alerts = _scan(only_ocpi, tmp_path / "b" / "home")
    assert result.exit_code == 0, result.output
    kinds = {a["kind"] for a in alerts}
    assert {
        "cdr.party_mismatch",
        "cdr.price_mismatch",
        "cdr.duplicate",
        "token.unauthorized_charging",
    } <= kinds
    assert "cdr.orphan" not in kinds
    empty = CliRunner().invoke(app, ["scan"], env={"CHARGEGUARD_HOME": str(tmp_path / "c")})
    assert empty.exit_code == 2 and "nothing to scan" in empty.output
    unreadable, _ = _scan(["--cdrs", str(tmp_path / "missing.json")], tmp_path / "d" / "home")
    assert unreadable.exit_code == 1 and "cannot read" in unreadable.output


def test_bad_records_are_named_counted_and_the_rest_go_on(tmp_path: Path) -> None:
    broken_cdr = a_cdr("C9", "EVSE-A", T0, 30, 3.0, 0.75)
    del broken_cdr["total_cost"]
    case = write_case(
        tmp_path / "in",
        extra_cdr_lines=[
            b"{not json",
            orjson.dumps(broken_cdr),
            orjson.dumps(a_cdr("C10", "EVSE-A", T0, 30, -1, 0)),  # negative energy, not a credit
            orjson.dumps(a_cdr("C11", "EVSE-A", T0, -30, 1, 0.25)),  # ends before it starts
        ],
    )
    tokens = case.tokens.read_bytes() + orjson.dumps({"uid": BLOCKED, "valid": "maybe"}) + b"\n"
    case.tokens.write_bytes(tokens)
    missing = tmp_path / "in" / "missing.json"
    result, alerts = _scan([*case.args(), "--cdrs", str(missing)], tmp_path / "home")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "bad OCPI records: 5 (cdr 4, token 1)" in out
    assert f"{case.cdrs}:9 record 8: invalid OCPI cdr" in out  # line 9 of the JSON Lines file
    assert f"{case.cdrs}:10 record 9 (cdr C9): invalid OCPI cdr" in out and "total_cost" in out
    assert f"{case.cdrs}:11 record 10 (cdr C10): invalid OCPI cdr: total_energy is negative" in out
    assert f"{case.cdrs}:12 record 11 (cdr C11): invalid OCPI cdr: end_date_time is before start" in out
    assert f"{case.tokens}:4 record 3 (token tok1_" in out
    assert f"unreadable: {missing}: cannot read" in out
    assert BLOCKED not in out
    assert set(BILLING) <= {a["kind"] for a in alerts}  # everything else still went through


def test_raw_ocpi_tokens_never_appear_in_anything_written(tmp_path: Path) -> None:
    case = write_case(tmp_path / "in")
    out = tmp_path / "out"
    out.mkdir()
    env = {
        **os.environ,
        "CHARGEGUARD_HOME": str(out / "home"),
        "CHARGEGUARD_LOG_LEVEL": "debug",
        "CHARGEGUARD_LOG_FORMAT": "json",
    }
    bad = tmp_path / "in" / "bad-tokens.jsonl"
    bad.write_bytes(orjson.dumps({"uid": BLOCKED, "whitelist": "SOMETIMES"}) + b"\n")
    result = subprocess.run(
        [sys.executable, "-m", "chargeguard", "scan", *case.args(), "--tokens", str(bad),
         "--alerts", str(out / "alerts.jsonl")],
        capture_output=True, env=env, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    written = [p for p in out.rglob("*") if p.is_file()]
    blobs = [p.read_bytes() for p in written] + [result.stdout, result.stderr]
    assert b"tok1_" in (out / "alerts.jsonl").read_bytes()
    assert b"ocpi.import.bad_record" in result.stdout + result.stderr  # logs were on, and searched
    hits = [(raw, form) for raw in RAW_TOKENS for form in _encodings(raw) for blob in blobs if form in blob]
    assert hits == [], f"{len(hits)} raw token hits in {sum(len(b) for b in blobs)} bytes"
