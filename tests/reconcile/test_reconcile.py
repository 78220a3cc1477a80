"""Reconciliation on generated partner files with known disputes; bad records; reports; repricing; the CLI."""

from __future__ import annotations

import random
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
import typer
from typer.testing import CliRunner

from chargeguard.cli import reconcile as reconcile_cli
from chargeguard.reconcile.capture import load_capture, uncovered
from chargeguard.reconcile.generate import Truth, _cdr, generate, tariff
from chargeguard.reconcile.match import MatchOptions, Reconciliation, reconcile
from chargeguard.reconcile.prices import reprice
from chargeguard.reconcile.report import write_csv, write_html
from chargeguard.settings import Settings
from chargeguard.vault.pseudonyms import Pseudonymiser

P = Pseudonymiser({1: b"r" * 32}, 1)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Truth]:
    d = tmp_path_factory.mktemp("partners")
    cpo, emsp = d / "cpo.jsonl", d / "emsp.jsonl"
    truth = generate(cpo, emsp, 2000, dispute_rate=0.01)
    return cpo, emsp, truth


@pytest.fixture(scope="module")
def result(files: tuple[Path, Path, Truth]) -> Reconciliation:
    return reconcile(files[0], files[1], P)


def test_counts_match_the_planted_disputes(files: tuple[Path, Path, Truth], result: Reconciliation) -> None:
    truth = files[2]
    r = result
    c = r.counts
    assert c["matched_by_id"] == truth.matched_by_id
    assert c["matched_fuzzy"] == truth.renamed
    assert c["disputed_price"] == truth.price
    assert c["disputed_energy"] == truth.energy
    assert c["disputed_currency"] == truth.currency
    assert c["disputed"] == truth.price + truth.energy + truth.currency
    assert c["unmatched_cpo"] == truth.missing_at_emsp
    assert c["unmatched_emsp"] == truth.only_at_emsp
    assert c["errors_cpo"] == truth.bad_json + truth.bad_energy + truth.bad_duplicate
    assert c["errors_emsp"] == 0
    reasons = {row[4].split(" (")[0] for row in r.errors()}
    assert reasons == {"not a JSON object", "negative energy", "duplicate id"}
    positions = {row[2] for row in r.errors()}
    assert positions == {
        f"line {truth.cpo_records - 2}",
        f"line {truth.cpo_records - 1}",
        f"line {truth.cpo_records}",
    }


def test_amount_at_stake_per_currency_and_party(
    files: tuple[Path, Path, Truth], result: Reconciliation
) -> None:
    truth = files[2]
    r = result
    currency_stake = sum((d["stake"] for d in r.disputes() if d["reasons"] == "currency"), Decimal(0))
    energy_stake = sum((d["stake"] for d in r.disputes() if d["reasons"] == "energy"), Decimal(0))
    assert energy_stake > 0
    total = {c: a for c, scope, _, _, a in r.stakes if scope == "total"}
    expected = Decimal(str(round(truth.stake_by_currency["EUR"], 2))) + currency_stake + energy_stake
    assert set(total) == {"EUR"}
    assert abs(total["EUR"] - expected) < Decimal("0.01")
    per_cpo = sum((a for c, scope, _, _, a in r.stakes if scope == "cpo"), Decimal(0))
    per_emsp = sum((a for c, scope, _, _, a in r.stakes if scope == "emsp"), Decimal(0))
    assert per_cpo == per_emsp == total["EUR"]


def test_tolerance_near_miss_renamed_records_stay_unmatched(files: tuple[Path, Path, Truth]) -> None:
    cpo, emsp, truth = files
    # renamed records start 45 s later at the eMSP: a 30 s tolerance must not pair them
    r = reconcile(cpo, emsp, P, options=MatchOptions(start_tolerance_s=30))
    assert r.counts["matched_fuzzy"] == 0
    assert r.counts["unmatched_cpo"] == truth.missing_at_emsp + truth.renamed


def test_reports_carry_pseudonyms_only(
    files: tuple[Path, Path, Truth], result: Reconciliation, tmp_path: Path
) -> None:
    cpo = files[0]
    r = result
    written = [*write_csv(r, tmp_path), write_html(r, tmp_path / "report.html")]
    raw_uids = {orjson.loads(line)["cdr_token"]["uid"] for line in cpo.read_bytes().splitlines()[:50]}
    for path in written:
        text = path.read_text()
        assert not any(uid in text for uid in raw_uids), path
    page = (tmp_path / "report.html").read_text()
    assert "<svg" in page and "http" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "tok1_" in (tmp_path / "disputes.csv").read_text()


def test_array_input_and_absurd_energy(tmp_path: Path, files: tuple[Path, Path, Truth]) -> None:
    cpo, _, _ = files
    records = [orjson.loads(line) for line in cpo.read_bytes().splitlines()[:20]]
    records[3]["total_energy"] = 5000.0
    records[4]["currency"] = "euro"
    array = tmp_path / "cpo.json"
    array.write_bytes(orjson.dumps(records))
    r = reconcile(array, array, P)
    errors = {(pos, reason) for _, _, pos, _, reason in r.errors()}
    assert ("record 4", "absurd energy (over 1000 kWh)") in errors
    assert ("record 5", "currency is not ISO 4217") in errors
    assert r.counts["matched_by_id"] == 18 and r.counts["disputed"] == 0


def test_reprice_backs_the_cpo_on_planted_price_disputes(
    files: tuple[Path, Path, Truth], result: Reconciliation
) -> None:
    truth = files[2]
    verdicts = [x.verdict for x in reprice(result, {"T": tariff()}, P)]
    assert len(verdicts) == truth.price + truth.missing_at_emsp
    assert set(verdicts) == {"cpo"}


