"""meter.inconsistent and meter.rollback on behaviours found in injected real data (1.6 and 2.0.1)."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from chargeguard.detectors.base import DetectorContext
from chargeguard.detectors.rules.consistency import Inconsistent
from chargeguard.detectors.rules.rollback import Rollback
from chargeguard.events import Event, MeterSample, TransactionEnded, TransactionStarted
from chargeguard.inventory import Inventory, StationInfo
from chargeguard.testing import an_event, at, make_detector, run_detector

T1 = "tok1_aaaaaaaaaaaaaaa"
CONTEXT = DetectorContext(
    inventory=Inventory({"CP-22": StationInfo("CP-22", 56.46, -2.97, 22.0, connectors=2)})
)
CONNECTOR = {"1.6": "1", "2.0.1": "1/1"}
DAY = 24 * 60.0


def start(
    tx: str, minute: float, meter: float, ocpp: str, *, connector: str | None = None
) -> TransactionStarted:
    return an_event(
        TransactionStarted, ts=at(minute), station="CP-22", ocpp=ocpp, transaction_id=tx,
        connector=connector or CONNECTOR[ocpp], token_ref=T1, meter_start_wh=meter,
        auth_status="Accepted" if ocpp == "1.6" else None,
    )  # fmt: skip


def sample(
    tx: str, minute: float, wh: float, ocpp: str, *, power_w: float | None = None, **kw: Any
) -> MeterSample:
    return an_event(
        MeterSample, ts=at(minute), station="CP-22", ocpp=ocpp, transaction_id=tx, connector=CONNECTOR[ocpp],
        energy_wh=wh, power_w=power_w, **kw,
    )  # fmt: skip


def end(
    tx: str, begin: float, minute: float, meter_start: float, meter_stop: float, ocpp: str,
    *, connector: str | None = None,
) -> TransactionEnded:  # fmt: skip
    return an_event(
        TransactionEnded, ts=at(minute), station="CP-22", ocpp=ocpp, transaction_id=tx,
        connector=connector or CONNECTOR[ocpp], token_ref=T1, started_at=at(begin), meter_start_wh=meter_start,
        meter_stop_wh=meter_stop,
    )  # fmt: skip


def fast_session(ocpp: str, stop_wh: float, *, kw: float = 59.0) -> list[Event]:
    """A 22 kW connector whose register rises at ``kw`` every 30 minutes for 90 minutes, stopping 27 min later."""
    step = kw * 500.0  # Wh per half hour
    events: list[Event] = [start("x", 0, 1_000_000.0, ocpp)]
    for k in (1, 2, 3):
        events.append(sample("x", 30 * k, 1_000_000.0 + k * step, ocpp, power_w=kw * 1000.0))
    if ocpp == "2.0.1":
        events.append(msgspec.structs.replace(sample("x", 117, stop_wh, ocpp), context="Transaction.End"))
    events.append(end("x", 0, 117, 1_000_000.0, stop_wh, ocpp))
    return events


@pytest.mark.parametrize("ocpp", ["1.6", "2.0.1"])
def test_a_stop_keeping_pace_with_samples_beyond_the_rating_is_not_inconsistent(ocpp: str) -> None:
    last = 1_000_000.0 + 3 * 59.0 * 500.0
    # 20.6 kWh in the last 27 minutes: 46 kW, beyond the 22 kW rating but slower than the samples' 59 kW
    assert run_detector(make_detector(Inconsistent, CONTEXT), fast_session(ocpp, last + 20_600.0)) == []


@pytest.mark.parametrize("ocpp", ["1.6", "2.0.1"])
def test_a_stop_beyond_even_the_samples_pace_is_inconsistent(ocpp: str) -> None:
    last = 1_000_000.0 + 3 * 59.0 * 500.0
    # 40 kWh in 27 minutes: 89 kW, faster than anything the transaction showed
    alerts = run_detector(make_detector(Inconsistent, CONTEXT), fast_session(ocpp, last + 40_000.0))
    assert [(a.kind, a.ts, a.evidence["check"]) for a in alerts] == [("meter.inconsistent", at(117), "stop")]
    # and a stop on a transaction charging within its rating is still held to the rating
    slow = fast_session(ocpp, 1_000_000.0 + 3 * 10_000.0 + 15_000.0, kw=20.0)  # 15 kWh in 27 min: 33 kW
    assert [a.evidence["check"] for a in run_detector(make_detector(Inconsistent, CONTEXT), slow)] == ["stop"]


def idle_between(ocpp: str, idle_days: float, next_start_wh: float) -> list[Event]:
    first = [start("a", 0, 2_000_000.0, ocpp), end("a", 0, 60, 2_000_000.0, 2_010_000.0, ocpp)]
    later = 60 + idle_days * DAY
    # the other connector charges meanwhile: state keeps being touched (and swept) while this one stands idle
    other = "2" if ocpp == "1.6" else "2/1"
    busy: list[Event] = []
    for k, minute in enumerate(range(120, int(later) - 60, 12 * 60)):
        register = 5_000_000.0 + k * 1000.0
        busy += [
            start(f"o{k}", minute, register, ocpp, connector=other),
            end(f"o{k}", minute, minute + 30, register, register + 1000.0, ocpp, connector=other),
        ]
    # (2.0.1: the Started event's Transaction.Begin register is its meter start; a sample follows)
    return [
        *first,
        *busy,
        start("b", later, next_start_wh, ocpp),
        sample("b", later + 30, next_start_wh + 500.0, ocpp),
    ]


@pytest.mark.parametrize("ocpp", ["1.6", "2.0.1"])
@pytest.mark.parametrize("idle_days", [0.1, 8.0, 17.0, 120.0])
def test_a_register_set_back_after_the_connector_stood_idle_for_weeks(ocpp: str, idle_days: float) -> None:
    alerts = run_detector(make_detector(Rollback, CONTEXT), idle_between(ocpp, idle_days, 2_001_700.0))
    assert [(a.transactions, a.evidence["check"], a.evidence["drop_wh"]) for a in alerts] == [
        (("a", "b"), "between_transactions", 8_300.0)
    ]


@pytest.mark.parametrize("ocpp", ["1.6", "2.0.1"])
def test_a_register_carried_on_after_weeks_idle_is_silent(ocpp: str) -> None:
    assert run_detector(make_detector(Rollback, CONTEXT), idle_between(ocpp, 17.0, 2_010_000.0)) == []
    assert (
        run_detector(make_detector(Rollback, CONTEXT), idle_between(ocpp, 17.0, 2_009_995.0)) == []
    )  # rounding
