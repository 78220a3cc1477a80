"""The general CSV mapping: which columns of a session export hold what, and how to read them.

Every built-in importer is a preset of this mapping plus its dataset's station logic; other exports are read
with a mapping file (TOML or JSON, see docs/evaluation.md)::

    # sessions.toml - every key except the columns station and start is optional
    dataset = "mycity"              # prefix of station ids and token derivation domain
    delimiter = ","                 # one character
    decimal = "."                   # "," for decimal commas (1,5 kWh)
    encoding = "utf-8-sig"
    zone = "Europe/London"          # IANA zone of naive times; times with an offset keep theirs
    time_format = "%d/%m/%Y %H:%M"  # strptime format (date and time columns are joined by a space)
    energy_unit = "kWh"             # or "Wh"
    power_unit = "W"                # of the max_power column: "W" or "kW"
    default_max_kw = 22.0           # connector power when no model/max_kw column says otherwise
    connector_type = "AC"
    missing = ["", "NA", "N/A", "null", "-"]

    [columns]
    station = "CP ID"
    connector = "Connector"         # digits, or a name whose trailing digits are the connector (CCS2 -> 2)
    start = "Start"                 # or start_date + start_time
    end = "End"                     # or end_date + end_time
    energy = "Total kWh"
    user = "User ID"                # drivers' ids become derived tokens, never written
    session = "Charging event"      # the dataset's session id, used as transaction id when numeric
    model = "Model"                 # charger model: its power rating is read from the name (see powers.py)
    max_kw = "Power"                # a connector rating column, in kW
    max_power = "Pmax (W)"          # measured peak power of the session

Reading is forgiving where real exports are messy: blank rows and repeated header rows are skipped and
counted, a row that cannot be parsed (no station, an unreadable time or number) becomes a RowProblem naming
``file:line`` and the column, and the rest of the file is still read. Rows that parse but are odd (negative or
zero energy, an end before the start) are kept as they are.
"""

from __future__ import annotations

import csv
import io
import json
import re
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from chargeguard.errors import ConfigError, InputError
from chargeguard.sources.datasets.records import DatasetImport, SessionRecord

_TRAILING_DIGITS = re.compile(r"(\d+)\s*$")


@dataclass(frozen=True, slots=True)
class Columns:
    station: str
    start: str | None = None
    start_date: str | None = None
    start_time: str | None = None
    end: str | None = None
    end_date: str | None = None
    end_time: str | None = None
    connector: str | None = None
    energy: str | None = None
    user: str | None = None
    session: str | None = None
    model: str | None = None
    max_kw: str | None = None
    max_power: str | None = None


