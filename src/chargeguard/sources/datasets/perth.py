"""Perth & Kinross Council charging sessions (ChargePlace Scotland, Sep 2016 - Aug 2019; OGL v3).

Files: ``electricvehiclechargecorrected.csv`` (2016-17), ``sept17toaug18standardisedcorrected.csv``,
``sept18toaug19standardisedcorrected.csv`` (``CP ID``, ``Connector``, day-first dates, ``Total kWh``, ``Site``,
``Model``; no user ids, no session ids) and ``perth_locations.csv`` (``Site,Latitude,Longitude``, made by the
repository's author).

Quirks and decisions:

* day-first dates and ``HH:MM`` times in Europe/London, converted to UTC (first occurrence in the autumn hour);
* 185 rows have no end and no energy: imported as transactions that never stop;
* site names are spelled several ways (``"Broxden Park & Ride, Perth"``, ``"Broxden Park & Ride"``,
  ``" Leslie Street Car Park, Blairgowrie"``, ``"Canal Street Car Park 3rd floor "``) and the location file
  writes ``"Site-Town"``: both sides are reduced to the site part, lower-cased, spaces collapsed;
* a ``***TEST SITE*** Charge Your Car HQ`` appears (21 sessions): imported like any site, without location;
* 2 rows are repeated exactly across files: imported twice (``duplicate_record`` oddities);
* ratings from ``Model`` (APT/Siemens Triple Rapid 50 kW DC, 22kW Dual Outlet / 22kW Raption / Semi-Rapid 22 kW
  AC, 7 kW Dual Outlet 7 kW AC), the highest per connector, understated ratings corrected (powers.py);
* no user ids: one token per session (``dataset:session:<line>``), so token rules see no repeat use;
* transaction ids are a counter in start order (the files have no session id); station ids ``PKC-<CP ID>``.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Sequence
from pathlib import Path

from chargeguard.sources.datasets.csvmap import read_into, widen
from chargeguard.sources.datasets.mapping import Columns, CsvMapping
from chargeguard.sources.datasets.powers import correct_understated_ratings, model_power
from chargeguard.sources.datasets.records import DatasetImport

DATASET = "perth"
LOCATIONS = "perth_locations.csv"

MAPPING = CsvMapping(
    dataset=DATASET,
    columns=Columns(
        station="CP ID",
        connector="Connector",
        start_date="Start Date",
        start_time="Start Time",
        end_date="End Date",
        end_time="End Time",
        energy="Total kWh",
        model="Model",
    ),
    zone="Europe/London",
    time_format="%d/%m/%Y %H:%M",
)


def site_key(name: str) -> str:
    """``" Broxden Park & Ride, Perth"`` and ``"Broxden Park & Ride-Perth"`` -> ``"broxden park & ride"``."""
    text = re.sub(r"\s+", " ", name.split(",", 1)[0]).strip().lower()
    return text


def read_locations(path: Path) -> dict[str, tuple[float, float, str]]:
    found: dict[str, tuple[float, float, str]] = {}
    with path.open(encoding="utf-8-sig", newline="") as handle:
        for row in csv.DictReader(handle):
            name = (row.get("Site") or "").strip()
            try:
                lat, lon = float(row["Latitude"]), float(row["Longitude"])
            except (KeyError, TypeError, ValueError):
                continue
            site = name.rsplit("-", 1)[0] if re.search(r"-[A-Z][a-z]+$", name) else name
            for key in (site_key(name), site_key(site)):
                found.setdefault(key, (lat, lon, site.strip()))
    return found


def import_perth(inputs: Sequence[Path]) -> DatasetImport:
    files: list[Path] = []
    locations_path: Path | None = None
    for item in inputs:
        for path in sorted(item.glob("*.csv")) if item.is_dir() else [item]:
            if path.name == LOCATIONS:
                locations_path = path
            else:
                files.append(path)
    if locations_path is None and files and (files[0].parent / LOCATIONS).exists():
        locations_path = files[0].parent / LOCATIONS
    result = DatasetImport(DATASET)
    rows = read_into(result, files, MAPPING, station_prefix="PKC-")
    sites: dict[str, str] = {}
    for session, row in rows:
        widen(result, session.station, session.connector, model_power(session.model))
        sites.setdefault(session.station, row.get("Site", ""))
    correct_understated_ratings(result)
    locations = read_locations(locations_path) if locations_path else {}
    if locations_path is None:
        result.notes.append(f"no {LOCATIONS} found: stations have no coordinates")
    for name, station in result.stations.items():
        station.country = "GB"
        found = locations.get(site_key(sites.get(name, "")))
        if found is not None:
            station.latitude, station.longitude, station.location_id = found
        else:
            station.location_id = sites.get(name, "").strip() or None
    return result
