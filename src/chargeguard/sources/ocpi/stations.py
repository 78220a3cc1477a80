"""OCPI Locations as the station inventory: each EVSE becomes the OCPP station identity ``StationMapping`` gives it.

Coordinates are the EVSE's when it has its own, else the Location's. ``max_kw`` is the most one connector can
deliver: ``max_electric_power`` when given, else ``max_voltage * max_amperage`` times the phases of its power type
(OCPI gives line-to-neutral voltage for AC_3_PHASE). With one EVSE per station (mapping modes ``evse_uid``,
``evse_id``, ``explicit``) each OCPI connector id becomes an inventory connector (``"1"``, matching OCPP 1.6
connector ids; ``AC``/``DC`` from its power type); with ``location`` mode the EVSEs of a site are one station and
only its totals are kept. A CSV inventory given next to Locations wins for the stations it lists.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from chargeguard.inventory import ConnectorInfo, Inventory, StationInfo
from chargeguard.sources.ocpi.models import Connector, GeoLocation, Location
from chargeguard.sources.ocpi.normalize import StationMapping

_PHASES = {"AC_1_PHASE": 1, "AC_2_PHASE": 2, "AC_2_PHASE_SPLIT": 2, "AC_3_PHASE": 3, "DC": 1}


def connector_kw(connector: Connector) -> float | None:
    """The most power the connector can deliver, kW (None when the Location gives nothing usable)."""
    if connector.max_electric_power:
        return connector.max_electric_power / 1000.0
    watts = connector.max_voltage * connector.max_amperage * _PHASES.get(connector.power_type, 1)
    return watts / 1000.0 if watts > 0 else None


def _coordinates(geo: GeoLocation | None) -> tuple[float | None, float | None]:
    if geo is None:
        return None, None
    try:
        lat, lon = float(geo.latitude), float(geo.longitude)
    except ValueError:
        return None, None
    if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
        return None, None
    return lat, lon


def inventory_from_locations(locations: Iterable[Location], mapping: StationMapping) -> Inventory:
    """One StationInfo per station identity the Locations' EVSEs map to."""
    stations: dict[str, StationInfo] = {}
    per_station = mapping.mode != "location"
    for loc in locations:
        site = _coordinates(loc.coordinates)
        for evse in loc.evses:
            station = mapping.station(loc.id, evse.uid, evse.evse_id)
            lat, lon = _coordinates(evse.coordinates)
            if lat is None:
                lat, lon = site
            kws = [kw for kw in (connector_kw(c) for c in evse.connectors) if kw is not None]
            connectors = (
                {
                    c.id: ConnectorInfo(c.id, kw, "DC" if c.power_type == "DC" else "AC")
                    for c in evse.connectors
                    if (kw := connector_kw(c)) is not None
                }
                if per_station
                else {}
            )
            info = StationInfo(
                station=station,
                latitude=lat,
                longitude=lon,
                max_kw=max(kws) if kws else None,
                connectors=len(evse.connectors),
                location_id=loc.id,
                country=loc.country,
                connector_info=connectors,
            )
            previous = stations.get(station)
            if previous is not None:  # several EVSEs on one station identity: add them up
                best = [kw for kw in (previous.max_kw, info.max_kw) if kw is not None]
                info = replace(
                    previous,
                    max_kw=max(best) if best else None,
                    connectors=previous.connectors + info.connectors,
                    connector_info={**info.connector_info, **previous.connector_info},
                )
            stations[station] = info
    return Inventory(stations)


def merge_inventories(primary: Inventory | None, secondary: Inventory | None) -> Inventory | None:
    """Stations of both; ``primary`` (the CSV inventory) wins where both describe a station."""
    if primary is None or secondary is None:
        return primary or secondary
    return Inventory({**secondary.stations, **primary.stations})
