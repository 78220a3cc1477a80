"""Dundee importer on slices of the real files: sessions, quirks, schema-valid frames, tokens, inventory."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from chargeguard.inventory import load_inventory
from chargeguard.sources.datasets.dundee import import_dundee
from chargeguard.sources.datasets.render import RenderOptions, write_import

HEADER_USER = (
    "Charging event,User ID,CP ID,Connector,Start Date,Start Time,End Date,End Time,Total kWh,Cost,"
    "Site,Group,Model,,,\n"
)
SITE = '"Dundee House, Dundee",G,APT 7kW Single Outlet,,,\n'


def make_slice(ds: Any, tmp_path: Path) -> Path:
    folder = tmp_path / "dundee"
    ds.slice_file(ds.real("scotland-dundee/cpdata.csv"), folder / "cpdata.csv", 60)
    extra = [
        "\n",  # a blank row
        ",,,,,,,,,,,,,,,\n",  # a row of empty cells
        HEADER_USER,  # a repeated header row
        # odd but parseable rows, which must be kept: negative energy, end before start, the 1,430 kWh session
        "9000001,U1,51198,1,31/08/2018,09:51,31/08/2018,10:18,-9.54,0," + SITE,
        "9000002,U1,51198,2,31/08/2018,12:00,31/08/2018,11:00,3.5,0," + SITE,
        "9000003,U2,51203,1,14/08/2018,15:41,15/08/2018,09:02,1430.17,0," + SITE,
        "9000004,U2,51203,2,14/08/2018,25:41,15/08/2018,09:02,1.0,0," + SITE,
    ]
    ds.slice_file(
        ds.real("scotland-dundee/charge-sessions-june-sept.csv"),
        folder / "charge-sessions-june-sept.csv",
        100,
        extra=extra,
    )
    ds.slice_file(ds.real("scotland-dundee/cp-locations.csv"), folder / "cp-locations.csv", 90)
    return folder


def test_dundee_slice(ds: Any, tmp_path: Path) -> None:
    folder = make_slice(ds, tmp_path)
    data = import_dundee([folder])
    # cpdata.csv rows 2 and 3 have no CP ID; the bad hour 25:41 is unparsable too
    problems = [str(p) for p in data.problems]
    assert problems == [
        "charge-sessions-june-sept.csv:108: column 'Start Date': not a time in the format %d/%m/%Y %H:%M",
        "cpdata.csv:2: column 'CP ID': is empty",
        "cpdata.csv:3: column 'CP ID': is empty",
    ]
    assert data.blank_rows == 2 and data.header_rows == 1
    assert len(data.sessions) == 60 + 100 + 3 - 2
    first = next(s for s in data.sessions if s.key == "7751157")  # 06/09/2018 23:55 BST
    assert first.start == datetime(2018, 9, 6, 22, 55, tzinfo=UTC)
    assert first.energy_wh == 22287.0 and first.station == "DUN-50914" and first.connector == 1
    winter = next(s for s in data.sessions if s.source == "cpdata.csv:4")  # 01/12/2017 12:07 GMT
    assert winter.start == datetime(2017, 12, 1, 12, 7, tzinfo=UTC)
    assert data.stations["DUN-51203"].connector_kw(1) == 7.0
    assert data.stations["DUN-50349"].connector_kw(1) == 50.0

    report = write_import(
        data, tmp_path / "out", RenderOptions(ocpp="mix", seed=3, sample_interval_s=900), [folder]
    )
    lines = ds.read_capture(tmp_path / "out" / "capture.jsonl")
    assert ds.validate_frames(lines) == report["frames"] - report["stations"]  # minus one connect line each
    assert ds.transaction_starts(lines) == len(data.sessions)
    assert report["unparsable_rows"] == 3 and report["sessions"] == len(data.sessions)
    assert {line["ocpp"] for line in lines if "ocpp" in line} == {"1.6", "2.0.1"}
    assert [line["ts"] for line in lines] == sorted(line["ts"] for line in lines)
    text = (tmp_path / "out" / "capture.jsonl").read_text()
    for raw_user in ("601838", "604982", "603522H", '"U1"', '"U2"'):
        assert raw_user not in text
    assert report["oddities"]["negative_energy"] >= 1
    assert report["oddities"]["end_before_start"] == 1
    assert report["oddities"]["energy_beyond_outlet"] >= 1
    inventory = load_inventory(tmp_path / "out" / "stations.csv")
    assert inventory.get("DUN-50349") is not None
    assert inventory.stations["DUN-51203"].latitude is not None


def stops(lines: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per transaction id: meter start/stop and start/stop payload times, both versions."""
    found: dict[str, dict[str, Any]] = {}
    starts_by_msg: dict[str, dict[str, Any]] = {}
    for line in lines:
        frame = line.get("frame")
        if not frame:
            continue
        if frame[0] == 2 and frame[2] == "StartTransaction":
            starts_by_msg[frame[1]] = frame[3]
        elif frame[0] == 3 and frame[1] in starts_by_msg and "transactionId" in frame[2]:
            p = starts_by_msg.pop(frame[1])
            found[str(frame[2]["transactionId"])] = {"start": p["meterStart"], "start_at": p["timestamp"]}
        elif frame[0] == 2 and frame[2] == "StopTransaction":
            found[str(frame[3]["transactionId"])].update(
                stop=frame[3]["meterStop"], stop_at=frame[3]["timestamp"]
            )
        elif frame[0] == 2 and frame[2] == "TransactionEvent":
            p = frame[3]
            tx = p["transactionInfo"]["transactionId"]
            register = next(
                (v["value"] for mv in p.get("meterValue", []) for v in mv["sampledValue"]
                 if v.get("measurand") == "Energy.Active.Import.Register"),
                None,
            )  # fmt: skip
            if p["eventType"] == "Started":
                found[tx] = {"start": register, "start_at": p["timestamp"]}
            elif p["eventType"] == "Ended":
                found[tx].update(stop=register, stop_at=p["timestamp"])
    return found


