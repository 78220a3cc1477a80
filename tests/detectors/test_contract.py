"""The contract every registered detector must keep (run over all of them, built-in and plugin).

* emits only the kinds it declares;
* stays silent on the benign golden capture (a day of ordinary traffic on twelve stations, both OCPP versions);
* is deterministic: two replays give the same alerts with the same ids;
* never raises on generated events of the types it consumes;
* keeps its state bounded when fed many distinct keys.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chargeguard import scenario
from chargeguard.detectors.base import Detector, DetectorContext, Limits
from chargeguard.detectors.registry import build_detectors, detector_classes
from chargeguard.events import Alert, Direction, Event
from chargeguard.inventory import Inventory, parse_inventory
from chargeguard.pipeline import ScanPipeline
from chargeguard.settings import Settings
from chargeguard.sources.capture import parse_line
from chargeguard.vault.pseudonyms import Pseudonymiser

CLASSES = detector_classes()
IDS = [cls.info.name for cls in CLASSES]
PSEUDO = Pseudonymiser({1: bytes(range(32))}, 1)


def _inventory() -> Inventory:
    rows = scenario.build(7, attacks=False)[1]
    return parse_inventory([{k: str(v) for k, v in row.items()} for row in rows], name="scenario")


def _replay(lines: list[dict[str, Any]], cls: type[Detector[Any]]) -> list[Alert]:
    import orjson

    context = DetectorContext(inventory=_inventory())
    detectors = build_detectors(context, classes=(cls,))
    alerts: list[Alert] = []
    pipeline = ScanPipeline(Settings(), PSEUDO, detectors=detectors, on_close=alerts.append)
    for number, line in enumerate(lines, start=1):
        pipeline.feed(parse_line(orjson.dumps(line), f"golden:{number}"))
    pipeline.finish()
    return alerts


@pytest.fixture(scope="module")
def benign_lines() -> list[dict[str, Any]]:
    return scenario.build(7, attacks=False)[0]


@pytest.fixture(scope="module")
def attack_lines() -> list[dict[str, Any]]:
    return scenario.build(7)[0]


def test_registry_is_not_empty_and_names_are_unique() -> None:
    assert len(CLASSES) >= 20
    assert len(set(IDS)) == len(IDS)


@pytest.mark.parametrize("cls", CLASSES, ids=IDS)
def test_silent_on_benign_golden_capture(
    cls: type[Detector[Any]], benign_lines: list[dict[str, Any]]
) -> None:
    alerts = _replay(benign_lines, cls)
    assert [(a.kind, a.summary) for a in alerts] == []


@pytest.mark.parametrize("cls", CLASSES, ids=IDS)
def test_declared_kinds_only_and_deterministic(
    cls: type[Detector[Any]], attack_lines: list[dict[str, Any]]
) -> None:
    first = _replay(attack_lines, cls)
    second = _replay(attack_lines, cls)
    assert {a.kind for a in first} <= set(cls.info.kinds)
    assert [(a.id, a.kind, a.ts, a.count) for a in first] == [(a.id, a.kind, a.ts, a.count) for a in second]


# ---------------------------------------------------------------------------------------------- generated events

_T0 = datetime(2026, 3, 1, tzinfo=UTC)
_times = st.integers(min_value=-86_400, max_value=30 * 86_400).map(lambda s: _T0 + timedelta(seconds=s))
_names = st.sampled_from(["CP-1", "CP-2", "DUN-01", "EDI-01", "x"]) | st.text(max_size=12)
_words = st.text(max_size=20) | st.sampled_from(
    [
        "Accepted",
        "Blocked",
        "Invalid",
        "1",
        "1/1",
        "true",
        "false",
        "0",
        "SecurityProfile",
        "2.0.1",
        "1.6",
        "TamperDetectionActivated",
        "Charging",
        "UpdateFirmware",
        "http://192.0.2.1/x",
        "tok1_aaaaaaaaaaaaaaa",
        "AuthCtrlr.LocalPreAuthorize",
        "AllowOfflineTxForUnknownId",
        "NetworkConnectionProfile/1",
        "v1.2.3",
    ]
)
_maybe_text = st.none() | _words


def _strategy(tp: Any) -> st.SearchStrategy[Any]:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return st.one_of(*(_strategy(arg) for arg in typing.get_args(tp)))
    if tp is type(None):
        return st.none()
    if tp is datetime:
        return _times
    if tp is str:
        return _words | _names
    if tp is bool:
        return st.booleans()
    if tp is int:
        return st.integers(-5, 100_000)
    if tp is float:
        return st.floats(min_value=-1e9, max_value=1e9, allow_nan=False)
    if tp is Direction:
        return st.sampled_from(list(Direction))
    if origin is tuple:
        return st.lists(_names, max_size=4).map(tuple)
    if origin in (Mapping, dict) or tp is Mapping:
        return st.dictionaries(
            st.sampled_from(["securityProfile", "ocppCsmsUrl", "key"]), _maybe_text, max_size=3
        )
    return st.none()


def _event_strategy(event_type: type[Any]) -> st.SearchStrategy[Any]:
    hints = typing.get_type_hints(event_type)
    fields = {f.name: _strategy(hints[f.name]) for f in msgspec.structs.fields(event_type)}
    return st.builds(event_type, **fields)


@pytest.mark.parametrize("cls", CLASSES, ids=IDS)
def test_never_raises_on_generated_events(cls: type[Detector[Any]]) -> None:
    detector = build_detectors(DetectorContext(inventory=_inventory()), classes=(cls,))[0]
    events = st.lists(st.one_of(*(_event_strategy(t) for t in cls.consumes)), min_size=1, max_size=30)

    @given(events)
    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    def run(batch: list[Event]) -> None:
        for event in sorted(batch, key=lambda e: e.ts):
            for finding in detector.process(event):
                assert finding.kind in cls.info.kinds
        list(detector.finish(_T0 + timedelta(days=40)))

    run()


@pytest.mark.parametrize("cls", CLASSES, ids=IDS)
def test_state_stays_bounded(cls: type[Detector[Any]]) -> None:
    limits = Limits(max_keys=50, ttl_s=3600)
    detector = build_detectors(DetectorContext(limits=limits), classes=(cls,))[0]
    for i in range(3000):
        for event_type in cls.consumes:
            list(detector.process(_distinct_event(event_type, i)))
    # a few bounded maps per detector, each within max_keys
    assert detector.state_size() <= 10 * limits.max_keys


def _distinct_event(event_type: type[Any], i: int) -> Any:
    """An event of ``event_type`` whose keys (station, token, transaction) are new every time."""
    from chargeguard.testing import an_event

    overrides: dict[str, Any] = {"ts": _T0 + timedelta(seconds=i), "station": f"CP-{i}"}
    names = {f.name for f in msgspec.structs.fields(event_type)}
    for name, value in (
        ("token_ref", PSEUDO(f"{i:08X}")),
        ("transaction_id", str(i)),
        ("message_id", str(i)),
        ("remote", f"198.51.100.{i % 250}:{i}"),
        ("fingerprint", str(i)),
        ("status", "Invalid"),
        ("reason", "schema"),
        ("event_type", f"Vendor{i}"),
        ("key", f"Key{i}"),
    ):
        if name in names:
            overrides[name] = value
    return an_event(event_type, **overrides)