@dataclass(frozen=True, slots=True)
class CsvMapping:
    dataset: str
    columns: Columns
    delimiter: str = ","
    decimal: str = "."
    encoding: str = "utf-8-sig"
    zone: str = "UTC"
    time_format: str = "%Y-%m-%d %H:%M:%S"
    energy_unit: str = "kWh"
    power_unit: str = "W"
    default_max_kw: float | None = None
    connector_type: str = "AC"
    missing: frozenset[str] = field(default_factory=lambda: frozenset({"", "NA", "N/A", "null", "NULL", "-"}))

    def __post_init__(self) -> None:
        if len(self.delimiter) != 1:
            raise ConfigError("mapping: delimiter must be one character")
        if self.decimal not in (".", ","):
            raise ConfigError("mapping: decimal must be '.' or ','")
        if self.energy_unit not in ("kWh", "Wh"):
            raise ConfigError("mapping: energy_unit must be 'kWh' or 'Wh'")
        if self.power_unit not in ("W", "kW"):
            raise ConfigError("mapping: power_unit must be 'W' or 'kW'")
        if self.connector_type not in ("AC", "DC"):
            raise ConfigError("mapping: connector_type must be 'AC' or 'DC'")
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,24}", self.dataset):
            raise ConfigError("mapping: dataset must be 1-24 letters, digits, '-' or '_'")
        c = self.columns
        if not (c.start or (c.start_date and c.start_time)):
            raise ConfigError("mapping: columns.start (or start_date and start_time) is required")
        self.tz()

    def tz(self) -> tzinfo:
        if self.zone == "UTC":
            return UTC
        try:
            return ZoneInfo(self.zone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ConfigError(f"mapping: unknown time zone {self.zone!r}") from exc


def load_mapping(path: Path) -> CsvMapping:
    """Read a mapping file (``.toml`` or ``.json``)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"mapping {path} cannot be read: {exc.strerror}") from exc
    try:
        raw: dict[str, Any] = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"mapping {path} is not valid {path.suffix.lstrip('.') or 'TOML'}: {exc}") from exc
    return mapping_from_dict(raw, where=str(path))


def mapping_from_dict(raw: dict[str, Any], *, where: str = "mapping") -> CsvMapping:
    raw = dict(raw)
    columns_raw = raw.pop("columns", None)
    if not isinstance(columns_raw, dict) or "station" not in columns_raw:
        raise ConfigError(f"{where}: a [columns] table with at least 'station' is required")
    allowed_columns = {f.name for f in fields(Columns)}
    unknown = sorted(set(columns_raw) - allowed_columns)
    if unknown:
        raise ConfigError(f"{where}: unknown column key(s) {', '.join(unknown)}")
    allowed = {f.name for f in fields(CsvMapping)} - {"columns"}
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}")
    if "missing" in raw:
        raw["missing"] = frozenset(str(x) for x in raw["missing"])
    if "default_max_kw" in raw and raw["default_max_kw"] is not None:
        raw["default_max_kw"] = float(raw["default_max_kw"])
    raw.setdefault("dataset", "csv")
    try:
        return CsvMapping(columns=Columns(**{k: str(v) for k, v in columns_raw.items()}), **raw)
    except TypeError as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def parse_number(text: str, *, decimal: str) -> float:
    """A number as exports write it: ``1,5`` with a decimal comma, ``1.5`` otherwise; spaces ignored."""
    cleaned = text.strip().replace(" ", "").replace("\u00a0", "")
    if decimal == ",":
        cleaned = cleaned.replace(".", "").replace(",", ".") if cleaned.count(",") == 1 else cleaned
    try:
        value = float(cleaned)
    except ValueError as exc:
        raise ValueError("not a number") from exc
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError("not a finite number")
    return value


def parse_local_time(text: str, *, fmt: str, zone: tzinfo) -> datetime:
    """A local wall-clock time in ``fmt`` read in ``zone`` and returned as aware UTC.

    DST: a time that occurs twice (the autumn hour) is read as its first occurrence (``fold=0``); a time that
    does not exist (the spring gap) is read with the offset in force before the gap, as zoneinfo does. Times
    written with an offset (``%z`` in ``fmt``) keep their own offset.
    """
    try:
        parsed = datetime.strptime(text.strip(), fmt)  # noqa: DTZ007 - the zone is attached below
    except ValueError as exc:
        raise ValueError(f"not a time in the format {fmt}") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=zone)
    return parsed.astimezone(UTC)


def connector_number(text: str) -> int:
    """``2`` -> 2, ``CCS2`` -> 2; connectors are 1-based."""
    text = text.strip()
    match = _TRAILING_DIGITS.search(text)
    if match is None:
        raise ValueError("no connector number")
    number = int(match.group(1))
    if not 1 <= number <= 99:
        raise ValueError("connector number outside 1..99")
    return number


def read_rows(path: Path, mapping: CsvMapping, result: DatasetImport) -> Iterator[tuple[int, dict[str, str]]]:
    """Data rows of a CSV file as ``(line, row)``, skipping and counting blank and repeated header rows."""
    try:
        text = path.read_text(encoding=mapping.encoding)
    except FileNotFoundError as exc:
        raise InputError("file does not exist", source=str(path)) from exc
    except UnicodeDecodeError as exc:
        raise InputError(f"not {mapping.encoding} text", source=str(path)) from exc
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=mapping.delimiter)
    header: list[str] | None = None
    for row in reader:
        line = reader.line_num
        if header is None:
            header = [h.strip() for h in row]
            continue
        if not any(cell.strip() for cell in row):
            result.blank_rows += 1
            continue
        if [c.strip() for c in row[: len(header)]] == header[: len(row)]:
            result.header_rows += 1
            continue
        result.rows_read += 1
        yield line, {name: (row[i] if i < len(row) else "") for i, name in enumerate(header) if name}
    if header is None:
        raise InputError("empty file (no header)", source=str(path))


class RowReader:
    """Turns mapped CSV rows into SessionRecords, or RowProblems naming the column that failed."""

    def __init__(self, mapping: CsvMapping, *, station_prefix: str) -> None:
        self.m = mapping
        self.zone = mapping.tz()
        self.prefix = station_prefix

    def value(self, row: dict[str, str], column: str | None) -> str | None:
        if column is None:
            return None
        if column not in row:
            raise KeyError(column)
        text = row[column].strip()
        return None if text in self.m.missing else text

    def time(
        self, row: dict[str, str], whole: str | None, date: str | None, clock: str | None
    ) -> datetime | None:
        if whole is not None:
            text = self.value(row, whole)
        else:
            d, t = self.value(row, date), self.value(row, clock)
            text = None if d is None or t is None else f"{d} {t}"
        if text is None:
            return None
        return parse_local_time(text, fmt=self.m.time_format, zone=self.zone)

    def session(self, row: dict[str, str], *, where: str) -> SessionRecord:
        """Raises ``InputError`` (with ``where``) naming the unusable column."""
        c = self.m.columns
        column = c.station
        try:
            station = self.value(row, c.station)
            if station is None:
                raise ValueError("is empty")
            column = c.start or c.start_date or "start"
            start = self.time(row, c.start, c.start_date, c.start_time)
            if start is None:
                raise ValueError("is empty")
            column = c.end or c.end_date or "end"
            end = self.time(row, c.end, c.end_date, c.end_time)
            column = c.connector or "connector"
            text = self.value(row, c.connector)
            connector = connector_number(text) if text is not None else 1
            column = c.energy or "energy"
            energy_text = self.value(row, c.energy)
            energy = None
            if energy_text is not None:
                energy = parse_number(energy_text, decimal=self.m.decimal)
                energy = energy * 1000.0 if self.m.energy_unit == "kWh" else energy
            column = c.max_power or "max_power"
            power_text = self.value(row, c.max_power)
            power = None
            if power_text is not None:
                power = parse_number(power_text, decimal=self.m.decimal)
                power = power * 1000.0 if self.m.power_unit == "kW" else power
            column = c.user or "user"
            user = self.value(row, c.user)
            column = c.session or "session"
            key = self.value(row, c.session) or where
            column = c.model or "model"
            model = self.value(row, c.model)
        except KeyError as exc:
            raise InputError(f"column {exc.args[0]!r} missing from the row", source=where) from exc
        except ValueError as exc:
            raise InputError(f"column {column!r}: {exc}", source=where) from exc
        return SessionRecord(
            dataset=self.m.dataset,
            station=f"{self.prefix}{station}",
            connector=connector,
            start=start,
            end=end,
            energy_wh=energy,
            user=user,
            key=key,
            source=where,
            model=model,
            max_power_w=power,
        )
