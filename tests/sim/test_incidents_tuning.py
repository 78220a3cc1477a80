"""The tuning incident set does what its ground truth says: the evidence is really in the capture."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pytest

from chargeguard.sim.catalogue import incident_set
from chargeguard.sim.output import simulate
from chargeguard.sim.runner import SimConfig


def _time(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@pytest.fixture(scope="module")
def tuned(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    out = tmp_path_factory.mktemp("tuning")
    # benign clock drift on many stations: an incident's clock shift must win over it
    simulate(SimConfig(stations=30, days=2.0, seed=7, incidents=incident_set("tuning"), clock_rate=0.5), out)
    lines = [json.loads(line) for line in (out / "capture.jsonl").read_text(encoding="utf-8").splitlines()]
    truth = [json.loads(line) for line in (out / "truth.jsonl").read_text(encoding="utf-8").splitlines()]
    return lines, truth


def _of(truth: list[dict[str, Any]], variant: str) -> list[dict[str, Any]]:
    found = [t for t in truth if t.get("variant") == variant]
    assert found, f"no {variant} incident in the run"
    return found


def _maybe(truth: list[dict[str, Any]], variant: str) -> list[dict[str, Any]]:
    """Incidents of a variant the run could place (one may be skipped when no station is idle for it)."""
    return [t for t in truth if t.get("variant") == variant]


def test_clock_skew_incidents_really_shift_the_station_clock(tuned: Any) -> None:
    lines, truth = tuned
    checked = 0
    for variant, offset in (("hours_ahead", 7200.0), ("hours_behind", -18_000.0), ("days_ahead", 173_400.0)):
        for incident in _maybe(truth, variant):
            checked += 1
            station, start, end = incident["stations"][0], _time(incident["start"]), _time(incident["end"])
            skews = [
                _time(line["frame"][3]["timestamp"]) - _time(line["ts"])
                for line in lines
                if line["station"] == station
                and "frame" in line
                and line["frame"][0] == 2
                and isinstance(line["frame"][3].get("timestamp"), str)
                and start <= _time(line["ts"]) <= end
            ]
            assert len(skews) >= 3, incident
            assert all(abs(s - offset) < 120 for s in skews), (variant, sorted(skews)[:3])
    assert checked >= 2


def test_reconnect_storm_leaves_the_station_connected(tuned: Any) -> None:
    lines, truth = tuned
    for incident in _of(truth, "reconnect_storm"):
        station, end = incident["stations"][0], _time(incident["end"])
        events = [
            ln["event"]
            for ln in lines
            if ln["station"] == station and "event" in ln and _time(ln["ts"]) <= end
        ]
        assert events[-1] == "connect"


def test_deauthorised_mid_session_answers_a_refusal_and_energy_keeps_flowing(tuned: Any) -> None:
    lines, truth = tuned
    for incident in _of(truth, "deauthorised_mid_session"):
        station, tx = incident["stations"][0], incident["transactions"][0]
        calls = {
            ln["frame"][1]: ln
            for ln in lines
            if ln["station"] == station
            and "frame" in ln
            and ln["frame"][0] == 2
            and ln["frame"][2] == "TransactionEvent"
            and ln["frame"][3]["transactionInfo"]["transactionId"] == tx
        }
        refused = [
            ln for ln in lines
            if ln["station"] == station and "frame" in ln and ln["frame"][0] == 3 and ln["frame"][1] in calls
            and ln["frame"][2].get("idTokenInfo", {}).get("status", "Accepted") != "Accepted"
        ]  # fmt: skip
        assert len(refused) == 1
        request = calls[refused[0]["frame"][1]]
        assert "idToken" not in request["frame"][3]  # only the answer names the verdict
        registers = [
            float(sv["value"])
            for ln in calls.values()
            for mv in ln["frame"][3].get("meterValue", ())
            for sv in mv["sampledValue"]
            if sv.get("measurand", "Energy.Active.Import.Register") == "Energy.Active.Import.Register"
        ]
        at_refusal = float(request["frame"][3]["meterValue"][0]["sampledValue"][0]["value"])
        assert max(registers) - at_refusal > 1000.0


def test_overlapping_travel_starts_while_the_first_session_still_charges(tuned: Any) -> None:
    lines, truth = tuned
    for incident in _of(truth, "overlapping_sessions"):
        first_station = incident["stations"][0]
        first_tx = incident["transactions"][0]
        detectable = _time(incident["detectable_at"])
        ended = [
            _time(ln["ts"])
            for ln in lines
            if ln["station"] == first_station
            and "frame" in ln
            and ln["frame"][0] == 2
            and (
                (ln["frame"][2] == "StopTransaction" and str(ln["frame"][3]["transactionId"]) == first_tx)
                or (
                    ln["frame"][2] == "TransactionEvent"
                    and ln["frame"][3]["eventType"] == "Ended"
                    and ln["frame"][3]["transactionInfo"]["transactionId"] == first_tx
                )
            )
        ]
        assert ended and ended[0] > detectable  # the card shows up elsewhere before the first session ends
        assert incident["also_acceptable"] == ["token.concurrent_use"]
