"""The EPFL-DESL level-3 DC fast station in south-western Switzerland (2022-04 .. 2023-07; MIT licence).

File: ``Session_data.csv`` (the pandas CSV export of ``Session_data.xlsx``): Session, CCS (``CCS1``/``CCS2``),
Arrival, Departure (``YYYY-MM-DD HH:MM:SS``), Stay (min), Energy (Wh), Pmax (W), SOC, battery capacities.

Quirks and decisions:

* times are read as Swiss local time (Europe/Zurich, CET/CEST) and converted to UTC - the dataset does not
  state a zone; its session starts follow local daily life (few starts at night), which a UTC clock would
  shift by one or two hours;
* one station ``EPFL-L3`` with two CCS connectors (``CCS1`` -> connector 1, ``CCS2`` -> 2), each rated
  172.5 kW DC: the station's maximum, which one car may draw when the other plug is idle;
* ``Pmax`` is the session's measured peak (AC side, losses included) and shapes the sampled power; 12
  sessions peak a little above 172.5 kW (up to 174.8 kW), which is measurement, not fraud - capacity rules
  need their tolerance there;
* no user ids: one token per session; transaction ids are the ``Session`` numbers;
* no coordinates are published: the inventory has none, country CH.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from chargeguard.sources.datasets.csvmap import read_into
from chargeguard.sources.datasets.mapping import Columns, CsvMapping
from chargeguard.sources.datasets.records import ConnectorPower, DatasetImport

DATASET = "epfl"
STATION = "EPFL-L3"
RATING_KW = 172.5

MAPPING = CsvMapping(
    dataset=DATASET,
    columns=Columns(
        station="CCS",  # replaced by the single station id below; the column gives the connector
        connector="CCS",
        start="Arrival",
        end="Departure",
        energy="Energy (Wh)",
        session="Session",
        max_power="Pmax (W)",
    ),
    zone="Europe/Zurich",
    time_format="%Y-%m-%d %H:%M:%S",
    energy_unit="Wh",
    power_unit="W",
)


def import_epfl(inputs: Sequence[Path]) -> DatasetImport:
    files: list[Path] = []
    for item in inputs:
        files.extend(sorted(item.glob("Session_data*.csv")) if item.is_dir() else [item])
    result = DatasetImport(DATASET)
    read_into(result, files, MAPPING, station_prefix="")
    result.sessions = [replace(s, station=STATION) for s in result.sessions]
    station = result.station(STATION)
    station.country = "CH"
    station.location_id = "EPFL-DESL level-3 station"
    for number in sorted({s.connector for s in result.sessions} or {1, 2}):
        station.connectors[number] = ConnectorPower(RATING_KW, "DC")
    return result