def test_odd_rows_become_the_traffic_they_imply(ds: Any, tmp_path: Path) -> None:
    folder = make_slice(ds, tmp_path)
    data = import_dundee([folder])
    for version in ("1.6", "2.0.1"):
        out = tmp_path / version
        write_import(data, out, RenderOptions(ocpp=version, seed=1, sample_interval_s=900), [folder])
        tx = stops(ds.read_capture(out / "capture.jsonl"))
        negative, backwards, huge = tx["9000001"], tx["9000002"], tx["9000003"]
        assert negative["stop"] - negative["start"] == round(-9540.0)
        assert backwards["stop_at"] < backwards["start_at"]
        assert huge["stop"] - huge["start"] == 1430170
        # registers continue across sessions of one connector: the next session starts where this one stopped
        ordered = sorted((v for v in tx.values() if "stop" in v), key=lambda v: v["start_at"])
        assert any(a["stop"] == b["start"] for a, b in itertools.pairwise(ordered))


def test_same_seed_same_bytes(ds: Any, tmp_path: Path) -> None:
    folder = make_slice(ds, tmp_path)
    data = import_dundee([folder])
    a = tmp_path / "a"
    b = tmp_path / "b"
    c = tmp_path / "c"
    write_import(data, a, RenderOptions(seed=5, sample_interval_s=900), [folder])
    write_import(import_dundee([folder]), b, RenderOptions(seed=5, sample_interval_s=900), [folder])
    write_import(data, c, RenderOptions(seed=6, sample_interval_s=900), [folder])
    assert (a / "capture.jsonl").read_bytes() == (b / "capture.jsonl").read_bytes()
    assert (a / "capture.jsonl").read_bytes() != (c / "capture.jsonl").read_bytes()
