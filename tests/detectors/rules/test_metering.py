"""Metering and session detectors: capacity, rollback, inconsistent readings, connector overlap, phantom sessions."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from chargeguard.detectors.base import DetectorContext, Limits
from chargeguard.detectors.rules.consistency import Inconsistent
from chargeguard.detectors.rules.metering import DETECTORS, ExceedsCapacity
from chargeguard.detectors.rules.phantom import Phantom
from chargeguard.detectors.rules.rollback import Rollback
from chargeguard.detectors.rules.sessions import SessionOverlap
from chargeguard.events import (
    ConnectorStatus,
    Event,
    MeterSample,
    Severity,
    TransactionEnded,
    TransactionStarted,
)
from chargeguard.inventory import ConnectorInfo, Inventory, StationInfo
from chargeguard.testing import an_event, at, make_detector, run_detector

T1 = "tok1_aaaaaaaaaaaaaaa"

INVENTORY = Inventory(
    {
        "CP-AC": StationInfo("CP-AC", 56.46, -2.97, 22.0, connectors=2),
        "CP-DC": StationInfo(
            "CP-DC",
            56.47,
            -2.98,
            150.0,
            connectors=2,
            connector_info={
                "1/1": ConnectorInfo("1/1", 50.0, "DC"),
                "2/1": ConnectorInfo("2/1", 150.0, "DC"),
            },
        ),
    }
)
WITH_INVENTORY = DetectorContext(inventory=INVENTORY)


def start(
    tx: str,
    minute: float,
    *,
    station: str = "CP-AC",
    ocpp: str = "1.6",
    connector: str = "1",
    meter: float | None = 0.0,
    queued: bool = False,
    arrive: float | None = None,
    token: str | None = T1,
) -> TransactionStarted:
    return an_event(
        TransactionStarted,
        ts=at(minute if arrive is None else arrive),
        at=at(minute),
        station=station,
        ocpp=ocpp,
        transaction_id=tx,
        connector=connector,
        token_ref=token,
        meter_start_wh=meter,
        queued=queued,
        auth_status="Accepted" if ocpp == "1.6" else None,
    )


def sample(
    tx: str | None,
    minute: float,
    wh: float | None,
    *,
    station: str = "CP-AC",
    ocpp: str = "1.6",
    connector: str = "1",
    power_w: float | None = None,
    arrive: float | None = None,
    queued: bool = False,
) -> MeterSample:
    return an_event(
        MeterSample,
        ts=at(minute if arrive is None else arrive),
        at=at(minute),
        station=station,
        ocpp=ocpp,
        transaction_id=tx,
        connector=connector,
        energy_wh=wh,
        power_w=power_w,
        queued=queued,
    )


def end(
    tx: str,
    begin: float | None,
    minute: float,
    *,
    station: str = "CP-AC",
    ocpp: str = "1.6",
    connector: str = "1",
    meter_start: float | None = 0.0,
    meter_stop: float | None = 10_000.0,
    samples: int = 0,
    first: float | None = None,
    last: float | None = None,
    max_power_w: float | None = None,
    charging_seen: bool = True,
    queued: bool = False,
    arrive: float | None = None,
) -> TransactionEnded:
    return an_event(
        TransactionEnded,
        ts=at(minute if arrive is None else arrive),
        at=at(minute),
        station=station,
        ocpp=ocpp,
        transaction_id=tx,
        connector=connector,
        token_ref=T1,
        started_at=None if begin is None else at(begin),
        meter_start_wh=meter_start,
        meter_stop_wh=meter_stop,
        samples=samples,
        first_sample_wh=first,
        last_sample_wh=last,
        max_power_w=max_power_w,
        charging_seen=charging_seen,
        queued=queued,
    )


def run(
    cls: type[Any], events: list[Event], *, context: DetectorContext | None = None, **settings: Any
) -> list[Any]:
    return run_detector(make_detector(cls, context, **settings), events)


def test_exports_every_meter_and_session_kind() -> None:
    kinds = {kind for cls in DETECTORS for kind in cls.info.kinds}
    assert kinds == {
        "meter.exceeds_capacity",
        "meter.rollback",
        "meter.inconsistent",
        "session.overlap",
        "session.phantom",
    }


# --------------------------------------------------------------------------------------------- capacity


def test_energy_between_samples_beyond_the_connector_rating() -> None:
    events: list[Event] = [
        start("1", 0, meter=1000.0),
        sample("1", 1, 1300.0),  # 18 kW on a 22 kW connector
        sample("1", 2, 2300.0),  # 60 kW
        sample("1", 3, 3300.0),  # again: same incident, no second finding
        end("1", 0, 4, meter_start=1000.0, meter_stop=3500.0, samples=3, first=1300.0, last=3300.0),
    ]
    alerts = run(ExceedsCapacity, events, context=WITH_INVENTORY)
    assert len(alerts) == 1
    alert = alerts[0]
    assert (alert.kind, alert.ts, alert.station, alert.transactions) == (
        "meter.exceeds_capacity",
        at(2),
        "CP-AC",
        ("1",),
    )
    assert alert.count == 1
    assert alert.evidence["check"] == "interval"
    assert alert.evidence["limit_kw"] == 22.0
    assert alert.evidence["limit_source"] == "inventory"
    assert alert.evidence["average_kw"] == pytest.approx(60.0)


def test_plausible_charging_within_tolerance_is_silent() -> None:
    events: list[Event] = [start("1", 0, meter=0.0)]
    for minute in range(1, 61):
        events.append(sample("1", minute, minute * 400.0, power_w=23_500.0))  # 24 kW vs 22 kW + 10 %
    events.append(
        end("1", 0, 61, meter_stop=24_400.0, samples=60, first=400.0, last=24_000.0, max_power_w=23_500.0)
    )
    assert run(ExceedsCapacity, events, context=WITH_INVENTORY) == []


def test_reported_power_beyond_the_rating() -> None:
    events: list[Event] = [
        start("1", 0),
        sample("1", 1, None, power_w=30_000.0),
        sample("1", 2, None, power_w=31_000.0),
    ]
    alerts = run(ExceedsCapacity, events, context=WITH_INVENTORY)
    assert [(a.ts, a.evidence["check"], a.count) for a in alerts] == [(at(1), "power", 1)]


def test_201_connector_rows_of_the_inventory_apply_per_evse() -> None:
    events: list[Event] = [
        start("a", 0, station="CP-DC", ocpp="2.0.1", connector="1/1"),
        sample(
            "a", 10, 12_000.0, station="CP-DC", ocpp="2.0.1", connector="1/1"
        ),  # 72 kW on the 50 kW connector
        start("b", 0, station="CP-DC", ocpp="2.0.1", connector="2/1"),
        sample("b", 10, 20_000.0, station="CP-DC", ocpp="2.0.1", connector="2/1"),  # 120 kW on the 150 kW one
    ]
    alerts = run(ExceedsCapacity, events, context=WITH_INVENTORY)
    assert [(a.transactions, a.evidence["limit_kw"]) for a in alerts] == [(("a",), 50.0)]


def test_without_inventory_only_the_absolute_maximum_applies() -> None:
    moderate = [start("1", 0), sample("1", 1, 1500.0)]  # 90 kW: fine without knowing the connector
    assert run(ExceedsCapacity, moderate) == []
    absurd = [start("1", 0), sample("1", 1, 500.0), sample("1", 2, 20_500.0)]  # 1.2 MW
    alerts = run(ExceedsCapacity, absurd)
    assert [(a.ts, a.evidence["limit_kw"], a.evidence["limit_source"]) for a in alerts] == [
        (at(2), 400.0, "default")
    ]


def test_first_sample_beyond_any_charger_is_left_to_meter_inconsistent() -> None:
    events: list[Event] = [start("1", 0, meter=0.0), sample("1", 1, 1_234_567.0), sample("1", 2, 1_235_000.0)]
    assert run(ExceedsCapacity, events, context=WITH_INVENTORY) == []
    assert run(Rollback, events, context=WITH_INVENTORY) == []


def test_more_energy_than_any_battery() -> None:
    events: list[Event] = [
        start("1", 0, station="CP-X", meter=0.0),
        end("1", 0, 24 * 60, station="CP-X", meter_stop=1_200_000.0),
    ]
    alerts = run(ExceedsCapacity, events)
    assert [(a.ts, a.evidence["check"]) for a in alerts] == [(at(24 * 60), "battery")]
    assert run(ExceedsCapacity, events, max_session_wh=1_500_000.0) == []
    truck = [start("2", 0, station="CP-X", meter=0.0), end("2", 0, 137, station="CP-X", meter_stop=268_863.0)]
    assert run(ExceedsCapacity, truck) == []  # a heavy vehicle's 370 kWh battery (EPFL data)


def test_late_sample_with_an_earlier_station_time_is_not_a_jump() -> None:
    events: list[Event] = [
        start("1", 0),
        sample("1", 30, 10_000.0),
        sample("1", 10, 3_000.0, arrive=31),  # arrives late, belongs earlier
        sample("1", 31, 10_300.0),
    ]
    assert run(ExceedsCapacity, events, context=WITH_INVENTORY) == []


# --------------------------------------------------------------------------------------------- rollback


def test_register_going_backwards_in_16() -> None:
    events: list[Event] = [
        start("1", 0, meter=1000.0),
        sample("1", 5, 2000.0),
        sample("1", 10, 1500.0),
        sample("1", 15, 1200.0),
    ]
    alerts = run(Rollback, events)
    assert len(alerts) == 1
    assert (alerts[0].kind, alerts[0].ts, alerts[0].transactions) == ("meter.rollback", at(10), ("1",))
    assert alerts[0].evidence["drop_wh"] == 500.0


def test_slow_rollback_in_small_steps_is_caught_once_the_sum_passes_the_tolerance() -> None:
    events: list[Event] = [start("e", 0, ocpp="2.0.1", connector="1/1", meter=5000.0)]
    for i in range(1, 6):
        events.append(sample("e", i, 5000.0 - 4.0 * i, ocpp="2.0.1", connector="1/1"))  # 4 Wh per step
    alerts = run(Rollback, events)
    assert [a.ts for a in alerts] == [at(3)]  # 12 Wh below the peak > 10 Wh


def test_meter_stop_below_meter_start() -> None:
    events: list[Event] = [
        start("1", 0, meter=50_000.0),
        end("1", 0, 60, meter_start=50_000.0, meter_stop=40_000.0),
    ]
    alerts = run(Rollback, events)
    assert [(a.ts, a.evidence["check"], a.severity) for a in alerts] == [
        (at(60), "stop_below_start", Severity.HIGH)
    ]


def test_meter_stop_below_the_transactions_own_samples_in_16() -> None:
    events: list[Event] = [
        start("1", 0, meter=50_000.0),
        sample("1", 20, 56_000.0),
        sample("1", 40, 62_000.0),
        end("1", 0, 60, meter_start=50_000.0, meter_stop=59_500.0, samples=2, first=56_000.0, last=62_000.0),
    ]
    alerts = run(Rollback, events)
    assert [(a.ts, a.evidence["check"], a.evidence["drop_wh"]) for a in alerts] == [
        (at(60), "stop_below_sample", 2500.0)
    ]
    # near misses: a stop at or above the last sample (or within rounding of it) is how registers end
    for stop in (62_000.0, 61_995.0, 63_100.0):
        fine = [*events[:3], end("1", 0, 60, meter_start=50_000.0, meter_stop=stop, samples=2)]
        assert run(Rollback, fine) == [], stop


def test_rollback_near_misses() -> None:
    rounding = [start("1", 0, meter=1000.0), sample("1", 5, 2000.0), sample("1", 6, 1991.0)]
    assert run(Rollback, rounding) == []
    late = [start("1", 0), sample("1", 10, 2000.0), sample("1", 5, 1000.0, arrive=11)]
    assert run(Rollback, late) == []
    per_transaction_registers = [
        start("1", 0, meter=0.0),
        end("1", 0, 10, meter_start=0.0, meter_stop=9500.0),
        start("2", 20, meter=0.0),
        sample("2", 25, 500.0),
    ]
    assert run(Rollback, per_transaction_registers) == []
    continuous = [
        start("1", 0, meter=9000.0),
        end("1", 0, 10, meter_start=9000.0, meter_stop=9500.0),
        start("2", 20, meter=9500.0),
    ]
    assert run(Rollback, continuous) == []


def test_register_set_back_between_two_transactions() -> None:
    events: list[Event] = [
        start("1", 0, meter=2_000_000.0),
        end("1", 0, 60, meter_start=2_000_000.0, meter_stop=2_020_000.0),
        start("2", 90, meter=2_005_000.0),  # 15 kWh below where transaction 1 stopped
    ]
    alerts = run(Rollback, events)
    assert [(a.ts, a.transactions, a.evidence["check"], a.evidence["drop_wh"]) for a in alerts] == [
        (at(90), ("1", "2"), "between_transactions", 15_000.0)
    ]
    to_zero = [*events[:2], start("2", 90, meter=40.0)]
    assert [a.evidence["after_wh"] for a in run(Rollback, to_zero)] == [40.0]


def test_201_register_set_back_shows_in_the_first_reading() -> None:
    events: list[Event] = [
        start("a", 0, ocpp="2.0.1", connector="2/1", meter=500_000.0),
        end("a", 0, 60, ocpp="2.0.1", connector="2/1", meter_start=500_000.0, meter_stop=510_000.0),
        start("b", 70, ocpp="2.0.1", connector="2/1", meter=None),  # Started without a meterValue
        sample("b", 75, 503_000.0, ocpp="2.0.1", connector="2/1"),
    ]
    alerts = run(Rollback, events)
    assert [(a.ts, a.transactions) for a in alerts] == [(at(75), ("a", "b"))]
    other_evse = [*events[:2], start("c", 70, ocpp="2.0.1", connector="1/1", meter=3000.0)]
    assert run(Rollback, other_evse) == []


def test_offline_replay_of_an_earlier_transaction_is_not_set_back() -> None:
    events: list[Event] = [
        start("live", 120, meter=80_000.0),
        end("live", 120, 180, meter_start=80_000.0, meter_stop=90_000.0),
        # the station's offline queue: an earlier transaction on the same connector arrives afterwards
        start("old", 30, meter=70_000.0, queued=True, arrive=200),
        end("old", 30, 90, meter_start=70_000.0, meter_stop=80_000.0, queued=True, arrive=200.1),
    ]
    assert run(Rollback, events) == []


def test_rollbacks_on_one_connector_are_one_incident() -> None:
    events: list[Event] = [
        start("1", 0, meter=1000.0),
        sample("1", 5, 3000.0),
        sample("1", 6, 2000.0),
        end("1", 0, 10, meter_start=1000.0, meter_stop=2000.0),
        start("2", 20, meter=2000.0),
        sample("2", 25, 4000.0),
        sample("2", 26, 2500.0),
    ]
    alerts = run(Rollback, events)
    assert len(alerts) == 1
    assert alerts[0].transactions == ("1", "2")
    assert alerts[0].count == 2


# --------------------------------------------------------------------------------------------- inconsistent


def test_meter_stop_below_the_last_sampled_register() -> None:
    events: list[Event] = [
        start("1", 0, meter=1000.0),
        sample("1", 10, 3000.0),
        sample("1", 20, 5000.0),
        end("1", 0, 20, meter_start=1000.0, meter_stop=3000.0, samples=2, first=3000.0, last=5000.0),
    ]
    alerts = run(Inconsistent, events, context=WITH_INVENTORY)
    assert len(alerts) == 1
    assert (alerts[0].kind, alerts[0].ts, alerts[0].token_ref) == ("meter.inconsistent", at(20), T1)
    assert alerts[0].evidence["check"] == "stop"
    assert alerts[0].evidence["difference_wh"] == -2000.0


def test_meter_stop_far_above_what_the_connector_could_add() -> None:
    events: list[Event] = [
        start("1", 0, meter=0.0),
        sample("1", 30, 10_000.0),
        end("1", 0, 31, meter_stop=40_000.0, samples=1, first=10_000.0, last=10_000.0),  # +30 kWh in a minute
    ]
    alerts = run(Inconsistent, events, context=WITH_INVENTORY)
    assert [a.evidence["check"] for a in alerts] == ["stop"]
    plausible = [start("1", 0, meter=0.0), sample("1", 30, 10_000.0), end("1", 0, 40, meter_stop=13_000.0)]
    assert run(Inconsistent, plausible, context=WITH_INVENTORY) == []  # 3 kWh in 10 min on 22 kW


def test_first_sample_disagreeing_with_meter_start() -> None:
    events: list[Event] = [
        start("1", 0, meter=0.0),  # meterStart 0 ...
        sample("1", 1, 1_234_567.0),  # ... but an absolute register
        sample("1", 30, 1_244_567.0),
        end("1", 0, 30, meter_start=0.0, meter_stop=1_244_567.0, samples=2),
    ]
    alerts = run(Inconsistent, events, context=WITH_INVENTORY)
    assert [(a.ts, a.evidence["check"], a.severity) for a in alerts] == [
        (at(30), "first_sample", Severity.HIGH)
    ]
    below = [
        start("2", 0, meter=5000.0),
        sample("2", 5, 3000.0),
        end("2", 0, 10, meter_start=5000.0, meter_stop=6000.0),
    ]
    assert [a.evidence["check"] for a in run(Inconsistent, below, context=WITH_INVENTORY)] == ["first_sample"]


def test_201_transaction_end_register_against_the_running_samples() -> None:
    def session(end_wh: float) -> list[Event]:
        events: list[Event] = [start("e", 0, ocpp="2.0.1", connector="1/1", meter=1000.0)]
        events.append(sample("e", 0, 1000.0, ocpp="2.0.1", connector="1/1"))
        for minute in range(5, 60, 5):  # 6 kW: 500 Wh every five minutes
            events.append(sample("e", minute, 1000.0 + minute * 100.0, ocpp="2.0.1", connector="1/1"))
        end_sample = sample("e", 58, end_wh, ocpp="2.0.1", connector="1/1")
        events.append(msgspec.structs.replace(end_sample, context="Transaction.End"))
        events.append(end("e", 0, 58, ocpp="2.0.1", connector="1/1", meter_start=1000.0, meter_stop=end_wh))
        return events

    assert (
        run(Inconsistent, session(6_700.0), context=WITH_INVENTORY) == []
    )  # 6.7 kWh: 6 kW for 3 more minutes
    inflated = run(Inconsistent, session(8_500.0), context=WITH_INVENTORY)  # +2 kWh in 3 minutes at 6 kW
    assert [(a.ts, a.evidence["check"], a.evidence["expected_wh"]) for a in inflated] == [
        (at(58), "stop", 6_500.0)
    ]
    trimmed = run(Inconsistent, session(5_000.0), context=WITH_INVENTORY)
    assert [a.evidence["difference_wh"] for a in trimmed] == [-1500.0]


def test_consistent_readings_are_silent() -> None:
    events: list[Event] = [
        start("1", 0, meter=1000.0),
        sample("1", 0, 1000.0),
        sample("1", 30, 6000.0),
        end("1", 0, 31, meter_start=1000.0, meter_stop=6050.0, samples=2, first=1000.0, last=6000.0),
    ]
    assert run(Inconsistent, events, context=WITH_INVENTORY) == []
    unsampled = [start("2", 0), end("2", 0, 60, meter_stop=20_000.0)]
    assert run(Inconsistent, unsampled, context=WITH_INVENTORY) == []


# --------------------------------------------------------------------------------------------- overlap


def test_two_transactions_open_on_one_16_connector() -> None:
    # the first frame showing both running beyond the tolerance completes the evidence: here the first sample
    events: list[Event] = [
        start("1", 0), sample("1", 5, 500.0), start("2", 10), sample("1", 10.2, 600.0), sample("1", 15, 900.0),
        end("1", 0, 30), end("2", 10, 40),
    ]  # fmt: skip
    alerts = run(SessionOverlap, events)
    assert len(alerts) == 1
    assert (alerts[0].kind, alerts[0].ts, alerts[0].transactions) == ("session.overlap", at(15), ("1", "2"))
    assert alerts[0].count == 1
    assert alerts[0].evidence["still_running"] is True
    unsampled = [start("1", 0), start("2", 10), end("1", 0, 30)]  # no samples: the first stop measures it
    assert [(a.ts, a.evidence["overlap_s"]) for a in run(SessionOverlap, unsampled)] == [(at(30), 1200.0)]


def test_a_hand_over_within_the_tolerance_is_not_an_overlap() -> None:
    # the next car's transaction starts at plug-in, stamped 20 s before the previous stop arrives
    events: list[Event] = [
        start("1", 0), sample("1", 5, 500.0), start("2", 9 - 20 / 60), end("1", 0, 9), sample("2", 14, 700.0),
    ]  # fmt: skip
    assert run(SessionOverlap, events) == []


def test_overlap_needs_the_same_connector_or_evse() -> None:
    other_connector = [start("1", 0, connector="1"), start("2", 10, connector="2")]
    assert run(SessionOverlap, other_connector) == []
    other_evse = [start("a", 0, ocpp="2.0.1", connector="1/1"), start("b", 5, ocpp="2.0.1", connector="2/1")]
    assert run(SessionOverlap, other_evse) == []
    same_evse = [
        start("a", 0, ocpp="2.0.1", connector="1/1"),
        start("b", 5, ocpp="2.0.1", connector="1/2"),
        end("a", 0, 20, ocpp="2.0.1", connector="1/1"),
    ]
    assert [a.ts for a in run(SessionOverlap, same_evse)] == [at(20)]
    other_station = [start("1", 0, station="CP-1"), start("2", 5, station="CP-2")]
    assert run(SessionOverlap, other_station) == []


def test_back_to_back_and_offline_replays_are_not_overlaps() -> None:
    back_to_back = [start("1", 0), end("1", 0, 30), start("2", 30.1), end("2", 30.1, 60)]
    assert run(SessionOverlap, back_to_back) == []
    offline_then_live = [
        start("live", 120),
        start("off", 30, queued=True, arrive=180),
        end("off", 30, 90, queued=True, arrive=180.1),
    ]
    assert run(SessionOverlap, offline_then_live) == []


def test_a_transaction_whose_stop_was_lost_stops_counting_when_its_samples_stop() -> None:
    stuck = [start("1", 0), sample("1", 5, 500.0), sample("1", 10, 1000.0)]  # then silence: the stop was lost
    after = [start("2", 180), sample("2", 185, 300.0)]
    assert run(SessionOverlap, [*stuck, *after]) == []
    running = [*stuck, *(sample("1", m, 1000.0 + m * 50) for m in range(15, 180, 5)), *after]
    assert [a.ts for a in run(SessionOverlap, running)] == [at(185)]
    # a station that never sends samples gives no such clue: the open transaction counts until max_open_s
    silent = [start("1", 0), start("2", 180), end("2", 180, 200)]
    assert [a.ts for a in run(SessionOverlap, silent)] == [at(200)]
    assert run(SessionOverlap, silent, max_open_s=3600.0) == []


def test_a_station_that_keeps_sampling_is_still_known_to_sample_after_the_state_ttl() -> None:
    # the station's sampling habit is what marks a silent open transaction as stuck; it must stay known while the
    # station keeps sampling, even longer than the state TTL after it was first learned (a 1-hour TTL here)
    context = DetectorContext(limits=Limits(ttl_s=3600.0))
    other_connector = [
        start("c", 0, connector="2"),
        *(sample("c", m, 100.0 * m, connector="2") for m in range(5, 51, 5)),
    ]
    stuck = [
        start("1", 55),
        sample("1", 60, 500.0),
        sample("1", 65, 1000.0),
    ]  # then silence: the stop was lost
    later = [
        *(sample("c", m, 100.0 * m, connector="2") for m in range(70, 101, 5)),
        end("c", 0, 101, connector="2"),
    ]
    elsewhere = [
        start("x", 110, station="CP-2"),
        sample("x", 111, 100.0, station="CP-2"),
    ]  # ages out old keys
    after = [start("2", 112), end("2", 112, 130)]
    assert run(SessionOverlap, [*other_connector, *stuck, *later, *elsewhere, *after], context=context) == []
    # near miss: the same transaction sampling on past the new start is running, and that is an overlap
    running = [
        *other_connector, *stuck, *(sample("1", m, 1000.0 + m * 50) for m in range(70, 111, 5)), *elsewhere,
        start("2", 112), sample("1", 117, 7000.0), end("2", 112, 130),
    ]  # fmt: skip
    assert [(a.ts, a.transactions) for a in run(SessionOverlap, running, context=context)] == [
        (at(117), ("1", "2"))
    ]


def test_a_clock_set_back_between_two_live_transactions_is_not_an_overlap() -> None:
    # the station's clock falls 5 hours behind: its next live session is stamped inside the previous one
    events: list[Event] = [
        start("1", 0), sample("1", 30, 3000.0), end("1", 0, 120),
        start("2", 0, arrive=300), end("2", 0, 60, arrive=360),
    ]  # fmt: skip
    events = sorted(events, key=lambda e: e.ts)
    assert run(SessionOverlap, events) == []
    # the late session's frames look queued (each sample follows a silence) but arrive over its whole length
    looks_queued = [
        start("1", 0), end("1", 0, 120),
        start("2", 0, arrive=300, queued=True), end("2", 0, 60, arrive=360, queued=True),
    ]  # fmt: skip
    assert run(SessionOverlap, looks_queued) == []
    # near miss the other way: the same station-time overlap while both were live at once is an overlap
    together = [start("1", 0), start("2", 10), end("2", 10, 60), end("1", 0, 120)]
    assert [a.ts for a in run(SessionOverlap, together)] == [at(60)]


def test_queued_transaction_overlapping_a_live_one_fires_at_its_end() -> None:
    events: list[Event] = [
        start("live", 120),
        start("off", 130, queued=True, arrive=300),
        end("off", 130, 170, queued=True, arrive=300.2),
    ]
    alerts = run(SessionOverlap, events)
    assert [(a.ts, a.transactions) for a in alerts] == [(at(300.2), ("live", "off"))]


# --------------------------------------------------------------------------------------------- phantom


def status(minute: float, value: str, *, station: str = "CP-AC", connector: str = "1") -> ConnectorStatus:
    return an_event(ConnectorStatus, ts=at(minute), at=at(minute), station=station, connector=connector,
                    status=value)  # fmt: skip


def normal_session(tx: str, minute: float, *, ocpp: str = "1.6", connector: str = "1") -> list[Event]:
    """A real charging session: plugged-in status, rising samples with power."""
    plugged = "Preparing" if ocpp == "1.6" else "Occupied"
    return [
        status(minute - 1, plugged, connector=connector),
        start(tx, minute, ocpp=ocpp, connector=connector, meter=0.0),
        sample(tx, minute + 10, 1500.0, ocpp=ocpp, connector=connector, power_w=9000.0),
        end(tx, minute, minute + 20, ocpp=ocpp, connector=connector, meter_stop=3000.0, samples=1),
        status(minute + 21, "Available", connector=connector),
    ]


def lifeless(
    tx: str,
    minute: float,
    length: float,
    wh: float,
    *,
    ocpp: str = "1.6",
    connector: str = "1",
    queued: bool = False,
    arrive: float | None = None,
) -> list[Event]:
    """Start and stop only: no status, no sample."""
    return [
        start(tx, minute, ocpp=ocpp, connector=connector, meter=50_000.0, queued=queued, arrive=arrive),
        end(tx, minute, minute + length, ocpp=ocpp, connector=connector, meter_start=50_000.0,
            meter_stop=50_000.0 + wh, queued=queued, arrive=None if arrive is None else arrive + 0.1,
            charging_seen=False),
    ]  # fmt: skip


def test_energy_billed_with_no_sign_of_charging_at_a_station_that_reports_them() -> None:
    events = [*normal_session("1", 0), *lifeless("2", 60, 90, 12_000.0)]
    alerts = run(Phantom, events, context=WITH_INVENTORY)
    assert len(alerts) == 1
    alert = alerts[0]
    assert (alert.kind, alert.ts, alert.station, alert.transactions, alert.token_ref) == (
        "session.phantom",
        at(150),
        "CP-AC",
        ("2",),
        T1,
    )
    assert alert.severity == Severity.HIGH
    assert alert.evidence["signals"] == [
        "no_register_rise",
        "no_power",
        "no_plugged_status",
        "station_reports_charging_elsewhere",
    ]


def test_201_phantom_with_only_boundary_readings() -> None:
    events: list[Event] = [*normal_session("a", 0, ocpp="2.0.1", connector="1/1")]
    events += [
        start("b", 60, ocpp="2.0.1", connector="1/1", meter=3000.0),
        msgspec.structs.replace(sample("b", 60, 3000.0, ocpp="2.0.1", connector="1/1"), context="Transaction.Begin"),
        msgspec.structs.replace(sample("b", 150, 15_000.0, ocpp="2.0.1", connector="1/1"), context="Transaction.End"),
        end("b", 60, 150, ocpp="2.0.1", connector="1/1", meter_start=3000.0, meter_stop=15_000.0, samples=2,
            charging_seen=False),  # the station never said Charging
    ]  # fmt: skip
    assert [a.ts for a in run(Phantom, events, context=WITH_INVENTORY)] == [at(150)]


def test_phantom_not_judged_on_station_habits_alone_when_the_transaction_said_charging() -> None:
    """chargingState Charging (2.0.1) or a Charging status answers "the station shows signs elsewhere"."""
    claimed = lifeless("2", 60, 90, 12_000.0)
    claimed[-1] = msgspec.structs.replace(claimed[-1], charging_seen=True)
    events = [*normal_session("1", 0), *claimed]
    assert run(Phantom, events, context=WITH_INVENTORY) == []
    # a claim does not explain 15 kWh in 4 minutes on a 22 kW connector
    short = lifeless("3", 60, 4, 15_000.0)
    short[-1] = msgspec.structs.replace(short[-1], charging_seen=True)
    alerts = run(Phantom, [*normal_session("1", 0), *short], context=WITH_INVENTORY)
    assert [a.evidence["signals"][-3:] for a in alerts] == [
        ["too_short", "station_reports_charging_elsewhere", "charging_state_claimed"]
    ]


def sampled_session(tx: str, minute: float, *, ocpp: str = "2.0.1", connector: str = "1/1") -> list[Event]:
    """A real session at a station that samples every 5 minutes while it charges."""
    readings = [
        sample(tx, minute + m, 100.0 * m, ocpp=ocpp, connector=connector, power_w=6000.0)
        for m in range(5, 30, 5)
    ]
    return [
        status(minute - 1, "Occupied", connector=connector),
        start(tx, minute, ocpp=ocpp, connector=connector, meter=0.0),
        *readings,
        end(
            tx, minute, minute + 30, ocpp=ocpp, connector=connector, meter_stop=3000.0, samples=len(readings)
        ),
    ]


def test_phantom_that_claims_charging_but_sent_no_sample_for_many_intervals() -> None:
    claimed = lifeless(
        "2", 60, 90, 12_000.0, ocpp="2.0.1", connector="1/1"
    )  # 90 min: 18 intervals, no sample
    claimed[-1] = msgspec.structs.replace(claimed[-1], charging_seen=True)
    alerts = run(Phantom, [*sampled_session("1", 0), *claimed], context=WITH_INVENTORY)
    assert [(a.ts, a.transactions) for a in alerts] == [(at(150), ("2",))]
    assert alerts[0].evidence["signals"][-2:] == ["charging_state_claimed", "no_sample_while_claimed"]
    # near misses: shorter than three of the station's intervals (a short DC top-up between two samples) ...
    short = lifeless("3", 60, 14, 3_000.0, ocpp="2.0.1", connector="1/1")
    short[-1] = msgspec.structs.replace(short[-1], charging_seen=True)
    assert run(Phantom, [*sampled_session("1", 0), *short], context=WITH_INVENTORY) == []
    # ... or a station whose sample interval was never seen (one sample per session teaches none)
    assert (
        run(
            Phantom,
            [*normal_session("1", 0, ocpp="2.0.1", connector="1/1"), *claimed],
            context=WITH_INVENTORY,
        )
        == []
    )


def test_phantom_on_an_unavailable_connector_or_in_too_short_a_time() -> None:
    unavailable = [status(-10, "Unavailable"), *lifeless("1", 0, 90, 5_000.0)]
    alerts = run(Phantom, unavailable, context=WITH_INVENTORY)
    assert [(a.confidence, a.evidence["signals"][-1]) for a in alerts] == [(0.95, "connector_unavailable")]
    too_short = lifeless("2", 0, 4, 15_000.0)  # 15 kWh in 4 min on 22 kW; no history of the station needed
    assert [a.evidence["signals"][-1] for a in run(Phantom, too_short, context=WITH_INVENTORY)] == [
        "too_short"
    ]


def test_real_charging_small_sessions_and_silent_stations_are_not_phantoms() -> None:
    assert run(Phantom, [*normal_session("1", 0), *normal_session("2", 60)], context=WITH_INVENTORY) == []
    statuses_only = [
        *normal_session("1", 0),
        status(59, "Preparing"), *lifeless("2", 60, 90, 12_000.0), status(200, "Available"),
    ]  # fmt: skip
    assert run(Phantom, statuses_only, context=WITH_INVENTORY) == []
    small = [*normal_session("1", 0), *lifeless("2", 60, 90, 400.0)]
    assert run(Phantom, small, context=WITH_INVENTORY) == []
    never_reports = [*lifeless("1", 0, 90, 12_000.0), *lifeless("2", 120, 90, 12_000.0)]
    assert (
        run(Phantom, never_reports, context=WITH_INVENTORY) == []
    )  # a station that never reports: no baseline
    stale_plug = [status(-120, "Preparing"), *normal_session("0", -100), *lifeless("1", 0, 90, 12_000.0)]
    assert len(run(Phantom, stale_plug, context=WITH_INVENTORY)) == 1


def test_queued_sessions_fire_only_when_out_of_service_or_too_short() -> None:
    lifeless_offline = [*normal_session("0", -100), *lifeless("1", 0, 120, 12_000.0, queued=True, arrive=400)]
    assert run(Phantom, lifeless_offline, context=WITH_INVENTORY) == []
    impossible_offline = [*normal_session("0", -100), *lifeless("1", 0, 2, 12_000.0, queued=True, arrive=400)]
    alerts = run(Phantom, impossible_offline, context=WITH_INVENTORY)
    assert [(a.ts, a.evidence["offline"]) for a in alerts] == [(at(400.1), True)]


def test_phantoms_at_one_station_are_one_incident() -> None:
    events: list[Event] = [*normal_session("0", -100)]
    for i in range(4):
        events += lifeless(str(i + 1), i * 30, 25, 9_000.0)
    alerts = run(Phantom, events, context=WITH_INVENTORY)
    assert len(alerts) == 1
    assert alerts[0].transactions == ("1", "2", "3", "4")


# --------------------------------------------------------------------------------------------- bounded state


@pytest.mark.parametrize("cls", DETECTORS)
def test_state_stays_bounded_under_a_flood_of_transactions(cls: type[Any]) -> None:
    detector = make_detector(cls, DetectorContext(limits=Limits(max_keys=40, ttl_s=3600.0)))
    for i in range(500):
        for event in (
            start(str(i), i * 0.1, station=f"CP-{i}"),
            sample(str(i), i * 0.1, 10.0, station=f"CP-{i}"),
        ):
            list(detector.process(event))
    assert detector.state_size() <= 3 * 40


def test_phantom_billed_while_the_connector_said_available() -> None:
    """The station's own word against the bill: Available (no cable) while the transaction ran, and never a
    plugged-in status - fires on the first transaction of a station, even when the transaction said Charging."""
    claimed = lifeless("1", 0, 55, 4_400.0, ocpp="2.0.1", connector="1/1")
    claimed[-1] = msgspec.structs.replace(claimed[-1], charging_seen=True)
    running = [claimed[0], status(9, "Available", connector="1/1"), status(28, "Available", connector="1/1"),
               claimed[1]]  # fmt: skip
    alerts = run(Phantom, running, context=WITH_INVENTORY)
    assert [(a.ts, a.transactions, a.confidence) for a in alerts] == [(at(55), ("1",), 0.9)]
    assert alerts[0].evidence["signals"][-1] == "connector_available_while_running"
    # near misses: the unplug lands just before the stop (ordinary) ...
    late = [claimed[0], status(50, "Available", connector="1/1"), claimed[1]]
    assert run(Phantom, late, context=WITH_INVENTORY) == []
    # ... the previous car's Available arrives before the start ...
    before = [status(-1, "Available", connector="1/1"), *claimed]
    assert run(Phantom, before, context=WITH_INVENTORY) == []
    # ... a transaction started before the cable (2.0.1 TxStartPoint Authorized) that then sees a plug-in ...
    plugged_later = [claimed[0], status(2, "Available", connector="1/1"), status(4, "Occupied", connector="1/1"),
                     claimed[1]]  # fmt: skip
    assert run(Phantom, plugged_later, context=WITH_INVENTORY) == []
    # ... or Available on another connector of the station
    other = [claimed[0], status(9, "Available", connector="2/1"), claimed[1]]
    assert run(Phantom, other, context=WITH_INVENTORY) == []


def test_a_late_unplug_of_the_previous_car_is_not_available_while_running() -> None:
    """Perth, rapid back-to-back sessions: the next car's plug-in (Occupied) is reported, then the previous
    car's unplug (Available) arrives late, after the new transaction started."""
    claimed = lifeless("2", 0, 15, 4_000.0, ocpp="2.0.1", connector="1/1")
    claimed[-1] = msgspec.structs.replace(claimed[-1], charging_seen=True)
    events = [status(-0.3, "Occupied", connector="1/1"), status(-0.2, "Available", connector="1/1"),
              claimed[0], status(2.5, "Available", connector="1/1"), claimed[1]]  # fmt: skip
    assert run(Phantom, events, context=WITH_INVENTORY) == []
    # without the plug-in before the start the same Available is the station's word against the bill
    assert len(run(Phantom, [e for i, e in enumerate(events) if i != 0], context=WITH_INVENTORY)) == 1
