"""``chargeguard eval`` end to end through the CLI: table, JSON, bad lines, exit codes."""

from __future__ import annotations

from pathlib import Path

import orjson
import typer
from typer.testing import CliRunner

from chargeguard.cli import evaluate

# only this module's commands: the test must not depend on other command families being importable
app = typer.Typer()


@app.callback()
def _group() -> None:
    """Keep the app a command group."""


evaluate.register(app)

TRUTH = [
    {
        "kind": "meter.rollback",
        "stations": ["CP-1"],
        "transactions": ["7"],
        "start": "2026-03-01T08:00:00Z",
        "end": "2026-03-01T08:10:00Z",
        "detectable_at": "2026-03-01T08:01:00Z",
        "note": "n",
    },
    {
        "kind": "meter.rollback",
        "stations": ["CP-2"],
        "transactions": ["8"],
        "start": "2026-03-01T10:00:00Z",
        "end": "2026-03-01T10:10:00Z",
        "detectable_at": "2026-03-01T10:01:00Z",
        "note": "n",
    },
]
ALERTS = [
    {
        "id": "a",
        "kind": "meter.rollback",
        "ts": "2026-03-01T08:01:00Z",
        "station": "CP-1",
        "transactions": ["7"],
    },
    {
        "id": "b",
        "kind": "meter.rollback",
        "ts": "2026-03-01T12:00:00Z",
        "station": "CP-3",
        "transactions": [],
    },
]


def jsonl(path: Path, rows: list[dict[str, object]], extra: list[bytes] = ()) -> Path:  # type: ignore[assignment]
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows) + b"".join(x + b"\n" for x in extra))
    return path


def test_eval_writes_table_and_json(tmp_path: Path) -> None:
    truth = jsonl(tmp_path / "truth.jsonl", TRUTH, [b"garbage"])
    alerts = jsonl(
        tmp_path / "alerts.jsonl", ALERTS, [b'{"kind": "meter.rollback", "ts": "2026-03-01T08:00"}']
    )
    out = tmp_path / "eval.json"
    result = CliRunner().invoke(
        app, ["eval", "--truth", str(truth), "--alerts", str(alerts), "--sessions", "500", "--json", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "meter.rollback" in result.output
    assert f"{truth}:3: not JSON" in result.output
    assert f"{alerts}:3: field ts has no time zone" in result.output
    data = orjson.loads(out.read_bytes())
    (row,) = data["kinds"]
    assert (row["incidents"], row["detected"], row["alerts"], row["true_alerts"]) == (2, 1, 2, 1)
    assert row["recall"] == 0.5 and row["precision"] == 0.5
    assert row["false_per_1000_sessions"] == 2.0
    assert row["delay_median_s"] == 0.0
    assert data["bad_lines"]["truth"] == 1 and data["bad_lines"]["alerts"] == 1


def test_eval_json_to_stdout_is_pure_json(tmp_path: Path) -> None:
    truth = jsonl(tmp_path / "truth.jsonl", TRUTH)
    alerts = jsonl(tmp_path / "alerts.jsonl", ALERTS)
    result = CliRunner().invoke(app, ["eval", "--truth", str(truth), "--alerts", str(alerts), "--json", "-"])
    assert result.exit_code == 0
    assert orjson.loads(result.stdout)["overall"]["incidents"] == 2


def test_eval_counts_sessions_from_capture(tmp_path: Path) -> None:
    truth = jsonl(tmp_path / "truth.jsonl", TRUTH)
    alerts = jsonl(tmp_path / "alerts.jsonl", ALERTS)
    start16 = {
        "ts": "2026-03-01T08:00:00Z",
        "station": "CP-1",
        "ocpp": "1.6",
        "from": "station",
        "frame": [
            2,
            "1",
            "StartTransaction",
            {"connectorId": 1, "idTag": "AB", "meterStart": 0, "timestamp": "2026-03-01T08:00:00Z"},
        ],
    }
    start201 = {
        "ts": "2026-03-01T08:00:00Z",
        "station": "CP-2",
        "ocpp": "2.0.1",
        "from": "station",
        "frame": [2, "2", "TransactionEvent", {"eventType": "Started"}],
    }
    updated = {**start201, "frame": [2, "3", "TransactionEvent", {"eventType": "Updated"}]}
    capture = jsonl(tmp_path / "capture.jsonl", [start16, start201, updated, {**start16, "from": "csms"}])
    out = tmp_path / "e.json"
    result = CliRunner().invoke(
        app,
        [
            "eval",
            "--truth",
            str(truth),
            "--alerts",
            str(alerts),
            "--capture",
            str(capture),
            "--json",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert orjson.loads(out.read_bytes())["sessions"] == 2


def test_eval_missing_file_exits_1(tmp_path: Path) -> None:
    alerts = jsonl(tmp_path / "alerts.jsonl", ALERTS)
    result = CliRunner().invoke(app, ["eval", "--truth", str(tmp_path / "none"), "--alerts", str(alerts)])
    assert result.exit_code == 1
    assert "does not exist" in result.output


def test_eval_usage_error_exits_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["eval", "--alerts", "x"])
    assert result.exit_code == 2
