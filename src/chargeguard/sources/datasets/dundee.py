"""Dundee City Council charging sessions (ChargePlace Scotland, Sep 2017 - Sep 2018; OGL v3).

Files: ``cpdata.csv``, ``cp-data-dec-mar-2018.csv``, ``cp-data-mar-may-2018.csv`` (no user ids) and
``charge-sessions-june-sept.csv`` (with ``User ID`` and three unnamed trailing columns, the last one a vehicle
model), plus ``cp-locations.csv`` (latitude, longitude, site, ``CP ID``, site type Rapid/Fast/Slow).

Quirks and decisions:

* dates are day-first (``06/09/2018``) with separate ``HH:MM`` times, local Scottish time: read in
  Europe/London (GMT/BST) and converted to UTC; the autumn repeated hour is read as its first occurrence;
* about 0.5 % of rows have no end and no energy (sessions the back office never closed): imported as
  transactions that start and never stop; 2 rows have no ``CP ID``: counted as unparsable;
* negative energies (29 rows, e.g. -45.58 kWh), zero energies (~2,700) and 6 rows ending before they start are
  imported as the traffic they imply (a register going back, nothing delivered, a stop before its start);
* one session delivers 1,430 kWh in 17 h on a 7 kW single outlet (``Charging event`` 7521518) - an impossible
  energy, kept so that meter.exceeds_capacity can flag it;
* station ids are ``DUN-<CP ID>``; connector ratings come from the ``Model`` column of the sessions
  (``APT 7kW Dual Outlet`` 7 kW AC, ``APT 22kW Dual Outlet`` 22 kW AC, ``APT Dual/Triple Rapid Charger`` and
  ``APT 50kW Raption`` 50 kW DC) and from the location file's site type (Rapid 50 kW DC, Fast 22 kW AC,
  Slow 7 kW AC), the highest of all per connector. The two sources disagree for several points (50349 is
  "Slow" in the location file and a Dual Rapid in the sessions; 51087/51088 at Queen Street are "APT 7kW Dual
  Outlet" in the sessions but "Fast" in the location file, and ~400 of their sessions average 10-17 kW):
  an inventory that underrates a connector manufactures false alarms, so the higher rating wins;
* the location file lists some points twice and some as ``SCO50884``: the first row per numeric id is used;
  20 charge points of the sessions (the Lochee and Princes Street hubs among them) are missing from it and
  are taken from ``cp-locations_enriched.csv`` (the same file completed by the repository's author) when
  that file sits next to it;
* tokens come from ``User ID`` (827 users) in the June-September file, and one per session elsewhere.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

from chargeguard.sources.datasets.csvmap import read_into, widen
from chargeguard.sources.datasets.mapping import Columns, CsvMapping
from chargeguard.sources.datasets.powers import correct_understated_ratings, model_power, site_type_power
from chargeguard.sources.datasets.records import DatasetImport

DATASET = "dundee"
LOCATIONS = "cp-locations.csv"
ENRICHED = "cp-locations_enriched.csv"


def mapping(*, with_user: bool) -> CsvMapping:
    return CsvMapping(
        dataset=DATASET,
        columns=Columns(
            station="CP ID",
            connector="Connector",
            start_date="Start Date",
            start_time="Start Time",
            end_date="End Date",
            end_time="End Time",
            energy="Total kWh",
            user="User ID" if with_user else None,
            session="Charging event",
            model="Model",
        ),
        zone="Europe/London",
        time_format="%d/%m/%Y %H:%M",
    )


def session_files(inputs: Sequence[Path]) -> tuple[list[Path], Path | None]:
    """Session CSVs among ``inputs`` (directories expanded) and the location file, if one is found."""
    files: list[Path] = []
    locations: Path | None = None
    for item in inputs:
        candidates = sorted(item.glob("*.csv")) if item.is_dir() else [item]
        for path in candidates:
            if path.name.startswith("cp-locations"):
                if path.name == LOCATIONS or locations is None:
                    locations = path
                continue
            files.append(path)
    if locations is None and files and (files[0].parent / LOCATIONS).exists():
        locations = files[0].parent / LOCATIONS
    return files, locations


def read_locations(path: Path) -> dict[str, dict[str, str]]:
    rows: dict[str, dict[str, str]] = {}
    with path.open(encoding="utf-8-sig", newline="") as handle:
        for row in csv.DictReader(handle):
            ident = (row.get("CP ID") or "").strip().upper().removeprefix("SCO")
            if ident.isdigit() and ident not in rows:
                rows[ident] = row
    return rows


def import_dundee(inputs: Sequence[Path]) -> DatasetImport:
    files, locations_path = session_files(inputs)
    result = DatasetImport(DATASET)
    for path in files:
        with path.open(encoding="utf-8-sig") as handle:
            with_user = "User ID" in handle.readline()
        read_into(result, [path], mapping(with_user=with_user), station_prefix="DUN-")
    connectors: dict[str, set[int]] = {}
    for session in result.sessions:
        widen(result, session.station, session.connector, model_power(session.model))
        connectors.setdefault(session.station, set()).add(session.connector)
    locations = read_locations(locations_path) if locations_path else {}
    enriched = locations_path.parent / ENRICHED if locations_path else None
    if enriched is not None and enriched.exists():
        for ident, row in read_locations(enriched).items():
            locations.setdefault(ident, row)
    if locations_path is None:
        result.notes.append(f"no {LOCATIONS} found: stations have no coordinates")
    for name, station in result.stations.items():
        station.country = "GB"
        found = locations.get(name.removeprefix("DUN-"))
        if found is None:
            continue
        row = found
        try:
            station.latitude = float(row["Latitude"])
            station.longitude = float(row["Longitude"])
        except (KeyError, ValueError):
            result.notes.append(f"{LOCATIONS}: no usable coordinates for {name}")
        station.location_id = (row.get("Location") or "").strip() or None
        power = site_type_power(row.get("Type"))
        for connector in connectors.get(name, {1}):
            widen(result, name, connector, power)
    correct_understated_ratings(result)
    return result
