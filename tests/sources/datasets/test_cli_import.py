"""``chargeguard import-sessions`` through the CLI: outputs, injection, exit codes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import typer
from typer.testing import CliRunner

from chargeguard.cli import evaluate

app = typer.Typer()


@app.callback()
def _group() -> None:
    """Keep the app a command group."""


evaluate.register(app)


def test_import_epfl_slice_with_injection(ds: Any, tmp_path: Path) -> None:
    src = ds.slice_file(
        ds.real("epfl-level3-dc-fast/Session_data.csv"), tmp_path / "in" / "Session_data.csv", 200
    )
    out = tmp_path / "out"
    args = [
        "import-sessions",
        "--format",
        "epfl",
        str(src),
        "--out",
        str(out),
        "--seed",
        "3",
        "--ocpp",
        "2.0.1",
    ]
    result = CliRunner().invoke(app, [*args, "--sample-interval", "900", "--inject", "1"])
    assert result.exit_code == 0, result.output
    for name in ("capture.jsonl", "stations.csv", "oddities.jsonl", "import-report.json", "truth.jsonl"):
        assert (out / name).exists(), name
    report = orjson.loads((out / "import-report.json").read_bytes())
    assert report["stations"] == 1 and report["ocpp"] == "2.0.1" and report["sessions"] > 200
    truth = [orjson.loads(line) for line in (out / "truth.jsonl").read_bytes().splitlines()]
    assert len(truth) >= 5 and all(t["start"].endswith("Z") for t in truth)
    assert "incidents injected" in result.output


def test_import_usage_errors(tmp_path: Path) -> None:
    runner = CliRunner()
    bad_format = runner.invoke(
        app, ["import-sessions", "--format", "xls", str(tmp_path), "--out", str(tmp_path)]
    )
    assert bad_format.exit_code == 2
    no_mapping = runner.invoke(
        app, ["import-sessions", "--format", "csv", str(tmp_path), "--out", str(tmp_path)]
    )
    assert no_mapping.exit_code == 2 and "--mapping" in no_mapping.output
    missing = runner.invoke(
        app, ["import-sessions", "--format", "epfl", str(tmp_path / "nope"), "--out", str(tmp_path)]
    )
    assert missing.exit_code == 1 and "input not found" in missing.output


def test_import_nothing_readable_exits_1(tmp_path: Path) -> None:
    bad = tmp_path / "Session_data.csv"
    bad.write_text(
        "Session,CCS,Arrival,Departure,Energy (Wh),Pmax (W)\n1,CCS1,yesterday,today,5,5\n", encoding="utf-8"
    )
    result = CliRunner().invoke(
        app, ["import-sessions", "--format", "epfl", str(bad), "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 1
    assert (
        "Session_data.csv:2: column 'Arrival'" in result.output
        and "no session could be read" in result.output
    )


def test_import_with_station_incidents_appends_their_truth(ds: Any, tmp_path: Path) -> None:
    src = ds.slice_file(
        ds.real("epfl-level3-dc-fast/Session_data.csv"), tmp_path / "in" / "Session_data.csv", 200
    )
    out = tmp_path / "out"
    args = ["import-sessions", "--format", "epfl", str(src), "--out", str(out), "--seed", "5"]
    result = CliRunner().invoke(
        app, [*args, "--inject", "1", "--inject-station", "1", "--incident-set", "holdout"]
    )
    assert result.exit_code == 0, result.output
    truth = [orjson.loads(line) for line in (out / "truth.jsonl").read_bytes().splitlines()]
    kinds = {t["kind"] for t in truth}
    assert "meter.rollback" in kinds  # the session-level injection is kept
    assert any(k.startswith("station.") for k in kinds) and any(k.startswith("command.") for k in kinds)
    assert "holdout station/command/protocol incidents injected" in result.output
    bad = CliRunner().invoke(app, [*args, "--inject-station", "1", "--incident-set", "mine"])
    assert bad.exit_code == 2 and "--incident-set" in bad.output
