"""Perth, Trondheim and EPFL importers on slices of the real files; the general CSV mapping."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from chargeguard.errors import ConfigError
from chargeguard.sources.datasets.csvmap import import_csv
from chargeguard.sources.datasets.epfl import import_epfl
from chargeguard.sources.datasets.mapping import load_mapping, mapping_from_dict
from chargeguard.sources.datasets.perth import import_perth, site_key
from chargeguard.sources.datasets.render import RenderOptions, write_import
from chargeguard.sources.datasets.trondheim import import_trondheim


def render_and_check(ds: Any, data: Any, out: Path, ocpp: str = "mix") -> dict[str, Any]:
    report = write_import(data, out, RenderOptions(ocpp=ocpp, seed=2, sample_interval_s=900), [])
    lines = ds.read_capture(out / "capture.jsonl")
    ds.validate_frames(lines)
    assert ds.transaction_starts(lines) == len(data.sessions) == report["sessions"]
    assert [line["ts"] for line in lines] == sorted(line["ts"] for line in lines)
    return report


def test_perth_slice(ds: Any, tmp_path: Path) -> None:
    folder = tmp_path / "perth"
    src = "scotland-perth-kinross/"
    header = "CP ID,Connector,Start Date,Start Time,End Date,End Time,Total kWh,Site,Model\n"
    ds.slice_file(
        ds.real(src + "sept18toaug19standardisedcorrected.csv"), folder / "s.csv", 200, extra=["\n", header]
    )
    ds.slice_file(ds.real(src + "perth_locations.csv"), folder / "perth_locations.csv", 30)
    data = import_perth([folder])
    assert len(data.sessions) == 200 and not data.problems
    assert data.blank_rows == 1 and data.header_rows == 1
    first = data.sessions[0]  # 31/08/2019 23:26 BST
    assert first.start == datetime(2019, 8, 31, 22, 26, tzinfo=UTC) and first.station == "PKC-51516"
    assert first.energy_wh == pytest.approx(12780.0)
    located = [s for s in data.stations.values() if s.latitude is not None]
    assert len(located) == len(data.stations)  # every site name of the slice matched the location file
    assert data.stations["PKC-51516"].connector_kw(2) == 50.0
    report = render_and_check(ds, data, tmp_path / "out")
    assert report["unparsable_rows"] == 0


def test_perth_site_names_meet() -> None:
    assert site_key(" Leslie Street Car Park, Blairgowrie") == site_key("Leslie Street Car Park")
    assert site_key("Canal Street Car Park 3rd floor ") == "canal street car park 3rd floor"


def test_trondheim_slice_decimal_commas_day_first_and_na(ds: Any, tmp_path: Path) -> None:
    path = ds.real("norway-residential-trondheim/Dataset 1_EV charging reports.csv")
    na_row = "5052;MS22;MS22-1;Private;NA;16.12.2019 15:18;15;NA;NA;22,73;NA;Dec;Monday\n"
    bad_row = "9999;MS22;MS22-1;Private;NA;16.12.2019 15:18;15;17.12.2019 10:00;10;abc;NA;Dec;Tuesday\n"
    src = ds.slice_file(path, tmp_path / "tr.csv", 300, extra=[na_row, bad_row])
    data = import_trondheim([src])
    assert [str(p) for p in data.problems] == ["tr.csv:303: column 'El_kWh': not a number"]
    assert len(data.sessions) == 301
    first = data.sessions[0]  # 21.12.2018 10:20 CET, 0,3 kWh
    assert first.start == datetime(2018, 12, 21, 9, 20, tzinfo=UTC)
    assert first.energy_wh == pytest.approx(300.0) and first.station == "TRD-AdO3"
    open_one = next(s for s in data.sessions if s.key == "5052")
    assert open_one.end is None and open_one.energy_wh == pytest.approx(22730.0)
    report = render_and_check(ds, data, tmp_path / "out", ocpp="1.6")
    assert report["open_sessions"] == 1
    stops = [
        line for line in ds.read_capture(tmp_path / "out" / "capture.jsonl")
        if line.get("frame", [None])[0] == 2 and line["frame"][2] == "StopTransaction"
    ]  # fmt: skip
    assert len(stops) == 300  # the NA row starts and never stops
    # private boxes of distinct users are distinct connectors of the garage
    users = {s.user: s.connector for s in data.sessions if s.station == "TRD-AdO3"}
    assert len(set(users.values())) == len(users)


def test_epfl_slice(ds: Any, tmp_path: Path) -> None:
    src = ds.slice_file(ds.real("epfl-level3-dc-fast/Session_data.csv"), tmp_path / "Session_data.csv", 120)
    data = import_epfl([src])
    assert len(data.sessions) == 120 and not data.problems
    first = data.sessions[0]  # 2022-08-11 23:33:00 CEST, 9632 Wh, CCS1, Pmax 168393 W
    assert first.start == datetime(2022, 8, 11, 21, 33, tzinfo=UTC)
    assert (first.energy_wh, first.connector, first.max_power_w) == (9632.0, 1, 168393.0)
    assert {s.station for s in data.sessions} == {"EPFL-L3"}
    assert data.stations["EPFL-L3"].connector_kw(2) == 172.5
    render_and_check(ds, data, tmp_path / "out", ocpp="2.0.1")


def test_general_mapping_toml(tmp_path: Path) -> None:
    (tmp_path / "m.toml").write_text(
        'dataset = "town"\ndelimiter = ";"\ndecimal = ","\nzone = "Europe/Berlin"\n'
        'time_format = "%d.%m.%Y %H:%M"\ndefault_max_kw = 11\n'
        '[columns]\nstation = "Box"\nstart = "Von"\nend = "Bis"\nenergy = "kWh"\nuser = "Karte"\n',
        encoding="utf-8",
    )
    (tmp_path / "s.csv").write_text(
        "Box;Von;Bis;kWh;Karte\n"
        "A1;01.07.2024 10:00;01.07.2024 11:30;7,5;K1\n"
        "\n"
        "A1;31.06.2024 10:00;01.07.2024 11:30;1;K1\n"
        ";01.07.2024 12:00;01.07.2024 13:00;2;K2\n"
        "A2;01.07.2024 12:00;01.07.2024 11:00;-3,25;K2\n",
        encoding="utf-8",
    )
    data = import_csv([tmp_path / "s.csv"], load_mapping(tmp_path / "m.toml"))
    assert [str(p) for p in data.problems] == [
        "s.csv:4: column 'Von': not a time in the format %d.%m.%Y %H:%M",
        "s.csv:5: column 'Box': is empty",
    ]
    a, b = data.sessions
    assert a.start == datetime(2024, 7, 1, 8, 0, tzinfo=UTC) and a.energy_wh == pytest.approx(7500.0)
    assert b.end is not None and b.end < b.start and b.energy_wh == pytest.approx(-3250.0)  # kept as it is
    assert data.stations["town-A1"].connector_kw(1) == 11.0


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"columns": {"start": "x"}}, "at least 'station'"),
        ({"columns": {"station": "s", "start": "t", "colour": "c"}}, "unknown column key"),
        ({"columns": {"station": "s"}}, "columns.start"),
        ({"columns": {"station": "s", "start": "t"}, "zone": "Mars/Olympus"}, "unknown time zone"),
        ({"columns": {"station": "s", "start": "t"}, "decimal": ";"}, "decimal"),
        ({"columns": {"station": "s", "start": "t"}, "speed": 1}, "unknown key"),
    ],
)
def test_mapping_errors(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        mapping_from_dict(raw)
