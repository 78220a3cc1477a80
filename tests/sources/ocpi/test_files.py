"""OCPI files for a scan: loading and reporting, Locations as inventory, and the time-ordered merge into the engine."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path
from typing import Any, ClassVar

import msgspec
import orjson
import pytest

from chargeguard.detectors.base import Detector, DetectorContext, DetectorInfo
from chargeguard.engine import Engine
from chargeguard.events import Event, Finding, FrameSeen, Severity
from chargeguard.inventory import Inventory, StationInfo
from chargeguard.sources.ocpi.events import CdrReceived, SessionReported, TariffKnown, TokenStatus
from chargeguard.sources.ocpi.files import OcpiInputs, load_ocpi
from chargeguard.sources.ocpi.merge import SideStream
from chargeguard.sources.ocpi.models import Location
from chargeguard.sources.ocpi.normalize import StationMapping
from chargeguard.sources.ocpi.stations import inventory_from_locations, merge_inventories
from chargeguard.testing import an_event, at
from chargeguard.vault.pseudonyms import Pseudonymiser
from cli.ocpi_case import BLOCKED, LOCATION, T0, TARIFF, a_cdr, a_session, a_token

P = Pseudonymiser({1: bytes(range(32))}, 1)


def _write(path: Path, records: list[Any], *, jsonl: bool = False) -> Path:
    if jsonl:
        path.write_bytes(b"".join((r if isinstance(r, bytes) else orjson.dumps(r)) + b"\n" for r in records))
    else:
        path.write_bytes(orjson.dumps(records))
    return path


def test_load_orders_events_maps_stations_and_reports_bad_records(tmp_path: Path) -> None:
    hour = timedelta(hours=1)
    cdrs = _write(
        tmp_path / "cdrs.jsonl",
        [
            a_cdr("C2", "EVSE-B", T0 + 5 * hour, 30, 3.0, 0.75),
            b"",
            b"[1, 2]",
            a_cdr("C1", "EVSE-A", T0, 30, 3.0, 0.75),
        ],
        jsonl=True,
    )
    tokens = _write(
        tmp_path / "tokens.jsonl",
        [a_token(BLOCKED, valid=False, updated=T0 - hour, received_at="2026-03-02T00:30:00Z"),
         a_token(BLOCKED, valid=True, updated=T0 - 2 * hour, received_at="yesterday")],
        jsonl=True,
    )  # fmt: skip
    inputs = OcpiInputs(
        cdrs=[cdrs, tmp_path / "missing.json"],
        sessions=[_write(tmp_path / "s.json", [a_session("S1", "EVSE-C", T0, 20, 2.0)])],
        tariffs=[_write(tmp_path / "t.json", [TARIFF])],
        tokens=[tokens],
        locations=[_write(tmp_path / "l.json", [LOCATION])],
    )
    load = load_ocpi(inputs, P, mode="evse_id")
    assert load.objects == {"tariff": 1, "token": 1, "location": 1}  # sessions and CDRs wait, raw
    events = list(load.events())
    assert list(load.events()) == []  # consumed once
    types = [type(e) for e in events]
    assert types == [TariffKnown, TokenStatus, SessionReported, CdrReceived, CdrReceived]
    assert [e.ts for e in events] == sorted(e.ts for e in events)
    first_cdr = events[3]
    assert isinstance(first_cdr, CdrReceived) and first_cdr.station == "BE*BEC*EEVSE-A"  # CDR's own evse_id
    session = events[2]
    assert isinstance(session, SessionReported) and session.station == "BE*BEC*EEVSE-C"  # from the Location
    token = events[1]
    assert isinstance(token, TokenStatus) and token.token_ref == P.pseudonymise(BLOCKED)
    assert token.received_at is not None and token.received_at.isoformat() == "2026-03-02T00:30:00+00:00"
    assert load.objects == {"cdr": 2, "session": 1, "tariff": 1, "token": 1, "location": 1}
    assert load.bad == {"cdr": 1, "token": 1} and load.bad_total == 2
    token_problem, cdr_problem = (
        load.bad_examples
    )  # files are read Locations, Tariffs, Tokens, Sessions, CDRs
    assert cdr_problem.startswith(f"{cdrs}:3 record 1: invalid OCPI cdr")  # the blank line 2 is skipped
    assert token_problem.startswith(f"{tokens}:2 record 1 (token {P.pseudonymise(BLOCKED)}): received_at")
    assert BLOCKED not in " ".join(load.bad_examples)
    assert load.unreadable == [f"{tmp_path / 'missing.json'}: cannot read: No such file or directory"]
    assert load.mapping.time_zones == {"LOC1": "Europe/Brussels"}
    assert not OcpiInputs() and bool(inputs)


def _location(**evse_overrides: Any) -> Location:
    doc = orjson.loads(orjson.dumps(LOCATION))
    for evse in doc["evses"]:
        evse["connectors"][0].update(evse_overrides)
    return msgspec.convert(doc, Location)


def test_locations_as_inventory() -> None:
    inventory = inventory_from_locations([_location()], StationMapping())
    b = inventory.get("EVSE-B")
    assert (
        b is not None and b.max_kw == pytest.approx(3.68) and b.location_id == "LOC1" and b.country == "BEL"
    )
    assert (b.latitude, b.longitude) == (51.05, 3.72) and b.connector_max_kw("1") == pytest.approx(3.68)
    # without max_electric_power: line-to-neutral voltage x current x 3 phases
    no_power = inventory_from_locations([_location(max_electric_power=None)], StationMapping())
    assert no_power.get("EVSE-A") is not None and no_power.stations["EVSE-A"].max_kw == pytest.approx(22.08)
    # one station per site: its EVSEs add up, the best connector is the rating
    site = inventory_from_locations([_location()], StationMapping(mode="location"))
    assert list(site.stations) == ["LOC1"] and site.stations["LOC1"].connectors == 3
    assert site.stations["LOC1"].max_kw == pytest.approx(22.08)
    csv = Inventory({"EVSE-B": StationInfo("EVSE-B", 1.0, 2.0, 50.0)})
    merged = merge_inventories(csv, inventory)
    assert merged is not None and merged.stations["EVSE-B"].max_kw == 50.0 and "EVSE-A" in merged.stations
    assert merge_inventories(None, inventory) is inventory


class _Recorder(Detector[Any]):
    """Records the time of every event it is given (to check the merge order)."""

    info: ClassVar[DetectorInfo] = DetectorInfo("recorder", ("test.recorded",), "records", Severity.INFO)
    consumes: ClassVar[tuple[type[Any], ...]] = (FrameSeen, CdrReceived)

    def __init__(self) -> None:
        super().__init__(None, DetectorContext())
        self.seen: list[tuple[str, float]] = []

    def process(self, event: Event) -> Iterable[Finding]:
        self.seen.append((type(event).__name__, (event.ts - T0).total_seconds()))
        return ()


def _frame(seconds: float) -> FrameSeen:
    return an_event(FrameSeen, ts=at(seconds=seconds) - at() + T0)


def _cdr(seconds: float) -> CdrReceived:
    return CdrReceived(ts=T0 + timedelta(seconds=seconds), station="EVSE-A", key=f"BE*BEC*{seconds}")


@pytest.mark.parametrize("batched", [False, True])
def test_side_stream_interleaves_side_events_in_time_order(batched: bool) -> None:
    recorder = _Recorder()
    engine = Engine([recorder])
    side = SideStream(iter([_cdr(5), _cdr(10), _cdr(15), _cdr(30)]))
    frames = [_frame(0), _frame(10), _frame(10), _frame(20)]
    if batched:
        side.feed(engine, frames[:3])
        side.feed(engine, frames[3:])
    else:
        for frame in frames:
            side.feed(engine, (frame,))
    side.feed_until(engine, None)
    engine.finish()
    assert recorder.seen == [
        ("FrameSeen", 0), ("CdrReceived", 5), ("CdrReceived", 10), ("FrameSeen", 10), ("FrameSeen", 10),
        ("CdrReceived", 15), ("FrameSeen", 20), ("CdrReceived", 30),
    ]  # fmt: skip
    assert side.fed == 4 and engine.stats.events == 8 and side.next_ts is None


def test_side_stream_pulls_a_long_side_stream_lazily_in_chunks() -> None:
    recorder = _Recorder()
    pulled: list[float] = []

    def stream() -> Iterable[CdrReceived]:
        for i in range(3000):
            pulled.append(i)
            yield _cdr(i)

    engine = Engine([recorder])
    side = SideStream(stream())
    assert len(pulled) == 1  # one event of lookahead, nothing more
    side.feed(engine, (_frame(1500.5),))
    assert len(recorder.seen) == 1502 and len(pulled) == 1502
    side.feed_until(engine, None)
    engine.finish()
    assert [t for _, t in recorder.seen] == [*range(1501), 1500.5, *range(1501, 3000)]
