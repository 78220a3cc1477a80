"""Tests for the network simulator: determinism, schema validity, clean benign traffic, truth, memory, CLI."""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import tracemalloc
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from chargeguard.cli import app
from chargeguard.eval.kinds import CATALOGUE as KNOWN_KINDS
from chargeguard.sim.catalogue import incident_set
from chargeguard.sim.distributions import fitted
from chargeguard.sim.output import simulate
from chargeguard.sim.runner import SimConfig, Simulation

Validate = Callable[[Iterable[dict[str, Any]]], set[tuple[str, str, bool]]]
SMALL = SimConfig(stations=12, days=1.0, seed=11)


def read_lines(path: Path) -> list[dict[str, Any]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def digest(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


@pytest.fixture(scope="module")
def benign(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("benign")
    simulate(
        replace(SMALL, ocpp="mix", reboot_rate=0.2, firmware_rate=0.2, offline_rate=0.3, clock_rate=0.3), out
    )
    return out


@pytest.fixture(scope="module")
def attacked(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("attacked")
    simulate(SimConfig(stations=36, days=1.5, seed=4, incidents=incident_set("tuning")), out)
    return out


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    config = replace(SMALL, stations=6, incidents=incident_set("tuning"))
    simulate(config, tmp_path / "a", compress=True)
    simulate(config, tmp_path / "b", compress=True)
    simulate(replace(config, seed=12), tmp_path / "c", compress=True)
    assert digest(tmp_path / "a") == digest(tmp_path / "b")
    assert digest(tmp_path / "a")["capture.jsonl.gz"] != digest(tmp_path / "c")["capture.jsonl.gz"]


def test_capture_is_in_ts_order_and_well_formed(benign: Path) -> None:
    lines = read_lines(benign / "capture.jsonl")
    stamps = [line["ts"] for line in lines]
    assert stamps == sorted(stamps)
    assert all(datetime.fromisoformat(ts).utcoffset() is not None for ts in stamps[:50])
    frames = [line for line in lines if "frame" in line]
    assert len(frames) > 2000
    assert {line["from"] for line in frames} == {"station", "csms"}
    connects = [line for line in lines if line.get("event") == "connect"]
    assert connects and all(line["remote"] and line["security_profile"] in (1, 2, 3) for line in connects)
    seen: set[tuple[str, str, str]] = set()
    for line in frames:
        if line["frame"][0] == 2:
            key = (line["station"], line["from"], line["frame"][1])
            assert key not in seen, f"message id reused: {key}"
            seen.add(key)


def test_every_benign_frame_type_validates_against_the_ocpp_schemas(benign: Path, validate: Validate) -> None:
    lines = read_lines(benign / "capture.jsonl")
    kinds = validate(lines)
    actions = {(v, a) for v, a, _ in kinds}
    for version in ("1.6", "2.0.1"):
        assert {
            (version, "BootNotification"),
            (version, "Heartbeat"),
            (version, "StatusNotification"),
        } <= actions
    assert ("1.6", "StartTransaction") in actions and ("2.0.1", "TransactionEvent") in actions


def test_incident_frames_validate_except_deliberately_malformed_ones(
    attacked: Path, validate: Validate
) -> None:
    truths = read_lines(attacked / "truth.jsonl")
    broken = {s for t in truths if t["kind"] == "ocpp.malformed" for s in t["stations"]}
    lines = [line for line in read_lines(attacked / "capture.jsonl") if line["station"] not in broken]
    kinds = validate(lines)
    actions = {a for _, a, _ in kinds}
    assert {
        "SendLocalList",
        "UpdateFirmware",
        "SecurityEventNotification",
        "RemoteStartTransaction",
    } <= actions


def _connector_limits(directory: Path) -> dict[tuple[str, str], float]:
    with (directory / "stations.csv").open(encoding="utf-8") as handle:
        return {
            (r["station"], r["connector_id"]): float(r["max_kw"])
            for r in csv.DictReader(handle)
            if r["connector_id"]
        }


def _energy_and_power(line: dict[str, Any]) -> tuple[float | None, float | None]:
    energy = power = None
    for mv in line["frame"][3].get("meterValue", ()):
        for sv in mv["sampledValue"]:
            if sv["measurand"] == "Energy.Active.Import.Register":
                energy = float(sv["value"])
            elif sv["measurand"] == "Power.Active.Import":
                power = float(sv["value"])
    return energy, power


def test_benign_traffic_has_no_incident_by_accident(benign: Path) -> None:
    """Powers within the rating, registers that only grow per connector, no card in two open transactions."""
    limits = _connector_limits(benign)
    registers: dict[tuple[str, str], float] = {}
    tx_connector: dict[tuple[str, str], str] = {}  # (station, transaction) -> connector as in the inventory
    open_tx: dict[str, set[tuple[str, str]]] = defaultdict(set)  # token -> open (station, transaction)
    pending_start: dict[tuple[str, str], dict[str, Any]] = {}
    checked = 0

    def reading(sid: str, connector: str, energy: float | None, power: float | None) -> None:
        nonlocal checked
        key = (sid, connector)
        if power is not None:
            assert power <= limits[key] * 1000, (sid, connector, power)
        if energy is not None:
            assert energy >= registers.get(key, 0.0), (sid, connector, energy, registers.get(key))
            registers[key] = energy
            checked += 1

    def opened(token: str, key: tuple[str, str]) -> None:
        assert not open_tx[token], f"card in two open transactions: {open_tx[token]} and {key}"
        open_tx[token].add(key)

    for line in read_lines(benign / "capture.jsonl"):
        frame = line.get("frame")
        if frame is None:
            continue
        sid = line["station"]
        if frame[0] == 3 and (sid, frame[1]) in pending_start:
            start = pending_start.pop((sid, frame[1]))
            tx = str(frame[2]["transactionId"])
            tx_connector[(sid, tx)] = str(start["connectorId"])
            opened(start["idTag"], (sid, tx))
            continue
        if frame[0] != 2 or line["from"] != "station":
            continue
        action, p = frame[2], frame[3]
        if action == "StartTransaction":
            reading(sid, str(p["connectorId"]), float(p["meterStart"]), None)
            pending_start[(sid, frame[1])] = p
        elif action == "MeterValues" and "transactionId" in p:
            reading(sid, str(p["connectorId"]), *_energy_and_power(line))
        elif action == "StopTransaction":
            tx = str(p["transactionId"])
            reading(sid, tx_connector[(sid, tx)], float(p["meterStop"]), None)
            for keys in open_tx.values():
                keys.discard((sid, tx))
        elif action == "TransactionEvent":
            tx = p["transactionInfo"]["transactionId"]
            if "evse" in p:
                tx_connector[(sid, tx)] = f"{p['evse']['id']}/{p['evse']['connectorId']}"
            reading(sid, tx_connector[(sid, tx)], *_energy_and_power(line))
            token = p.get("idToken", {}).get("idToken")
            if token and (sid, tx) not in open_tx[token] and p["eventType"] != "Ended":
                opened(token, (sid, tx))
            if p["eventType"] == "Ended":
                for keys in open_tx.values():
                    keys.discard((sid, tx))
    assert checked > 100


def test_benign_oddities_are_present(benign: Path) -> None:
    lines = read_lines(benign / "capture.jsonl")
    transaction_actions = ("MeterValues", "TransactionEvent", "StopTransaction", "StartTransaction")
    queued = [
        line
        for line in lines
        if "frame" in line
        and line["frame"][0] == 2
        and line["frame"][2] in transaction_actions
        and (
            datetime.fromisoformat(line["ts"]) - datetime.fromisoformat(_stamp(line["frame"][3]))
        ).total_seconds()
        > 300
    ]
    actions = {line["frame"][2] for line in lines if "frame" in line and line["frame"][0] == 2}
    assert {"FirmwareStatusNotification", "UpdateFirmware", "Reset"} & actions
    assert queued, "offline periods should replay queued transaction messages"
    assert all(
        line["frame"][3].get("offline") is True for line in queued if line["frame"][2] == "TransactionEvent"
    )
    energies = [p["meterStop"] - s for p, s in _stops_and_starts(lines)]
    assert energies and all(e >= 0 for e in energies)


def test_sessions_follow_the_fitted_distributions() -> None:
    """Energies and durations come from the fitted models, zero-energy sessions included, within the rating."""
    sim = Simulation(SimConfig(stations=40, days=1.0, seed=9))
    stations = sim.network.stations
    by_class: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for i in range(3000):
        station = stations[i % len(stations)]
        connector = station.connectors[0]
        connector.busy_until = 0.0
        plan = sim.factory.plan(station, connector, "04AABBCCDDEEFF", 1_772_409_600.0 + i * 86_400)
        hours = (plan.end - plan.start).total_seconds() / 3600
        assert 0 <= plan.energy_wh <= 0.85 * connector.max_kw * 1000 * hours + 1
        by_class[connector.session_class].append((plan.energy_wh, hours))
    for name, rows in by_class.items():
        model = fitted().classes[name]
        zero = sum(e == 0 for e, _ in rows) / len(rows)
        if len(rows) > 300:
            assert abs(zero - model.zero_energy_share) < 0.05, (name, zero)
            median_h = sorted(h for _, h in rows)[len(rows) // 2]
            assert 0.5 < median_h / (model.duration_min.at(0.5) / 60) < 2.0, name


def _stamp(payload: dict[str, Any]) -> str:
    if "timestamp" in payload:
        return str(payload["timestamp"])
    return str(payload["meterValue"][0]["timestamp"])


def _stops_and_starts(lines: list[dict[str, Any]]) -> list[tuple[dict[str, Any], int]]:
    starts: dict[int, int] = {}
    results: dict[str, dict[str, Any]] = {}
    pending: dict[str, int] = {}
    out = []
    for line in lines:
        frame = line.get("frame")
        if frame is None or line["ocpp"] != "1.6":
            continue
        if frame[0] == 2 and frame[2] == "StartTransaction":
            pending[frame[1]] = frame[3]["meterStart"]
        elif frame[0] == 3 and frame[1] in pending:
            starts[frame[2]["transactionId"]] = pending.pop(frame[1])
        elif frame[0] == 2 and frame[2] == "StopTransaction" and frame[3]["transactionId"] in starts:
            out.append((frame[3], starts[frame[3]["transactionId"]]))
    del results
    return out


def _wire_transactions(lines: list[dict[str, Any]]) -> set[str]:
    found: set[str] = set()
    for line in lines:
        frame = line.get("frame")
        if frame is None:
            continue
        payload = frame[3] if frame[0] == 2 else frame[2] if frame[0] == 3 else {}
        if isinstance(payload, dict):
            if "transactionId" in payload:
                found.add(str(payload["transactionId"]))
            if "transactionInfo" in payload:
                found.add(str(payload["transactionInfo"]["transactionId"]))
    return found


def test_truth_records_have_the_public_shape_and_point_into_the_capture(attacked: Path) -> None:
    truths = read_lines(attacked / "truth.jsonl")
    lines = read_lines(attacked / "capture.jsonl")
    stations = {line["station"] for line in lines}
    transactions = _wire_transactions(lines)
    moments: dict[str, set[str]] = defaultdict(set)  # station -> transport and payload times of its lines
    for line in lines:
        moments[line["station"]].add(line["ts"])
        frame = line.get("frame")
        if (
            frame is not None
            and frame[0] == 2
            and isinstance(frame[3], dict)
            and ("timestamp" in frame[3] or frame[3].get("meterValue"))
        ):
            moments[line["station"]].add(_stamp(frame[3]))
    tuning_kinds = {spec.kind for spec in incident_set("tuning")}
    assert len({t["variant"] for t in truths}) >= 40
    assert tuning_kinds - {"command.fleet_synchronised"} <= {t["kind"] for t in truths}
    for t in truths:
        assert {"kind", "stations", "transactions", "start", "end", "detectable_at", "note"} <= t.keys()
        assert t["kind"] in KNOWN_KINDS and set(t.get("also_acceptable", ())) <= KNOWN_KINDS
        start, end, at = (datetime.fromisoformat(t[k]) for k in ("start", "end", "detectable_at"))
        assert all(
            x.utcoffset() is not None and t[k].endswith("Z") for x, k in ((start, "start"), (end, "end"))
        )
        assert start <= end and start.timestamp() - 1 <= at.timestamp() <= end.timestamp() + 1, t
        assert t["stations"] and set(t["stations"]) <= stations, t
        assert set(t["transactions"]) <= transactions, t
        assert t.get("subtle", False) == t["kind"].startswith("anomaly.")
        assert t["detectable_at"] in moments[t["stations"][0]] or any(
            t["detectable_at"] in moments[s] for s in t["stations"]
        ), t
        assert not any(tok in t["note"] for tok in ("04", "idTag")) or "kWh" in t["note"] or "km" in t["note"]


def test_memory_stays_bounded_as_the_run_grows() -> None:
    """Four times the frames, about the same peak: a leak of even 20 bytes a frame would show."""

    def peak(days: float) -> int:
        sim = Simulation(SimConfig(stations=15, days=days, seed=2))
        tracemalloc.start()
        stats = sim.run(lambda t, line: None)
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert stats.frames > 1000 * days
        return top

    short, long = peak(1.0), peak(4.0)
    assert long < short * 1.5 + 1_000_000, (short, long)


def test_cli_writes_all_files(tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = CliRunner().invoke(
        app, ["simulate", "--stations", "5", "--days", "0.5", "--seed", "3", "--out", str(out), "--gzip",
              "--ocpp", "2.0.1", "--incidents", "none", "--meter-interval", "120"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert {p.name for p in out.iterdir()} == {
        "capture.jsonl.gz",
        "stations.csv",
        "truth.jsonl",
        "network.json",
    }
    lines = read_lines(out / "capture.jsonl.gz")
    assert {line["ocpp"] for line in lines if "frame" in line} == {"2.0.1"}
    assert (out / "truth.jsonl").read_text() == ""
    meta = json.loads((out / "network.json").read_text())
    assert meta["seed"] == 3 and meta["frames"] == sum("frame" in line for line in lines)
    with (out / "stations.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert {r["connector_type"] for r in rows if r["connector_id"]} <= {"AC", "DC"}
    bad = CliRunner().invoke(app, ["simulate", "--out", str(out), "--start", "2026-03-01T00:00:00"])
    assert bad.exit_code == 2


def test_holdout_set_is_frozen() -> None:
    """The holdout incident set must not change silently (nobody tunes detectors on it): its files match the
    committed manifest. Changing it is a new holdout version: update tests/sim/holdout.sha256 deliberately."""
    import chargeguard.sim.incidents_holdout as holdout

    package = Path(holdout.__file__).parent
    manifest = {
        name: digest
        for digest, name in (
            line.split() for line in (Path(__file__).parent / "holdout.sha256").read_text().splitlines()
        )
    }
    actual = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(package.glob("*.py"))}
    assert actual == manifest
    assert "FROZEN before any detector was tuned" in (holdout.__doc__ or "")
    tuning, frozen = incident_set("tuning"), incident_set("holdout")
    assert {s.kind for s in frozen} == {s.kind for s in tuning}
    assert not {s.variant for s in frozen} & {s.variant for s in tuning}
    assert not {s.build for s in frozen} & {s.build for s in tuning}


def test_holdout_incidents_inject_and_point_into_the_capture(tmp_path: Path) -> None:
    simulate(SimConfig(stations=30, days=1.5, seed=6, incidents=incident_set("holdout")), tmp_path)
    truths = read_lines(tmp_path / "truth.jsonl")
    lines = read_lines(tmp_path / "capture.jsonl")
    stations, transactions = {line["station"] for line in lines}, _wire_transactions(lines)
    assert len({t["variant"] for t in truths}) >= 30
    for t in truths:
        assert (
            t["kind"] in KNOWN_KINDS
            and set(t["stations"]) <= stations
            and set(t["transactions"]) <= transactions
        )


def test_benign_capture_raises_no_alert_in_the_real_scanner(
    benign: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """End to end: every detector stays silent on benign simulated traffic (oddities included)."""
    monkeypatch.setenv("CHARGEGUARD_HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    alerts = tmp_path / "alerts.jsonl"
    result = CliRunner().invoke(
        app,
        ["scan", str(benign / "capture.jsonl"), "--stations", str(benign / "stations.csv"), "--alerts", str(alerts),
         "--no-store"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert alerts.read_text(encoding="utf-8") == ""
