"""Tests for station-level incident injection into imported real captures (sim.real_injection)."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from chargeguard.cli import app
from chargeguard.errors import InputError
from chargeguard.eval.metrics import evaluate
from chargeguard.eval.records import load_alerts, load_truth
from chargeguard.sim.catalogue import incident_set
from chargeguard.sim.real_capture import parse_ts
from chargeguard.sim.real_injection import inject_station_incidents, real_kinds
from chargeguard.sources.datasets.records import ConnectorPower, DatasetImport, SessionRecord
from chargeguard.sources.datasets.render import RenderOptions, write_import

START = datetime(2019, 3, 4, tzinfo=UTC)


def _dataset(stations: int = 36, days: int = 8) -> DatasetImport:
    """Day-time sessions on two-connector AC stations in one town, one card per connector; nights are idle."""
    data = DatasetImport("testset")
    n = 0
    for i in range(stations):
        name = f"TS-{i:03d}"
        record = data.station(name)
        record.latitude, record.longitude = 56.46 + i * 0.002, -2.97 - i * 0.002
        record.country, record.location_id = "GB", f"LOC{i // 2}"
        record.connectors = {1: ConnectorPower(22.0, "AC"), 2: ConnectorPower(22.0, "AC")}
        for day in range(days):
            for hour, connector in ((8, 1), (12, 2), (16, 1)):
                n += 1
                start = START + timedelta(days=day, hours=hour, minutes=(i * 7) % 50)
                end = start + timedelta(minutes=95)
                energy = 9_000.0 + (n % 7) * 1000
                session = SessionRecord("testset", name, connector, start, end, energy, f"{name}:{connector}",
                                        str(100 + n), f"t.csv:{n}", model="APT 22kW Dual Outlet")  # fmt: skip
                data.sessions.append(session)
    return data


@pytest.fixture(scope="module")
def injected(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]], Any]:
    out = tmp_path_factory.mktemp("real")
    write_import(_dataset(), out, RenderOptions(ocpp="mix", seed=3), [])
    original = _read(out / "capture.jsonl")
    result = inject_station_incidents(out, per_kind=2, seed=3)
    return out, original, result


def _read(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_parse_ts_reads_capture_times() -> None:
    assert parse_ts("2019-03-04T08:07:09.250Z") == START.timestamp() + 8 * 3600 + 7 * 60 + 9.25
    assert parse_ts("2019-03-04T08:07:09Z") == START.timestamp() + 8 * 3600 + 7 * 60 + 9


def test_every_station_command_and_protocol_kind_is_injected(injected: Any) -> None:
    out, _original, result = injected
    wanted = {s.kind for s in incident_set("tuning") if real_kinds(s)}
    assert {"station.auth_failure", "command.burst", "ocpp.flood", "session.phantom"} <= wanted
    truths = [json.loads(line) for line in (out / "truth.jsonl").read_text().splitlines()]
    assert {t["kind"] for t in truths} == wanted, result.skipped
    assert len(truths) == 2 * len(wanted)
    for t in truths:
        assert t["start"] <= t["detectable_at"] <= t["end"], t
        assert t["variant"] and not t.get("subtle")


def test_real_lines_are_kept_in_order_with_fresh_ids_and_continuous_registers(injected: Any) -> None:
    out, original, result = injected
    lines = _read(out / "capture.jsonl")
    assert len(lines) == len(original) + result.lines_added
    assert [line["ts"] for line in lines] == sorted(line["ts"] for line in lines)
    truths = [json.loads(line) for line in (out / "truth.jsonl").read_text().splitlines()]
    reusing = {s for t in truths if t["variant"] == "reused_ids_orphans" for s in t["stations"]}
    ids = Counter(
        (x["station"], x["from"], x["frame"][1]) for x in lines if "frame" in x and x["frame"][0] == 2
    )
    assert not [key for key, n in ids.items() if n > 1 and key[0] not in reusing]
    assert len(ids) > len([x for x in original if "frame" in x and x["frame"][0] == 2])
    assert result.shifted_connectors > 0  # clock skew and phantom sessions billed energy on real connectors
    assert _rollbacks(lines) == []


def _rollbacks(lines: list[dict[str, Any]]) -> list[tuple[str, float, float]]:
    """1.6 meterStart below the connector's previous meterStop (what a register shift must prevent)."""
    last: dict[tuple[str, int], float] = {}
    starts: dict[tuple[str, str], int] = {}
    connector_of: dict[tuple[str, int], int] = {}
    found = []
    for x in lines:
        frame = x.get("frame")
        if frame is None or x["ocpp"] != "1.6":
            continue
        if frame[0] == 2 and frame[2] == "StartTransaction":
            key = (x["station"], frame[3]["connectorId"])
            starts[(x["station"], frame[1])] = frame[3]["connectorId"]
            if frame[3]["meterStart"] < last.get(key, float("-inf")):
                found.append((x["station"], frame[3]["meterStart"], last[key]))
        elif frame[0] == 3 and (x["station"], frame[1]) in starts:
            connector_of[(x["station"], frame[2]["transactionId"])] = starts.pop((x["station"], frame[1]))
        elif frame[0] == 2 and frame[2] == "StopTransaction":
            c = connector_of.get((x["station"], frame[3]["transactionId"]))
            if c is not None:
                last[(x["station"], c)] = frame[3]["meterStop"]
    return found


def test_scanner_finds_every_injected_incident_and_nothing_else(
    injected: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """End to end on the injected capture: recall and precision of every injected kind."""
    out, _original, _result = injected
    monkeypatch.setenv("CHARGEGUARD_HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    alerts = tmp_path / "alerts.jsonl"
    result = CliRunner().invoke(
        app,
        ["scan", str(out / "capture.jsonl"), "--stations", str(out / "stations.csv"), "--alerts", str(alerts),
         "--no-store"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    truth, found = load_truth(out / "truth.jsonl"), load_alerts(alerts)
    scores = evaluate(truth.records, found.records, sessions=36 * 8 * 3)
    assert scores.kinds and not truth.errors and not found.errors
    poor = {k.kind: (k.recall, k.precision) for k in scores.kinds if {k.recall, k.precision} - {1.0, None}}
    assert not poor, (poor, scores.missed, scores.false_alerts, _by_kind(alerts))


def _by_kind(path: Path) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for line in path.read_text().splitlines():
        counts[json.loads(line)["kind"]] += 1
    return dict(counts)


def test_the_frozen_holdout_set_injects_its_own_variants(tmp_path: Path) -> None:
    write_import(_dataset(stations=12, days=4), tmp_path, RenderOptions(ocpp="mix", seed=5), [])
    result = inject_station_incidents(tmp_path, per_kind=1, seed=5, incidents="holdout")
    holdout = {s.variant: s.kind for s in incident_set("holdout") if real_kinds(s)}
    truths = [json.loads(line) for line in (tmp_path / "truth.jsonl").read_text().splitlines()]
    assert truths and all(holdout.get(t["variant"]) == t["kind"] for t in truths)
    assert len({t["kind"] for t in truths}) + len(result.skipped) == len(set(holdout.values()))
    lines = _read(tmp_path / "capture.jsonl")
    assert [line["ts"] for line in lines] == sorted(line["ts"] for line in lines)


def test_an_empty_capture_is_refused(tmp_path: Path) -> None:
    (tmp_path / "capture.jsonl").write_bytes(b"")
    (tmp_path / "stations.csv").write_text("station,latitude,longitude,max_kw,connectors\n")
    with pytest.raises(InputError, match="empty capture"):
        inject_station_incidents(tmp_path, per_kind=1, seed=1)
