"""The scan and demo commands end to end: exit codes, stdout purity, bad input reporting, persistence."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from chargeguard import scenario
from chargeguard.cli.demo import write_scenario


def _run(args: list[str], home: Path, *, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "CHARGEGUARD_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "chargeguard", *args],
        input=stdin,
        capture_output=True,
        env=env,
        timeout=300,
        check=False,
    )


@pytest.fixture(scope="module")
def demo_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return write_scenario(tmp_path_factory.mktemp("demo"), 7)


def test_alerts_to_stdout_carry_only_json(demo_files: tuple[Path, Path], tmp_path: Path) -> None:
    capture, stations = demo_files
    result = _run(["scan", str(capture), "--stations", str(stations), "--alerts", "-"], tmp_path / "home")
    assert result.returncode == 0, result.stderr.decode()[-1500:]
    alerts = [orjson.loads(line) for line in result.stdout.splitlines()]
    kinds = {a["kind"] for a in alerts}
    for expected in scenario.EXPECTED.values():
        assert set(expected) <= kinds
    assert b"scanned 1 file" in result.stderr
    # same input, same settings, same ids
    again = _run(["scan", str(capture), "--stations", str(stations), "--alerts", "-"], tmp_path / "home")
    assert [a["id"] for a in alerts] == [orjson.loads(x)["id"] for x in again.stdout.splitlines()]


def test_stdin_and_bad_lines_are_reported_with_file_and_line(tmp_path: Path) -> None:
    good = {
        "ts": "2026-03-01T08:00:00Z",
        "station": "CP-1",
        "ocpp": "1.6",
        "from": "station",
        "frame": [2, "1", "Heartbeat", {}],
    }
    body = b"\n".join(
        [orjson.dumps(good), b"{broken", b"\xff\xfe", orjson.dumps({**good, "ts": "999999-01-01"})]
    )
    result = _run(["scan", "-", "--alerts", str(tmp_path / "a.jsonl")], tmp_path / "home", stdin=body + b"\n")
    assert result.returncode == 0
    text = result.stdout.decode()
    assert "bad lines: 3" in text and "<stdin>:2" in text and "<stdin>:3" in text
    assert "1 frames" in text.replace(",", "")


def test_nothing_readable_exits_1_and_usage_errors_exit_2(tmp_path: Path) -> None:
    missing = _run(["scan", str(tmp_path / "missing.jsonl")], tmp_path / "home")
    assert missing.returncode == 1
    assert b"does not exist" in missing.stdout + missing.stderr
    bad_inventory = tmp_path / "inv.csv"
    bad_inventory.write_text("station,latitude\nCP-1,91\n")
    usage = _run(["scan", "-", "--stations", str(bad_inventory)], tmp_path / "home", stdin=b"")
    assert usage.returncode == 2
    assert b"missing column" in usage.stderr
    assert _run(["scan", "--no-such-option"], tmp_path / "home").returncode == 2


def test_refuses_to_start_without_key_when_store_has_data(
    demo_files: tuple[Path, Path], tmp_path: Path
) -> None:
    capture, _ = demo_files
    home = tmp_path / "home"
    assert _run(["scan", str(capture)], home).returncode == 0
    (home / "pseudonym.key").unlink()
    result = _run(["scan", str(capture)], home)
    assert result.returncode == 2
    assert b"refusing to create a new key" in result.stderr


def test_detectors_catalogue_lists_every_kind(tmp_path: Path) -> None:
    result = _run(["detectors", "--json"], tmp_path / "home")
    rows = orjson.loads(result.stdout)
    kinds = {k for row in rows for k in row["kinds"]}
    assert {
        "token.concurrent_use",
        "meter.rollback",
        "station.security_downgrade",
        "ocpp.flood",
        "command.stale_local_list",
    } <= kinds
    assert all(row["summary"] for row in rows)


def test_demo_detects_every_scripted_attack(tmp_path: Path) -> None:
    result = _run(["demo", "--out", str(tmp_path / "demo")], tmp_path / "home")
    assert result.returncode == 0, result.stderr.decode()[-1500:]
    assert f"{len(scenario.EXPECTED)}/{len(scenario.EXPECTED)} attacks detected" in result.stdout.decode()
