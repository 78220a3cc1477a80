"""Injection into real sessions names what the changed traffic really shows, and adds no incident it does not name."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from chargeguard.eval.inject import DELIVERABLE_SHARE, inject
from chargeguard.sources.datasets.records import ConnectorPower, DatasetImport, SessionRecord, StationRecord
from chargeguard.sources.datasets.render import RenderOptions, write_import_full

T0 = datetime(2024, 1, 1, 6, 0, tzinfo=UTC)


def network(kw: float, duration: timedelta) -> DatasetImport:
    data = DatasetImport("test")
    for n in range(4):
        name = f"T-{n}"
        connectors = {1: ConnectorPower(kw, "AC"), 2: ConnectorPower(kw, "AC")}
        data.stations[name] = StationRecord(name, 56.0 + n * 0.01, -3.0, "GB", None, connectors)
    line = 0
    for day in range(40):
        for n in range(4):
            for connector in (1, 2):
                line += 1
                start = T0 + timedelta(days=day, hours=n + connector * 5)
                energy = min(12_000.0, kw * 800.0 * duration.total_seconds() / 3600.0)
                data.sessions.append(
                    SessionRecord(
                        "test", f"T-{n}", connector, start, start + duration, energy,
                        f"user{line % 25}", str(1000 + line), f"s.csv:{line}",
                    )
                )  # fmt: skip
    return data


def powers(lines: list[dict[str, Any]]) -> dict[str, float]:
    """The highest Power.Active.Import each transaction's MeterValues report (1.6 capture)."""
    top: dict[str, float] = {}
    for line in lines:
        frame = line.get("frame", [0])
        if frame[0] != 2 or frame[2] != "MeterValues":
            continue
        tx = str(frame[3]["transactionId"])
        for value in frame[3]["meterValue"]:
            for sampled in value["sampledValue"]:
                if sampled.get("measurand") == "Power.Active.Import":
                    top[tx] = max(top.get(tx, 0.0), float(sampled["value"]))
    return top


def test_cloned_cards_and_intruders_charge_within_their_connector(tmp_path: Path) -> None:
    data = network(3.7, timedelta(hours=2))  # 3-15 kWh in 20-90 min would be far beyond a 3.7 kW post
    kinds = ("token.concurrent_use", "session.overlap")
    injected, _planned = inject(data, per_kind=8, seed=3, sample_interval_s=600, kinds=kinds)
    added = injected.sessions[len(data.sessions) :]
    assert len(added) == 16
    for s in added:
        assert s.end is not None and s.energy_wh is not None
        hours = (s.end - s.start).total_seconds() / 3600.0
        assert 0 < s.energy_wh <= DELIVERABLE_SHARE * 3.7 * 1000.0 * hours + 1e-6
    _report, result = write_import_full(injected, tmp_path, RenderOptions(ocpp="1.6", seed=3), [])
    lines = [orjson.loads(x) for x in (tmp_path / "capture.jsonl").read_bytes().splitlines()]
    top = powers(lines)
    added_tx = [result.transaction_ids[(s.key, s.source)] for s in added]
    assert all(top[tx] <= 3700.0 for tx in added_tx if tx in top)
    assert sum(tx in top for tx in added_tx) >= 12  # most added sessions are sampled at all


def inflated(tmp_path: Path, duration: timedelta) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    data = network(22.0, duration)
    injected, planned = inject(
        data, per_kind=6, seed=5, sample_interval_s=1800, kinds=("meter.inconsistent",)
    )
    _report, result = write_import_full(injected, tmp_path, RenderOptions(ocpp="1.6", seed=5), [])
    truth = [p.truth(result.transaction_ids) for p in planned if p.variant == "a"]
    lines = [orjson.loads(x) for x in (tmp_path / "capture.jsonl").read_bytes().splitlines()]
    return truth, lines


def test_an_inflated_stop_beyond_the_connector_since_the_last_sample_also_accepts_exceeds_capacity(
    tmp_path: Path,
) -> None:
    # 2 h sessions sampled every 30 min: the stop comes about a minute after the last sample
    truth, lines = inflated(tmp_path, timedelta(hours=2))
    assert len(truth) == 3
    assert all(t["also_acceptable"] == ["meter.rollback", "meter.exceeds_capacity"] for t in truth)
    # the capture agrees: each stop rose more than 22 kW could deliver since its transaction's last sample
    last: dict[str, tuple[float, float]] = {}
    rises = []
    for line in lines:
        frame = line.get("frame", [0])
        if frame[0] != 2:
            continue
        if frame[2] == "MeterValues":
            value = frame[3]["meterValue"][0]
            at = datetime.fromisoformat(value["timestamp"]).timestamp()
            last[str(frame[3]["transactionId"])] = (at, float(value["sampledValue"][0]["value"]))
        elif frame[2] == "StopTransaction" and str(frame[3]["transactionId"]) in truth[0]["transactions"]:
            at, wh = last[str(frame[3]["transactionId"])]
            stop_at = datetime.fromisoformat(frame[3]["timestamp"]).timestamp()
            rises.append((frame[3]["meterStop"] - wh) / ((stop_at - at) / 3600.0))
    assert rises and all(w > 22_000.0 for w in rises)


def test_an_inflated_stop_the_connector_could_have_delivered_is_inconsistent_only(tmp_path: Path) -> None:
    # 2 h 29 min sessions: the stop comes almost 30 min after the last sample, time for 11 kWh at 22 kW
    truth, _lines = inflated(tmp_path, timedelta(hours=2, minutes=29))
    assert len(truth) == 3
    assert all(t["also_acceptable"] == ["meter.rollback"] for t in truth)
