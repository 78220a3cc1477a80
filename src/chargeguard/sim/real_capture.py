"""What station-level injection needs to know of an imported (real) capture: stations, their idle times, registers.

One streaming pass over ``capture.jsonl`` collects, per station: the OCPP version and the vendor/model its
BootNotification reports, the times its transactions keep it busy, the energy register of each connector at
each transaction start and stop, and the largest 1.6 transaction id (so injected transactions never reuse a
real one). ``stations.csv`` gives locations and connectors. Memory grows with stations and transactions, not
frames.
"""

from __future__ import annotations

import bisect
import csv
import gzip
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import orjson

from chargeguard.errors import InputError

TX_MARGIN_S = 900.0  # plug-in before a transaction's first frame, unplugging after its last
_minutes: dict[str, float] = {}


def parse_ts(ts: str) -> float:
    """Epoch seconds of a capture ``ts`` (``YYYY-MM-DDTHH:MM:SS[.fff]Z``), the minute prefix cached."""
    prefix = ts[:17]
    base = _minutes.get(prefix)
    if base is None:
        if len(_minutes) > 100_000:
            _minutes.clear()
        base = _minutes[prefix] = datetime.fromisoformat(prefix + "00+00:00").timestamp()
    return base + float(ts[17:].rstrip("Z") or 0.0)


def open_capture(path: Path) -> IO[bytes]:
    if path.suffix == ".gz":
        return gzip.GzipFile(path, "rb")  # type: ignore[return-value]
    return path.open("rb")


@dataclass(slots=True)
class RealConnector:
    number: int  # the dataset's connector (1.6 connectorId, 2.0.1 evse id)
    kind: str
    max_kw: float


@dataclass(slots=True)
class RealStation:
    name: str
    ocpp: str = "1.6"
    vendor: str | None = None
    model: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    country: str = ""
    location_id: str = ""
    connectors: list[RealConnector] = field(default_factory=list)
    busy: list[tuple[float, float]] = field(default_factory=list)  # merged, sorted
    _starts: list[float] = field(default_factory=list)

    def busy_between(self, start: float, end: float) -> bool:
        """Whether a transaction (with its margins) overlaps [start, end]."""
        i = bisect.bisect_right(self._starts, end) - 1
        return i >= 0 and self.busy[i][1] >= start


@dataclass(slots=True)
class RealCapture:
    stations: dict[str, RealStation]
    first: float
    last: float
    registers: dict[tuple[str, int], tuple[list[float], list[float]]]  # (station, connector) -> times, Wh
    max_tx16: int
    tokens: list[str]
    lines: int

    def register_at(self, station: str, connector: int, t: float) -> float | None:
        """The connector's register at its last transaction start or stop before ``t``."""
        found = self.registers.get((station, connector))
        if found is None:
            return None
        i = bisect.bisect_right(found[0], t) - 1
        return found[1][i] if i >= 0 else None


def _energy(payload: dict[str, Any]) -> float | None:
    for meter_value in payload.get("meterValue") or ():
        for sampled in meter_value.get("sampledValue") or ():
            if sampled.get("measurand", "Energy.Active.Import.Register") == "Energy.Active.Import.Register":
                try:
                    return float(sampled["value"])
                except (KeyError, TypeError, ValueError):
                    return None
    return None