def test_cli_end_to_end(
    files: tuple[Path, Path, Truth], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cpo, emsp, _truth = files
    monkeypatch.setenv("CHARGEGUARD_HOME", str(tmp_path / "home"))
    app = typer.Typer()
    reconcile_cli.register(app)

    @app.callback()
    def _root() -> None:
        """chargeguard"""

    result = CliRunner().invoke(
        app, ["reconcile", "--cpo", str(cpo), "--emsp", str(emsp), "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 0, result.output
    assert "only at the eMSP" in result.output and "duplicate id" in result.output
    raw_uids = {orjson.loads(line)["cdr_token"]["uid"] for line in cpo.read_bytes().splitlines()[:200]}
    assert not any(uid in result.output for uid in raw_uids)
    assert (tmp_path / "o" / "report.html").exists()
    bad = CliRunner().invoke(app, ["reconcile", "--cpo", str(tmp_path / "missing"), "--emsp", str(emsp)])
    assert bad.exit_code == 1


CAPTURE = [
    {"ts": "2026-03-02T08:00:00Z", "station": "CP-1", "ocpp": "1.6", "from": "station",
     "frame": [2, "1", "StartTransaction", {"connectorId": 1, "idTag": "04A2B3C4D5E6F7", "meterStart": 0,
                                              "timestamp": "2026-03-02T08:00:00Z"}]},
    {"ts": "2026-03-02T08:00:01Z", "station": "CP-1", "ocpp": "1.6", "from": "csms",
     "frame": [3, "1", {"transactionId": 42, "idTagInfo": {"status": "Accepted"}}]},
    {"ts": "2026-03-02T09:00:00Z", "station": "CP-1", "ocpp": "1.6", "from": "station",
     "frame": [2, "2", "StopTransaction", {"transactionId": 42, "meterStop": 20000,
                                             "timestamp": "2026-03-02T09:00:00Z"}]},
    {"ts": "2026-03-02T09:00:01Z", "station": "CP-1", "ocpp": "1.6", "from": "csms",
     "frame": [3, "2", {"idTagInfo": {"status": "Accepted"}}]},
]  # fmt: skip


def test_capture_flags_cdrs_with_no_ocpp_transaction(tmp_path: Path) -> None:
    capture = tmp_path / "capture.jsonl"
    capture.write_bytes(b"\n".join(orjson.dumps(line) for line in CAPTURE) + b"\n")

    def cdr_at(cdr_id: str, station: str, start: str, end: str) -> dict[str, Any]:
        record = _cdr(1, random.Random(1), 10)
        record.update(id=cdr_id, start_date_time=start, end_date_time=end)
        record["cdr_location"]["evse_uid"] = station  # type: ignore[index]
        return record

    behind = cdr_at("A", "CP-1", "2026-03-02T08:00:30Z", "2026-03-02T08:59:00Z")
    orphan = cdr_at("B", "CP-1", "2026-03-05T08:00:00Z", "2026-03-05T09:00:00Z")
    elsewhere = cdr_at("C", "NOT-IN-CAPTURE", "2026-03-05T08:00:00Z", "2026-03-05T09:00:00Z")
    path = tmp_path / "cpo.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps(r) for r in (behind, orphan, elsewhere)))
    result = reconcile(path, path, P)
    assert load_capture(result, [capture], P, Settings()) == 1
    assert uncovered(result) == 1
    assert result.con.execute("SELECT key FROM uncovered").fetchall() == [("BE*BEC*B",)]


def test_sessions_reconcile_by_id_and_flag_energy(tmp_path: Path) -> None:
    def session(i: int, kwh: float) -> dict[str, Any]:
        c = _cdr(i, random.Random(i), 10)
        return {
            "country_code": c["country_code"], "party_id": c["party_id"], "id": f"S{i}",
            "start_date_time": c["start_date_time"], "end_date_time": c["end_date_time"], "kwh": kwh,
            "cdr_token": c["cdr_token"], "auth_method": "WHITELIST", "location_id": "LOC1",
            "evse_uid": c["cdr_location"]["evse_uid"], "connector_id": "1", "currency": "EUR",  # type: ignore[index]
            "total_cost": {"excl_vat": 3.0}, "status": "COMPLETED", "last_updated": c["last_updated"],
        }  # fmt: skip

    cpo, emsp = tmp_path / "cpo.jsonl", tmp_path / "emsp.jsonl"
    cpo.write_bytes(b"\n".join(orjson.dumps(session(i, 10.0)) for i in range(5)))
    emsp.write_bytes(b"\n".join(orjson.dumps(session(i, 10.0 if i else 14.0)) for i in range(4)))
    r = reconcile(cpo, emsp, P, kind="session")
    assert (r.counts["matched_by_id"], r.counts["disputed_energy"], r.counts["unmatched_cpo"]) == (4, 1, 1)


def test_blank_and_misshapen_lines_keep_exact_line_numbers(
    tmp_path: Path, files: tuple[Path, Path, Truth]
) -> None:
    lines = files[0].read_bytes().splitlines()[:6]
    shaped = orjson.loads(lines[4])
    shaped["cdr_token"] = "not an object"
    path = tmp_path / "cpo.jsonl"
    path.write_bytes(b"\n".join([lines[0], b"", lines[1], b"[1, 2]", orjson.dumps(shaped), lines[5]]) + b"\n")
    r = reconcile(path, path, P)
    errors = {(pos, reason) for _, _, pos, _, reason in r.errors()}
    assert errors == {
        ("line 4", "not a JSON object"),
        ("line 5", "missing cdr_token uid, country_code or party_id"),
    }
    assert r.counts["cpo_records"] == 3
