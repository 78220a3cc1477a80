"""The station inventory: where stations are and what their connectors can deliver (CSV, see docs/formats.md).

Header: ``station,latitude,longitude,max_kw,connectors,location_id,country[,connector_id,connector_type]``.
Rows without ``connector_id`` describe a whole station; rows with one describe a single connector, whose
``max_kw`` then applies to that connector only. Connector ids are matched as written on the wire: ``"2"`` for 1.6
and ``"<evseId>/<connectorId>"`` or ``"<evseId>"`` for 2.0.1.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from chargeguard.errors import ConfigError, InputError

REQUIRED_COLUMNS = ("station", "latitude", "longitude", "max_kw")
EARTH_RADIUS_KM = 6371.0088


@dataclass(frozen=True, slots=True)
class ConnectorInfo:
    connector_id: str
    max_kw: float
    connector_type: str | None = None  # "AC" or "DC"


@dataclass(frozen=True, slots=True)
class StationInfo:
    station: str
    latitude: float | None
    longitude: float | None
    max_kw: float | None
    connectors: int = 1
    location_id: str | None = None
    country: str | None = None
    connector_info: Mapping[str, ConnectorInfo] = field(default_factory=dict)

    def connector_max_kw(self, connector: str | None) -> float | None:
        """The most power one connector can deliver: its own row, else the EVSE's, else the station's."""
        if connector is not None:
            info = self.connector_info.get(connector)
            if info is None and "/" in connector:
                info = self.connector_info.get(connector.split("/", 1)[0])
            if info is None and "/" not in connector:
                # 2.0.1 rows may be written "evse/connector" while 1.6 says "connector": accept "<id>/1" too.
                info = self.connector_info.get(f"{connector}/1")
            if info is not None:
                return info.max_kw
        return self.max_kw


@dataclass(frozen=True, slots=True)
class Inventory:
    stations: Mapping[str, StationInfo] = field(default_factory=dict)

    def get(self, station: str | None) -> StationInfo | None:
        return None if station is None else self.stations.get(station)

    def __len__(self) -> int:
        return len(self.stations)


def distance_km(a: StationInfo, b: StationInfo) -> float | None:
    """Great-circle distance between two stations (haversine), or None when either has no coordinates."""
    if a.latitude is None or a.longitude is None or b.latitude is None or b.longitude is None:
        return None
    lat1, lon1, lat2, lon2 = map(math.radians, (a.latitude, a.longitude, b.latitude, b.longitude))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def _float(value: str | None, *, column: str, where: str, lo: float, hi: float) -> float | None:
    if value is None or value.strip() == "":
        return None
    try:
        number = float(value.strip().replace(",", "."))
    except ValueError as exc:
        raise InputError(f"column {column}: not a number", source=where) from exc
    if not (lo <= number <= hi) or math.isnan(number):
        raise InputError(f"column {column}: {number} outside {lo}..{hi}", source=where)
    return number


def parse_inventory(rows: Iterable[Mapping[str, str | None]], *, name: str) -> Inventory:
    """Build an Inventory from CSV dict rows; ``name`` is used in error messages (``file:line``)."""
    stations: dict[str, StationInfo] = {}
    connectors: dict[str, dict[str, ConnectorInfo]] = {}
    for number, row in enumerate(rows, start=2):
        where = f"{name}:{number}"
        station = (row.get("station") or "").strip()
        if not station:
            raise InputError("column station is empty", source=where)
        lat = _float(row.get("latitude"), column="latitude", where=where, lo=-90, hi=90)
        lon = _float(row.get("longitude"), column="longitude", where=where, lo=-180, hi=180)
        max_kw = _float(row.get("max_kw"), column="max_kw", where=where, lo=0, hi=10_000)
        connector_id = (row.get("connector_id") or "").strip()
        if connector_id:
            if max_kw is None:
                raise InputError("a connector row needs max_kw", source=where)
            ctype = (row.get("connector_type") or "").strip().upper() or None
            if ctype not in (None, "AC", "DC"):
                raise InputError(f"connector_type must be AC or DC, not {ctype!r}", source=where)
            connectors.setdefault(station, {})[connector_id] = ConnectorInfo(connector_id, max_kw, ctype)
        count_text = (row.get("connectors") or "").strip()
        try:
            count = int(count_text) if count_text else 1
        except ValueError as exc:
            raise InputError("column connectors: not a whole number", source=where) from exc
        previous = stations.get(station)
        if previous is not None and connector_id:
            # a connector row for a station already described: keep the station row, widen max_kw if needed
            best = max(x for x in (previous.max_kw, max_kw) if x is not None) if max_kw else previous.max_kw
            stations[station] = StationInfo(
                station,
                previous.latitude or lat,
                previous.longitude or lon,
                best,
                previous.connectors,
                previous.location_id,
                previous.country,
                {},
            )
            continue
        stations[station] = StationInfo(
            station=station,
            latitude=lat,
            longitude=lon,
            max_kw=max_kw
            if previous is None or previous.max_kw is None
            else max(previous.max_kw, max_kw or 0),
            connectors=count,
            location_id=(row.get("location_id") or "").strip() or None,
            country=(row.get("country") or "").strip() or None,
        )
    final = {
        sid: StationInfo(
            info.station,
            info.latitude,
            info.longitude,
            info.max_kw,
            max(info.connectors, len(connectors.get(sid, {}))),
            info.location_id,
            info.country,
            connectors.get(sid, {}),
        )
        for sid, info in stations.items()
    }
    return Inventory(final)


def load_inventory(path: Path) -> Inventory:
    """Read a station inventory CSV file."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise ConfigError(f"station inventory {path} cannot be read: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"station inventory {path} is not UTF-8") from exc
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise ConfigError(f"station inventory {path}: missing column(s) {', '.join(missing)}")
    try:
        return parse_inventory(reader, name=str(path))
    except InputError as exc:
        raise ConfigError(str(exc)) from exc
