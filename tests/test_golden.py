"""Golden capture: the scripted scenario (committed under tests/golden/) must give exactly the reviewed alerts.

Regenerate with scripts/regen-golden after an intended change and review the diff.
"""

from __future__ import annotations

from pathlib import Path

from golden_support import GOLDEN, golden_alerts, write_inputs


def test_scenario_capture_is_reproducible(tmp_path: Path) -> None:
    capture, stations = write_inputs(tmp_path)
    assert capture.read_bytes() == (GOLDEN / "capture.jsonl").read_bytes()
    assert stations.read_bytes() == (GOLDEN / "stations.csv").read_bytes()


def test_scenario_gives_the_reviewed_alerts() -> None:
    expected = (GOLDEN / "scenario.alerts.jsonl").read_text(encoding="utf-8").splitlines()
    actual = golden_alerts(GOLDEN / "capture.jsonl", GOLDEN / "stations.csv")
    assert actual == expected
