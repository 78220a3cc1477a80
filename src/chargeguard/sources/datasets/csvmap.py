"""Importing any session export with a mapping file (``--format csv --mapping FILE``), and the shared reader.

Stations get their connector ratings from, in order: the mapping's ``max_kw`` column, its ``model`` column
(rules in powers.py), its ``default_max_kw``; a station none of them covers has no rating in the inventory
(and capacity rules stay silent for it). Stations have no coordinates: an export with locations can be
joined with an inventory afterwards.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from chargeguard.errors import InputError
from chargeguard.sources.datasets.mapping import CsvMapping, RowReader, parse_number, read_rows
from chargeguard.sources.datasets.powers import model_power
from chargeguard.sources.datasets.records import ConnectorPower, DatasetImport, RowProblem, SessionRecord


def read_into(
    result: DatasetImport, paths: Sequence[Path], mapping: CsvMapping, *, station_prefix: str
) -> list[tuple[SessionRecord, dict[str, str]]]:
    """Read every file's rows into ``result.sessions``; returns each session with its raw row (for extras)."""
    reader = RowReader(mapping, station_prefix=station_prefix)
    kept: list[tuple[SessionRecord, dict[str, str]]] = []
    for path in paths:
        for line, row in read_rows(path, mapping, result):
            where = f"{path.name}:{line}"
            try:
                session = reader.session(row, where=where)
            except InputError as exc:
                result.problems.append(RowProblem(where, exc.message))
                continue
            result.sessions.append(session)
            kept.append((session, row))
    return kept


def widen(result: DatasetImport, station: str, connector: int, power: ConnectorPower | None) -> None:
    """Record a connector, keeping the highest rating seen for it (a model listed once as a rapid wins)."""
    record = result.station(station)
    if power is None:
        return
    known = record.connectors.get(connector)
    if known is None or power.max_kw > known.max_kw:
        record.connectors[connector] = ConnectorPower(power.max_kw, power.connector_type)


def import_csv(paths: Sequence[Path], mapping: CsvMapping) -> DatasetImport:
    """A general export read with ``mapping``; stations are named ``<dataset>-<station column>``."""
    result = DatasetImport(mapping.dataset)
    rows = read_into(result, paths, mapping, station_prefix=f"{mapping.dataset}-")
    for session, row in rows:
        power: ConnectorPower | None = None
        rating = row.get(mapping.columns.max_kw or "", "").strip() if mapping.columns.max_kw else ""
        if rating and rating not in mapping.missing:
            try:
                kw = parse_number(rating, decimal=mapping.decimal)
                power = ConnectorPower(kw, mapping.connector_type)
            except ValueError:
                result.notes.append(f"{session.source}: column {mapping.columns.max_kw!r} is not a number")
        if power is None:
            power = model_power(session.model)
        if power is None and mapping.default_max_kw is not None:
            power = ConnectorPower(mapping.default_max_kw, mapping.connector_type)
        widen(result, session.station, session.connector, power)
    return result
