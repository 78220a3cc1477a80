"""Incident injection into imported sessions: the right number of incidents, truth that points at real frames."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from chargeguard.eval.inject import KINDS, inject, real_oddity_sessions
from chargeguard.eval.kinds import CATALOGUE
from chargeguard.eval.records import incident_from
from chargeguard.sources.datasets.records import ConnectorPower, DatasetImport, SessionRecord, StationRecord
from chargeguard.sources.datasets.render import RenderOptions, write_import_full

T0 = datetime(2024, 1, 1, 6, 0, tzinfo=UTC)


def network() -> DatasetImport:
    data = DatasetImport("test")
    for n in range(4):
        name = f"T-{n}"
        data.stations[name] = StationRecord(
            name,
            56.0 + n * 0.5,
            -3.0,
            "GB",
            None,
            {1: ConnectorPower(22.0, "AC"), 2: ConnectorPower(22.0, "AC")},
        )
    line = 0
    for day in range(30):
        for n in range(4):
            for connector in (1, 2):
                line += 1
                start = T0 + timedelta(days=day, hours=n + connector * 5)
                data.sessions.append(
                    SessionRecord(
                        "test", f"T-{n}", connector, start, start + timedelta(hours=2), 12_000.0,
                        f"user{line % 25}", str(1000 + line), f"s.csv:{line}",
                    )
                )  # fmt: skip
    return data


def render(
    tmp_path: Path, per_kind: int = 2, seed: int = 1
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    data = network()
    injected, planned = inject(data, per_kind=per_kind, seed=seed, sample_interval_s=900, excluded=set())
    _report, result = write_import_full(injected, tmp_path, RenderOptions(ocpp="1.6", seed=seed), [])
    truth = [p.truth(result.transaction_ids) for p in planned]
    lines = [orjson.loads(x) for x in (tmp_path / "capture.jsonl").read_bytes().splitlines()]
    return truth, lines


def test_every_kind_injected_with_valid_truth(tmp_path: Path) -> None:
    truth, lines = render(tmp_path)
    assert Counter(t["kind"] for t in truth) == dict.fromkeys(KINDS, 2)
    started = {
        str(line["frame"][2]["transactionId"])
        for line in lines
        if line.get("frame", [0])[0] == 3 and "transactionId" in line["frame"][2]
    }
    for record in truth:
        incident = incident_from(record, kinds=CATALOGUE)  # schema of the truth format
        assert incident.start <= incident.detectable_at <= incident.end + timedelta(seconds=1)
        assert set(record["transactions"]) <= started
        if record["kind"] != "token.enumeration":
            assert record["transactions"]


def test_injected_traffic_shows_the_behaviour(tmp_path: Path) -> None:
    truth, lines = render(tmp_path)
    calls = [line["frame"] for line in lines if line.get("frame", [0])[0] == 2]
    results = [line["frame"][2] for line in lines if line.get("frame", [0])[0] == 3]
    stops = {str(f[3]["transactionId"]): f[3]["meterStop"] for f in calls if f[2] == "StopTransaction"}
    tx_of_msg = {}
    for line in lines:
        frame = line.get("frame")
        if frame and frame[0] == 3 and "transactionId" in frame[2]:
            tx_of_msg[frame[1]] = str(frame[2]["transactionId"])
    starts = {
        tx_of_msg[f[1]]: f[3]["meterStart"] for f in calls if f[2] == "StartTransaction" and f[1] in tx_of_msg
    }
    rollback_a = next(t for t in truth if t["kind"] == "meter.rollback" and t["variant"] == "a")
    (tx,) = rollback_a["transactions"]
    assert stops[tx] < starts[tx]
    statuses = Counter(r["idTagInfo"]["status"] for r in results if "idTagInfo" in r)
    assert statuses["Blocked"] >= 1 and statuses["Invalid"] + statuses["Expired"] >= 15
    concurrent = next(t for t in truth if t["kind"] == "token.concurrent_use")
    tags = {
        f[3]["idTag"]
        for f in calls
        if f[2] == "StartTransaction" and tx_of_msg.get(f[1]) in concurrent["transactions"]
    }
    assert len(tags) == 1  # one card, two transactions at once


def test_same_seed_same_incidents(tmp_path: Path) -> None:
    a, _ = render(tmp_path / "a", seed=4)
    b, _ = render(tmp_path / "b", seed=4)
    c, _ = render(tmp_path / "c", seed=5)
    assert a == b and a != c


def test_oddities_are_left_alone() -> None:
    data = network()
    odd = data.sessions[0]
    data.sessions[0] = SessionRecord(
        odd.dataset, odd.station, odd.connector, odd.start, odd.end, -5000.0, odd.user, odd.key, odd.source
    )
    excluded = real_oddity_sessions(data)
    assert (odd.key, odd.source) in excluded
    injected, _ = inject(data, per_kind=5, seed=1, sample_interval_s=900, excluded=excluded)
    assert injected.sessions[0] == data.sessions[0]
