"""Connector power ratings read from charger model names and site types of the datasets.

Rules, first match wins (model names as the Scottish council exports write them):

* an explicit rating in the name, ``"APT 22kW Dual Outlet"`` -> 22 kW, ``"Siemens 7 kW Dual Outlet"`` -> 7 kW;
  AC below 40 kW, DC from 40 kW (``"APT 50kW Raption"`` -> 50 kW DC);
* ``"Semi-Rapid"`` -> 22 kW AC (the Siemens semi-rapid posts are 22 kW Type 2);
* ``"Rapid"`` -> 50 kW DC (APT/Siemens dual and triple rapids: 50 kW CHAdeMO/CCS; the triple's third
  outlet is 43 kW AC, which is below the 50 kW used for every outlet, so no honest session exceeds it);
* site types of the location files: ``Rapid`` 50 kW DC, ``Fast`` 22 kW AC, ``Slow`` 7 kW AC.

Understated ratings: when more than 2 % (and at least 10) of a connector's sessions of 10 minutes or more
average above its rating, the label is wrong, not hundreds of drivers fraudulent (Dundee 51088 at Gellatly
Street is an "APT 7kW Dual Outlet" in the sessions while its neighbours are Fast 22 kW points, and 17 % of its
sessions average 8-17 kW). Such a rating is raised to the smallest standard rating that covers the 95th
percentile of those average powers, and the import report says so. Isolated excesses stay as they are.
"""

from __future__ import annotations

import re

from chargeguard.sources.datasets.records import ConnectorPower, DatasetImport

_EXPLICIT_KW = re.compile(r"(\d+(?:[.,]\d+)?)\s*kW", re.IGNORECASE)
DC_FROM_KW = 40.0
SITE_TYPES = {"rapid": (50.0, "DC"), "fast": (22.0, "AC"), "slow": (7.0, "AC")}
STANDARD_KW = (3.7, 7.0, 11.0, 22.0, 43.0, 50.0, 100.0, 150.0, 175.0, 350.0)
UNDERSTATED_SHARE = 0.02
UNDERSTATED_MIN_SESSIONS = 10
MIN_SESSION_S = 600.0


def model_power(model: str | None) -> ConnectorPower | None:
    """The per-connector rating a model name implies, or None when the name says nothing about power."""
    if not model:
        return None
    match = _EXPLICIT_KW.search(model)
    if match is not None:
        kw = float(match.group(1).replace(",", "."))
        return ConnectorPower(kw, "DC" if kw >= DC_FROM_KW else "AC")
    lowered = model.lower()
    if "semi-rapid" in lowered or "semi rapid" in lowered:
        return ConnectorPower(22.0, "AC")
    if "rapid" in lowered:
        return ConnectorPower(50.0, "DC")
    return None


def site_type_power(kind: str | None) -> ConnectorPower | None:
    """``Rapid`` / ``Fast`` / ``Slow`` of a location file as a rating."""
    if not kind:
        return None
    found = SITE_TYPES.get(kind.strip().lower())
    return ConnectorPower(*found) if found else None


def correct_understated_ratings(data: DatasetImport) -> None:
    """Raise ratings that a connector's own sessions systematically exceed (see the module docstring)."""
    averages: dict[tuple[str, int], list[float]] = {}
    totals: dict[tuple[str, int], int] = {}
    for s in data.sessions:
        if s.end is None or s.energy_wh is None:
            continue
        seconds = (s.end - s.start).total_seconds()
        if seconds < MIN_SESSION_S:
            continue
        key = (s.station, s.connector)
        totals[key] = totals.get(key, 0) + 1
        station = data.stations.get(s.station)
        kw = station.connector_kw(s.connector) if station else None
        average_kw = s.energy_wh / seconds * 3.6
        if kw is not None and average_kw > kw:
            averages.setdefault(key, []).append(average_kw)
    for (station_id, connector), over in sorted(averages.items()):
        total = totals[(station_id, connector)]
        if len(over) < UNDERSTATED_MIN_SESSIONS or len(over) <= UNDERSTATED_SHARE * total:
            continue
        over.sort()
        p95 = over[max(0, int(0.95 * len(over)) - 1)]
        new_kw = next((kw for kw in STANDARD_KW if kw >= p95), p95)
        power = data.stations[station_id].connectors[connector]
        data.notes.append(
            f"{station_id} connector {connector}: {len(over)} of {total} sessions average above its "
            f"{power.max_kw:g} kW rating; rating raised to {new_kw:g} kW"
        )
        power.max_kw = new_kw
        if new_kw >= DC_FROM_KW:
            power.connector_type = "DC"
