"""Residential garages in Trondheim, Norway (Sørensen et al., Data in Brief 2021, Dataset 1; CC BY 4.0).

File: ``Dataset 1_EV charging reports.csv`` - semicolon-separated, decimal commas (``29,87``), day-first
``dd.mm.yyyy HH:MM`` times, ``NA`` for missing values; columns session_ID, Garage_ID, User_ID, User_type
(Private/Shared), Shared_ID, Start_plugin, End_plugout, El_kWh, Duration_hours, ...

Quirks and decisions:

* times are Norwegian local time: read in Europe/Oslo (CET/CEST) and converted to UTC;
* 34 rows have ``NA`` as plug-out time (mid-December 2019, still plugged in when the report was made): imported
  as transactions that start and never stop;
* each garage is a station ``TRD-<Garage_ID>``; its connectors are its charge points: one per private user
  (``Private`` rows: the user's own box) and one per ``Shared_ID`` (shared boxes), numbered in order of first
  appearance in the file;
* the dataset gives no charger ratings; the highest average power of any session of 10 minutes or more is
  7.8 kW, so every connector is rated 11 kW AC (the smallest standard rating above what the data shows);
* no coordinates are published (the garages are anonymised): the inventory has none, country NO;
* tokens come from ``User_ID`` (97 users; a user id appears in more than one garage for 13 shared users).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from chargeguard.sources.datasets.csvmap import read_into
from chargeguard.sources.datasets.mapping import Columns, CsvMapping
from chargeguard.sources.datasets.records import ConnectorPower, DatasetImport, SessionRecord

DATASET = "trondheim"
RATING_KW = 11.0

MAPPING = CsvMapping(
    dataset=DATASET,
    columns=Columns(
        station="Garage_ID",
        start="Start_plugin",
        end="End_plugout",
        energy="El_kWh",
        user="User_ID",
        session="session_ID",
    ),
    delimiter=";",
    decimal=",",
    zone="Europe/Oslo",
    time_format="%d.%m.%Y %H:%M",
)


def import_trondheim(inputs: Sequence[Path]) -> DatasetImport:
    files: list[Path] = []
    for item in inputs:
        files.extend(sorted(item.glob("*.csv")) if item.is_dir() else [item])
    result = DatasetImport(DATASET)
    rows = read_into(result, files, MAPPING, station_prefix="TRD-")
    points: dict[str, dict[str, int]] = {}
    renumbered: list[SessionRecord] = []
    for session, row in rows:
        shared = (row.get("Shared_ID") or "").strip()
        point = f"shared:{shared}" if shared and shared not in MAPPING.missing else f"private:{session.user}"
        numbers = points.setdefault(session.station, {})
        number = numbers.setdefault(point, len(numbers) + 1)
        renumbered.append(replace(session, connector=number))
        station = result.station(session.station)
        station.country = "NO"
        station.connectors.setdefault(number, ConnectorPower(RATING_KW, "AC"))
    result.sessions = renumbered
    return result
