"""The dataset-neutral nouns of session import: a session row, a station, a row problem, an import result."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """One charging session as a dataset recorded it, times converted to aware UTC.

    ``user`` is the dataset's own user id, used only to derive a token (see ``render.derive_token``) and never
    written anywhere. ``end`` or ``energy_wh`` is None when the row has none: such a session is imported as a
    transaction that starts and never stops. ``source`` is ``file:line``.
    """

    dataset: str
    station: str
    connector: int
    start: datetime
    end: datetime | None
    energy_wh: float | None
    user: str | None
    key: str
    source: str
    model: str | None = None
    max_power_w: float | None = None
    # set only by incident injection (chargeguard.eval.inject); real rows keep the defaults
    auth_status: str = "Accepted"
    meter_jump_wh: float = 0.0  # added to the register before this session's meterStart
    stop_delta_wh: float = 0.0  # added to the reported meterStop only (samples keep the true register)


@dataclass(slots=True)
class ConnectorPower:
    max_kw: float
    connector_type: str  # "AC" or "DC"


@dataclass(slots=True)
class StationRecord:
    """A station of the inventory being built: location and per-connector power."""

    station: str
    latitude: float | None = None
    longitude: float | None = None
    country: str | None = None
    location_id: str | None = None
    connectors: dict[int, ConnectorPower] = field(default_factory=dict)

    @property
    def max_kw(self) -> float | None:
        return max((c.max_kw for c in self.connectors.values()), default=None)

    def connector_kw(self, connector: int) -> float | None:
        power = self.connectors.get(connector)
        return power.max_kw if power is not None else self.max_kw


@dataclass(frozen=True, slots=True)
class RowProblem:
    """An unusable row: ``source`` is ``file:line``; ``reason`` names the column, never the value."""

    source: str
    reason: str

    def __str__(self) -> str:
        return f"{self.source}: {self.reason}"


@dataclass(slots=True)
class DatasetImport:
    """What an importer read: sessions, stations, unusable rows and counts of rows skipped on purpose."""

    dataset: str
    sessions: list[SessionRecord] = field(default_factory=list)
    stations: dict[str, StationRecord] = field(default_factory=dict)
    problems: list[RowProblem] = field(default_factory=list)
    rows_read: int = 0
    blank_rows: int = 0
    header_rows: int = 0
    notes: list[str] = field(default_factory=list)

    def station(self, station: str) -> StationRecord:
        record = self.stations.get(station)
        if record is None:
            record = self.stations[station] = StationRecord(station)
        return record