class _Reader:
    """The state of the single pass."""

    def __init__(self) -> None:
        self.stations: dict[str, RealStation] = {}
        self.tx_span: dict[tuple[str, str], list[float]] = {}
        self.tx_connector: dict[tuple[str, str], int] = {}
        self.pending: dict[tuple[str, str], int] = {}  # 1.6 StartTransaction message id -> connector
        self.registers: dict[tuple[str, int], tuple[list[float], list[float]]] = {}
        self.max_tx16 = 0
        self.tokens: dict[str, None] = {}

    def station(self, name: str) -> RealStation:
        found = self.stations.get(name)
        if found is None:
            found = self.stations[name] = RealStation(name)
        return found

    def tx(self, station: str, tx: object, t: float) -> tuple[str, str]:
        key = (station, str(tx))
        span = self.tx_span.get(key)
        if span is None:
            self.tx_span[key] = [t, t]
        else:
            span[1] = t
        return key

    def reading(self, station: str, connector: int | None, t: float, value: object) -> None:
        if connector is None or not isinstance(value, int | float):
            return
        times, values = self.registers.setdefault((station, connector), ([], []))
        times.append(t)
        values.append(float(value))

    def line(self, line: dict[str, Any]) -> None:
        name = line.get("station")
        frame = line.get("frame")
        if not isinstance(name, str) or not isinstance(frame, list) or len(frame) < 3:
            return
        st = self.station(name)
        st.ocpp = str(line.get("ocpp", st.ocpp))
        t = parse_ts(str(line["ts"]))
        if frame[0] == 3 and isinstance(frame[2], dict):
            connector = self.pending.pop((name, str(frame[1])), None)
            tx = frame[2].get("transactionId")
            if connector is not None and isinstance(tx, int):
                self.tx_connector[self.tx(name, tx, t)] = connector
                self.max_tx16 = max(self.max_tx16, tx)
            return
        if frame[0] != 2 or len(frame) < 4 or not isinstance(frame[3], dict):
            return
        action, payload = frame[2], frame[3]
        if action == "BootNotification":
            inner = payload.get("chargingStation") if st.ocpp != "1.6" else payload
            if isinstance(inner, dict):
                st.vendor = inner.get("chargePointVendor") or inner.get("vendorName") or st.vendor
                st.model = inner.get("chargePointModel") or inner.get("model") or st.model
        elif action == "Authorize" and len(self.tokens) < 40:
            token = payload.get("idTag") or (payload.get("idToken") or {}).get("idToken")
            if isinstance(token, str) and token:
                self.tokens[token] = None
        elif action == "StartTransaction":
            self.pending[(name, str(frame[1]))] = int(payload.get("connectorId", 0))
            self.reading(name, int(payload.get("connectorId", 0)), t, payload.get("meterStart"))
        elif action in ("MeterValues", "StopTransaction") and "transactionId" in payload:
            key = self.tx(name, payload["transactionId"], t)
            if action == "StopTransaction":
                self.reading(name, self.tx_connector.get(key), t, payload.get("meterStop"))
        elif action == "TransactionEvent":
            info = payload.get("transactionInfo") or {}
            key = self.tx(name, info.get("transactionId"), t)
            evse = payload.get("evse")
            if isinstance(evse, dict) and isinstance(evse.get("id"), int):
                self.tx_connector[key] = evse["id"]
            if payload.get("eventType") in ("Started", "Ended"):
                self.reading(name, self.tx_connector.get(key), t, _energy(payload))


def read_capture(capture: Path, inventory: Path) -> RealCapture:
    """One pass over an imported capture and its inventory (see the module docstring)."""
    reader = _Reader()
    first, last, count = float("inf"), float("-inf"), 0
    with open_capture(capture) as handle:
        for number, raw in enumerate(handle, 1):
            try:
                line = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                raise InputError(f"{capture}:{number}: not a JSON line") from exc
            count += 1
            if isinstance(line, dict) and isinstance(line.get("ts"), str):
                t = parse_ts(line["ts"])
                first, last = min(first, t), max(last, t)
                reader.line(line)
    if count == 0:
        raise InputError(f"{capture}: empty capture")
    _read_inventory(inventory, reader)
    spans: dict[str, list[tuple[float, float]]] = {}
    for (station, _tx), (a, b) in reader.tx_span.items():
        spans.setdefault(station, []).append((a - TX_MARGIN_S, b + TX_MARGIN_S))
    for name, st in reader.stations.items():
        st.busy = _merged(spans.get(name, []))
        st._starts = [a for a, _ in st.busy]
    return RealCapture(
        reader.stations, first, last, reader.registers, reader.max_tx16, list(reader.tokens), count
    )


def _merged(spans: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def _read_inventory(path: Path, reader: _Reader) -> None:
    with path.open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            name = row.get("station") or ""
            st = reader.stations.get(name)
            if st is None:
                continue
            st.latitude = _float(row.get("latitude"))
            st.longitude = _float(row.get("longitude"))
            st.country, st.location_id = row.get("country") or "", row.get("location_id") or ""
            wire = (row.get("connector_id") or "").split("/")[0]
            if wire.isdigit():
                kw = _float(row.get("max_kw")) or 7.4
                st.connectors.append(
                    RealConnector(int(wire), (row.get("connector_type") or "AC").upper(), kw)
                )


def _float(text: str | None) -> float | None:
    try:
        return float(text) if text else None
    except ValueError:
        return None


def iter_lines(capture: Path) -> Iterator[bytes]:
    with open_capture(capture) as handle:
        yield from handle
