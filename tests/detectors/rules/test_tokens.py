"""Token detectors: concurrent use, impossible travel, unauthorized charging, enumeration, high velocity."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from chargeguard.detectors.base import DetectorContext, Limits
from chargeguard.detectors.rules.authorization import UnauthorizedCharging
from chargeguard.detectors.rules.enumeration import Enumeration
from chargeguard.detectors.rules.tokens import DETECTORS, ConcurrentUse
from chargeguard.detectors.rules.travel import ImpossibleTravel
from chargeguard.detectors.rules.velocity import HighVelocity
from chargeguard.events import (
    Alert,
    AuthorizationDecision,
    Event,
    MeterSample,
    Severity,
    TransactionEnded,
    TransactionStarted,
)
from chargeguard.inventory import Inventory, StationInfo
from chargeguard.testing import an_event, at, make_detector, run_detector

T1 = "tok1_aaaaaaaaaaaaaaa"
T2 = "tok1_bbbbbbbbbbbbbbb"


def start(
    station: str,
    tx: str,
    token: str | None,
    minute: float,
    *,
    ocpp: str = "1.6",
    connector: str = "1",
    meter: float = 0.0,
    status: str | None = "Accepted",
    queued: bool = False,
    arrive: float | None = None,
) -> list[Event]:
    """A transaction start as the normaliser emits it (1.6: the StartTransaction answer, then the start)."""
    ts = at(minute if arrive is None else arrive)
    events: list[Event] = []
    if ocpp == "1.6" and token is not None and status is not None:
        events.append(
            an_event(
                AuthorizationDecision,
                ts=ts,
                at=at(minute),
                station=station,
                token_ref=token,
                status=status,
                context="StartTransaction",
                transaction_id=tx,
                connector=connector,
            )
        )
    events.append(
        an_event(
            TransactionStarted,
            ts=ts,
            at=at(minute),
            station=station,
            ocpp=ocpp,
            transaction_id=tx,
            connector=connector,
            token_ref=token,
            meter_start_wh=meter,
            queued=queued,
            auth_status=status if ocpp == "1.6" else None,
        )
    )
    return events


def attach(
    station: str, tx: str, token: str, minute: float, *, status: str = "Accepted"
) -> AuthorizationDecision:
    """A 2.0.1 TransactionEvent answer that carries an idToken for an already started transaction."""
    return an_event(
        AuthorizationDecision,
        ts=at(minute),
        at=at(minute),
        station=station,
        token_ref=token,
        status=status,
        context="TransactionEvent",
        transaction_id=tx,
        ocpp="2.0.1",
    )


def end(
    station: str,
    tx: str,
    token: str | None,
    begin: float,
    minute: float,
    *,
    ocpp: str = "1.6",
    connector: str = "1",
    meter_start: float = 0.0,
    meter_stop: float = 10_000.0,
    queued: bool = False,
    arrive: float | None = None,
    auth_status: str | None = "Accepted",
    samples: int = 5,
) -> TransactionEnded:
    return an_event(
        TransactionEnded,
        ts=at(minute if arrive is None else arrive),
        at=at(minute),
        station=station,
        ocpp=ocpp,
        transaction_id=tx,
        connector=connector,
        token_ref=token,
        started_at=at(begin),
        meter_start_wh=meter_start,
        meter_stop_wh=meter_stop,
        samples=samples,
        first_sample_wh=meter_start,
        last_sample_wh=meter_stop,
        max_power_w=11_000.0,
        charging_seen=True,
        queued=queued,
        auth_status=auth_status,
    )


def sample(
    station: str, tx: str | None, minute: float, wh: float, *, ocpp: str = "1.6", connector: str = "1"
) -> MeterSample:
    return an_event(
        MeterSample,
        ts=at(minute),
        at=at(minute),
        station=station,
        ocpp=ocpp,
        transaction_id=tx,
        connector=connector,
        energy_wh=wh,
        power_w=None,
    )


def decision(
    station: str, token: str, minute: float, status: str, *, context: str = "Authorize", lag: float = 0.0
) -> AuthorizationDecision:
    return an_event(
        AuthorizationDecision,
        ts=at(minute),
        at=at(minute - lag),
        station=station,
        token_ref=token,
        status=status,
        context=context,
        transaction_id=None,
    )


def tok(i: int) -> str:
    return f"tok1_{i:015d}"


def run(
    cls: type[Any], events: list[Event], *, context: DetectorContext | None = None, **settings: Any
) -> list[Any]:
    return run_detector(make_detector(cls, context, **settings), events)


SCOTLAND = Inventory(
    {
        "CP-DUN": StationInfo("CP-DUN", 56.4620, -2.9707, 22.0, location_id="DUN-1"),
        "CP-DUN2": StationInfo("CP-DUN2", 56.4625, -2.9715, 22.0, location_id="DUN-2"),
        "CP-DUN3": StationInfo("CP-DUN3", 56.4621, -2.9708, 22.0, location_id="DUN-1"),
        "CP-EDI": StationInfo("CP-EDI", 55.9533, -3.1883, 50.0, location_id="EDI-1"),
        "CP-GLA": StationInfo("CP-GLA", 55.8642, -4.2518, 50.0, location_id="GLA-1"),
        "CP-NOWHERE": StationInfo("CP-NOWHERE", None, None, 22.0),
    }
)


def test_exports_every_token_kind() -> None:
    kinds = {kind for cls in DETECTORS for kind in cls.info.kinds}
    assert kinds == {
        "token.concurrent_use",
        "token.impossible_travel",
        "token.unauthorized_charging",
        "token.enumeration",
        "token.high_velocity",
    }


# --------------------------------------------------------------------------------------------- concurrent use


def test_concurrent_use_fires_on_the_second_start_and_merges_the_incident() -> None:
    events = [
        *start("CP-A", "101", T1, 0),
        *start("CP-B", "202", T1, 10),
        *start("CP-C", "303", T1, 20),
        end("CP-A", "101", T1, 0, 60),
    ]
    alerts = run(ConcurrentUse, events)
    assert len(alerts) == 1
    alert = alerts[0]
    assert alert.kind == "token.concurrent_use"
    assert alert.ts == at(10)
    assert alert.token_ref == T1
    assert alert.severity == Severity.HIGH
    assert alert.count == 3  # B with A, C with A, C with B
    assert set(alert.stations) == {"CP-A", "CP-B", "CP-C"}
    assert set(alert.transactions) == {"101", "202", "303"}
    assert alert.evidence["still_running"] is True


def test_concurrent_use_201_token_joining_a_started_transaction() -> None:
    events: list[Event] = [
        *start("CP-A", "e1", None, 0, ocpp="2.0.1", connector="1/1"),
        attach("CP-A", "e1", T1, 1),
        *start("CP-B", "e2", None, 30, ocpp="2.0.1", connector="2/1"),
        attach("CP-B", "e2", T1, 31),
    ]
    alerts = run(ConcurrentUse, events)
    assert [(a.kind, a.ts, a.token_ref, a.transactions) for a in alerts] == [
        ("token.concurrent_use", at(31), T1, ("e1", "e2"))
    ]


def test_concurrent_use_ignores_a_later_idtoken_of_whoever_stops_the_transaction() -> None:
    events: list[Event] = [
        *start("CP-A", "e1", T1, 0, ocpp="2.0.1"),
        *start("CP-B", "e2", T2, 5, ocpp="2.0.1"),
        attach("CP-B", "e2", T1, 40),  # T1 presented at B to stop T2's transaction: not T1's transaction
    ]
    assert run(ConcurrentUse, events) == []


def test_concurrent_use_back_to_back_sessions_are_legitimate() -> None:
    events = [
        *start("CP-A", "1", T1, 0),
        end("CP-A", "1", T1, 0, 45),
        *start("CP-A", "2", T1, 46, connector="2"),
        end("CP-A", "2", T1, 46, 90, connector="2"),
        *start("CP-B", "3", T1, 120),
    ]
    assert run(ConcurrentUse, events) == []


def test_concurrent_use_clock_skew_within_tolerance_is_not_concurrency() -> None:
    # B's clock says it started one minute before A's stop, but A's stop arrived first
    events = [*start("CP-A", "1", T1, 0), end("CP-A", "1", T1, 0, 30), *start("CP-B", "2", T1, 29, arrive=31)]
    assert run(ConcurrentUse, events) == []
    tight = [*start("CP-A", "1", T1, 0), end("CP-A", "1", T1, 0, 30), *start("CP-B", "2", T1, 27, arrive=31)]
    assert len(run(ConcurrentUse, tight)) == 1  # three minutes of overlap is beyond the 120 s tolerance


def test_concurrent_use_offline_replay_is_judged_on_station_time() -> None:
    live_and_earlier_offline = [
        *start("CP-A", "live", T1, 120),
        # CP-B was offline: its 60..90 session arrives at 150, after A's live start
        *start("CP-B", "off", T1, 60, queued=True, arrive=150),
        end("CP-B", "off", T1, 60, 90, queued=True, arrive=150.1),
    ]
    assert run(ConcurrentUse, live_and_earlier_offline) == []

    overlapping_offline = [
        *start("CP-A", "live", T1, 120),
        *start("CP-B", "off", T1, 130, queued=True, arrive=200),
        end("CP-B", "off", T1, 130, 170, queued=True, arrive=200.5),
    ]
    alerts = run(ConcurrentUse, overlapping_offline)
    assert len(alerts) == 1
    assert alerts[0].ts == at(200.5)  # the queued stop completes the evidence
    assert alerts[0].evidence["sessions"][1]["queued"] is True


def test_concurrent_use_at_one_site_waits_for_the_measured_overlap() -> None:
    ctx = DetectorContext(inventory=SCOTLAND)
    events = [
        *start("CP-DUN", "1", T1, 0),
        *start("CP-DUN3", "2", T1, 5),  # same location_id: a driver moving to another charger
        end("CP-DUN", "1", T1, 0, 6),
        end("CP-DUN3", "2", T1, 5, 60),
    ]
    assert run(ConcurrentUse, events, context=ctx) == []

    long_overlap = [
        *start("CP-DUN", "1", T1, 0),
        *start("CP-DUN3", "2", T1, 5),
        end("CP-DUN", "1", T1, 0, 50),
    ]
    alerts = run(ConcurrentUse, long_overlap, context=ctx)
    assert len(alerts) == 1
    assert alerts[0].ts == at(50)
    assert alerts[0].severity == Severity.MEDIUM
    assert alerts[0].evidence["overlap_s"] == 45 * 60
    assert run(ConcurrentUse, long_overlap, context=ctx, same_site_allowed=True) == []


def test_concurrent_use_at_one_site_fires_on_the_sample_that_passes_the_tolerance() -> None:
    ctx = DetectorContext(inventory=SCOTLAND)
    events: list[Event] = [*start("CP-DUN", "1", T1, 0), *start("CP-DUN3", "2", T1, 5)]
    events += [sample("CP-DUN", "1", m, m * 100.0) for m in range(10, 60, 10)]  # 15 min of overlap at 20
    alerts = run(ConcurrentUse, events, context=ctx)
    assert [(a.ts, a.severity, a.evidence["overlap_s"]) for a in alerts] == [(at(20), Severity.MEDIUM, 900.0)]
    # at 10 minutes the overlap was 5: within the tolerance, so the sample at 10 said nothing yet
    assert run(ConcurrentUse, events[:3], context=ctx) == []


def test_concurrent_use_a_transaction_with_a_lost_stop_goes_stale() -> None:
    events = [*start("CP-A", "1", T1, 0), *start("CP-B", "2", T1, 3 * 24 * 60)]
    assert run(ConcurrentUse, events) == []


def test_concurrent_use_a_silent_transaction_at_a_sampling_station_is_a_lost_stop() -> None:
    stuck = [*start("CP-A", "1", T1, 0), sample("CP-A", "1", 5, 500.0)]
    assert run(ConcurrentUse, [*stuck, *start("CP-B", "2", T1, 120)]) == []
    alive = [*stuck, sample("CP-A", "1", 100, 9000.0), *start("CP-B", "2", T1, 120)]
    assert [a.ts for a in run(ConcurrentUse, alive)] == [at(120)]
    assert run(ConcurrentUse, alive, idle_s=600.0) == []


def test_concurrent_use_one_location_id_kilometres_apart_is_two_sites() -> None:
    # an operator's location id may span a city district: distance decides what one site is
    ctx = DetectorContext(
        inventory=Inventory(
            {
                "OSL-1": StationInfo("OSL-1", 59.9539, 10.7665, 11.0, location_id="LOC-17"),
                "OSL-2": StationInfo("OSL-2", 59.9673, 10.7243, 50.0, location_id="LOC-17"),  # 2.9 km away
            }
        )
    )
    events = [*start("OSL-1", "1", T1, 0), *start("OSL-2", "2", T1, 20)]
    alerts = run(ConcurrentUse, events, context=ctx)
    assert [(a.ts, a.severity, a.evidence["same_site"]) for a in alerts] == [(at(20), Severity.HIGH, False)]


def test_an_answer_to_the_ended_event_does_not_reopen_the_transaction() -> None:
    # 2.0.1: the driver stops with the card; the CSMS answers the Ended event's idToken after TransactionEnded
    events: list[Event] = [
        *start("CP-A", "e1", None, 0, ocpp="2.0.1", connector="1/1"),
        attach("CP-A", "e1", T1, 1),
        end("CP-A", "e1", T1, 0, 60, ocpp="2.0.1", connector="1/1", auth_status="Accepted"),
        attach("CP-A", "e1", T1, 60.01),
        *start("CP-B", "e2", None, 120, ocpp="2.0.1", connector="1/1"),
        attach("CP-B", "e2", T1, 121),
    ]
    for cls in (ConcurrentUse, HighVelocity, UnauthorizedCharging):
        assert run(cls, events) == [], cls.__name__


# --------------------------------------------------------------------------------------------- impossible travel


def test_impossible_travel_dundee_to_edinburgh_in_ten_minutes() -> None:
    ctx = DetectorContext(inventory=SCOTLAND)
    events = [
        *start("CP-DUN", "1", T1, 0),
        end("CP-DUN", "1", T1, 0, 60),
        *start("CP-EDI", "2", T1, 70),  # 58 km in 10 min = 350 km/h
        end("CP-EDI", "2", T1, 70, 100),
        *start("CP-GLA", "3", T1, 105),  # 67 km in 5 min
    ]
    alerts = run(ImpossibleTravel, events, context=ctx)
    assert len(alerts) == 1
    alert = alerts[0]
    assert alert.kind == "token.impossible_travel"
    assert alert.ts == at(70)
    assert alert.token_ref == T1
    assert alert.stations[:2] == ("CP-EDI", "CP-DUN")
    assert set(alert.stations) == {"CP-DUN", "CP-EDI", "CP-GLA"}
    assert set(alert.transactions) == {"1", "2", "3"}
    assert 300 < alert.evidence["speed_kmh"] < 400
    assert 55 < alert.evidence["distance_km"] < 62


def test_impossible_travel_near_misses() -> None:
    ctx = DetectorContext(inventory=SCOTLAND)
    possible = [*start("CP-DUN", "1", T1, 0), end("CP-DUN", "1", T1, 0, 60), *start("CP-EDI", "2", T1, 80)]
    assert run(ImpossibleTravel, possible, context=ctx) == []  # 174 km/h
    assert len(run(ImpossibleTravel, possible, context=ctx, max_speed_kmh=150.0)) == 1
    nearby = [*start("CP-DUN", "1", T1, 0), end("CP-DUN", "1", T1, 0, 60), *start("CP-DUN2", "2", T1, 60.5)]
    assert run(ImpossibleTravel, nearby, context=ctx) == []  # 70 m away: one site
    no_coordinates = [*start("CP-DUN", "1", T1, 0), *start("CP-NOWHERE", "2", T1, 1)]
    assert run(ImpossibleTravel, no_coordinates, context=ctx) == []
    unknown_station = [*start("CP-DUN", "1", T1, 0), *start("CP-UNLISTED", "2", T1, 1)]
    assert run(ImpossibleTravel, unknown_station, context=ctx) == []
    far = [*start("CP-DUN", "1", T1, 0), end("CP-DUN", "1", T1, 0, 1), *start("CP-EDI", "2", T1, 2)]
    assert run(ImpossibleTravel, far) == []  # without an inventory the detector cannot judge


def test_impossible_travel_overlapping_sessions_fires_at_the_later_start() -> None:
    # a card cloned in Edinburgh while its owner's session in Dundee (58 km) is still running
    ctx = DetectorContext(inventory=SCOTLAND)
    running = [sample("CP-DUN", "1", m, 1000.0 * m) for m in range(5, 95, 5)]
    events = sorted(
        [
            *start("CP-DUN", "1", T1, 0),
            *running,
            *start("CP-EDI", "2", T1, 32),  # the Dundee session was metering 2 minutes before
            end("CP-EDI", "2", T1, 32, 70),
            end("CP-DUN", "1", T1, 0, 95),
        ],
        key=lambda e: e.ts,
    )
    alerts = run(ImpossibleTravel, events, context=ctx)
    assert [(a.ts, a.transactions) for a in alerts] == [(at(32), ("1", "2"))]
    assert alerts[0].evidence["sightings"][0]["what"] == "charging"
    assert alerts[0].evidence["gap_s"] == pytest.approx(120.0)


def test_impossible_travel_overlap_near_misses() -> None:
    ctx = DetectorContext(inventory=SCOTLAND)
    # the same overlap without any sign of the Dundee session after its start: 58 km in 32 min is possible
    quiet = [*start("CP-DUN", "1", T1, 0), *start("CP-EDI", "2", T1, 32), end("CP-DUN", "1", T1, 0, 120)]
    assert run(ImpossibleTravel, quiet, context=ctx) == []
    # one site (70 m): a second car of the household on the same card is concurrent use, never travel
    running = [sample("CP-DUN", "1", m, 1000.0 * m) for m in range(5, 60, 5)]
    site = sorted(
        [
            *start("CP-DUN", "1", T1, 0),
            *running,
            *start("CP-DUN2", "2", T1, 31),
            end("CP-DUN", "1", T1, 0, 60),
        ],
        key=lambda e: e.ts,
    )
    assert run(ImpossibleTravel, site, context=ctx) == []
    # samples of another token's transaction say nothing about this token
    other = sorted(
        [*start("CP-DUN", "1", T2, 0), *running, *start("CP-EDI", "2", T1, 32)],
        key=lambda e: e.ts,
    )
    assert run(ImpossibleTravel, other, context=ctx) == []


def test_impossible_travel_uses_station_time_for_offline_replays() -> None:
    ctx = DetectorContext(inventory=SCOTLAND)
    events = [
        *start("CP-EDI", "live", T1, 600),
        # CP-DUN was offline; its session ended at 480 station time but arrives at 605
        *start("CP-DUN", "off", T1, 420, queued=True, arrive=605),
        end("CP-DUN", "off", T1, 420, 480, queued=True, arrive=605.2),
    ]
    assert run(ImpossibleTravel, events, context=ctx) == []


def test_impossible_travel_201_sightings_from_transaction_event_answers() -> None:
    ctx = DetectorContext(inventory=SCOTLAND)
    events: list[Event] = [
        *start("CP-GLA", "g1", None, 0, ocpp="2.0.1", connector="1/1"),
        attach("CP-GLA", "g1", T1, 1),
        attach("CP-GLA", "g1", T1, 20),
        attach("CP-GLA", "g1", T1, 40),
        *start("CP-EDI", "e1", None, 50, ocpp="2.0.1", connector="1/1"),
        attach("CP-EDI", "e1", T1, 51),  # 67 km in 11 min
    ]
    alerts = run(ImpossibleTravel, events, context=ctx)
    assert [(a.ts, a.transactions) for a in alerts] == [(at(51), ("g1", "e1"))]


# --------------------------------------------------------------------------------------------- unauthorized charging


def test_blocked_token_charging_in_16_fires_once_past_the_tolerance() -> None:
    events = [
        *start("CP-A", "7", T1, 0, meter=5000.0, status="Blocked"),
        sample("CP-A", "7", 5, 5600.0),
        sample("CP-A", "7", 10, 6200.0),  # 1.2 kWh delivered on a blocked token
        sample("CP-A", "7", 15, 7000.0),
        end("CP-A", "7", T1, 0, 20, meter_start=5000.0, meter_stop=7500.0, auth_status="Blocked"),
    ]
    alerts = run(UnauthorizedCharging, events)
    assert len(alerts) == 1
    alert = alerts[0]
    assert (alert.kind, alert.ts, alert.token_ref, alert.transactions) == (
        "token.unauthorized_charging",
        at(10),
        T1,
        ("7",),
    )
    assert alert.evidence["status"] == "Blocked"
    assert alert.evidence["delivered_wh"] == 1200.0
    assert alert.count == 1


def test_refused_token_that_stopped_within_tolerance_is_silent() -> None:
    events = [
        *start("CP-A", "7", T1, 0, meter=5000.0, status="Invalid"),
        sample("CP-A", None, 1, 5400.0),  # 1.6 MeterValues without transactionId
        end("CP-A", "7", T1, 0, 2, meter_start=5000.0, meter_stop=5800.0, auth_status="Invalid"),
    ]
    assert run(UnauthorizedCharging, events) == []
    assert len(run(UnauthorizedCharging, events, max_energy_on_invalid_wh=500.0)) == 1


def test_accepted_sessions_are_silent_in_both_versions() -> None:
    events: list[Event] = [
        *start("CP-A", "1", T1, 0, meter=0.0),
        sample("CP-A", "1", 30, 20_000.0),
        end("CP-A", "1", T1, 0, 60, meter_stop=25_000.0),
        *start("CP-B", "e1", None, 0, ocpp="2.0.1", connector="1/1"),
        attach("CP-B", "e1", T2, 1),
        sample("CP-B", "e1", 30, 15_000.0, ocpp="2.0.1", connector="1/1"),
        end("CP-B", "e1", None, 0, 60, ocpp="2.0.1", meter_stop=20_000.0, auth_status=None),
    ]
    assert run(UnauthorizedCharging, events) == []


def test_offline_unknown_token_abuse_fires_on_the_queued_stop() -> None:
    # station offline: transaction with an unknown card, replayed after reconnect and refused
    events = [
        *start("CP-A", "9", T2, 0, meter=100.0, status="Invalid", queued=True, arrive=300),
        end(
            "CP-A",
            "9",
            T2,
            0,
            120,
            meter_start=100.0,
            meter_stop=18_100.0,
            queued=True,
            arrive=300.1,
            auth_status="Invalid",
        ),
    ]
    alerts = run(UnauthorizedCharging, events)
    assert len(alerts) == 1
    assert alerts[0].ts == at(300.1)
    assert alerts[0].evidence["offline"] is True
    assert alerts[0].evidence["delivered_wh"] == 18_000.0
    assert "offline" in alerts[0].summary


def test_answer_before_meter_start_counts_from_meter_start() -> None:
    events: list[Event] = [
        an_event(
            AuthorizationDecision,
            ts=at(0),
            at=at(0),
            station="CP-A",
            token_ref=T1,
            status="Expired",
            context="StartTransaction",
            transaction_id="4",
        ),
        an_event(
            TransactionStarted,
            ts=at(0),
            at=at(0),
            station="CP-A",
            transaction_id="4",
            token_ref=T1,
            meter_start_wh=1000.0,
            auth_status="Expired",
        ),
        sample("CP-A", "4", 10, 2500.0),
    ]
    alerts = run(UnauthorizedCharging, events)
    assert [a.evidence["delivered_wh"] for a in alerts] == [1500.0]


def test_201_charging_on_after_deauthorisation() -> None:
    events: list[Event] = [
        *start("CP-B", "e1", T1, 0, ocpp="2.0.1", connector="1/1", meter=0.0),
        attach("CP-B", "e1", T1, 0),
        sample("CP-B", "e1", 20, 5000.0, ocpp="2.0.1", connector="1/1"),
        attach("CP-B", "e1", T1, 20, status="Invalid"),  # deauthorised mid-transaction
        sample("CP-B", "e1", 25, 5600.0, ocpp="2.0.1", connector="1/1"),
        sample("CP-B", "e1", 30, 6300.0, ocpp="2.0.1", connector="1/1"),
    ]
    alerts = run(UnauthorizedCharging, events)
    assert len(alerts) == 1
    assert alerts[0].ts == at(30)
    assert alerts[0].evidence["delivered_wh"] == 1300.0
    assert "deauthorised" in alerts[0].summary


def test_201_reauthorised_transaction_is_silent() -> None:
    events: list[Event] = [
        *start("CP-B", "e1", T1, 0, ocpp="2.0.1", connector="1/1"),
        attach("CP-B", "e1", T1, 0, status="NoCredit"),
        attach("CP-B", "e1", T2, 1),  # another card accepted
        sample("CP-B", "e1", 30, 9000.0, ocpp="2.0.1", connector="1/1"),
    ]
    assert run(UnauthorizedCharging, events) == []


def test_201_tokenless_energy_is_reported_unless_disabled() -> None:
    events: list[Event] = [
        *start("CP-B", "e5", None, 0, ocpp="2.0.1", connector="1/1"),
        end("CP-B", "e5", None, 0, 40, ocpp="2.0.1", meter_stop=6000.0, auth_status=None),
    ]
    alerts = run(UnauthorizedCharging, events)
    assert [(a.ts, a.severity, a.token_ref) for a in alerts] == [(at(40), Severity.MEDIUM, None)]
    assert run(UnauthorizedCharging, events, flag_tokenless=False) == []


def test_one_blocked_token_at_two_stations_is_one_incident() -> None:
    events = [
        *start("CP-A", "1", T1, 0, status="Blocked"),
        end("CP-A", "1", T1, 0, 20, meter_stop=4000.0, auth_status="Blocked"),
        *start("CP-B", "2", T1, 40, status="Blocked"),
        end("CP-B", "2", T1, 40, 60, meter_stop=3000.0, auth_status="Blocked"),
    ]
    alerts = run(UnauthorizedCharging, events)
    assert len(alerts) == 1
    assert alerts[0].transactions == ("1", "2")
    assert alerts[0].stations == ("CP-A", "CP-B")


# --------------------------------------------------------------------------------------------- enumeration


def test_enumeration_ten_distinct_refused_tokens_within_an_hour() -> None:
    events = [decision("CP-A", tok(i), i * 5, "Invalid") for i in range(12)]
    alerts = run(Enumeration, events)
    assert len(alerts) == 1
    alert = alerts[0]
    assert alert.kind == "token.enumeration"
    assert alert.ts == at(45)  # the tenth distinct token
    assert alert.station == "CP-A"
    assert alert.token_ref is None
    assert alert.count == 3
    assert alert.evidence["distinct_refused"] == 10
    assert alert.evidence["rejected_share"] == 1.0


def test_enumeration_near_misses() -> None:
    nine = [decision("CP-A", tok(i), i * 5, "Invalid") for i in range(9)]
    assert run(Enumeration, nine) == []
    same_token = [decision("CP-A", T1, i, "Blocked") for i in range(30)]
    assert run(Enumeration, same_token) == []
    too_slow_for_the_hour = [decision("CP-A", tok(i), i * 7, "Invalid") for i in range(10)]  # 63 minutes
    assert run(Enumeration, too_slow_for_the_hour) == []
    spread = [decision(f"CP-{i}", tok(i), i, "Invalid") for i in range(20)]
    assert run(Enumeration, spread) == []


def test_enumeration_needs_refusals_to_dominate() -> None:
    busy = [decision("CP-A", tok(100 + i), i * 2, "Accepted") for i in range(15)]
    busy += [decision("CP-A", tok(i), 30 + i * 2, "Expired") for i in range(10)]
    assert run(Enumeration, sorted(busy, key=lambda e: e.ts)) == []  # 10 of 25 refused
    assert len(run(Enumeration, sorted(busy, key=lambda e: e.ts), min_rejected_share=0.3)) == 1


def test_enumeration_at_a_low_rate_over_a_day() -> None:
    events = [decision("CP-A", tok(i), i * 40, "Unknown", context="TransactionEvent") for i in range(31)]
    alerts = run(Enumeration, events)
    assert len(alerts) == 1
    assert alerts[0].ts == at(29 * 40)
    assert alerts[0].evidence["window_s"] == 86_400.0


def test_enumeration_ignores_answers_to_offline_queued_requests() -> None:
    events = [
        decision("CP-A", tok(i), 600 + i * 0.1, "Invalid", context="StartTransaction", lag=300)
        for i in range(15)
    ]
    assert run(Enumeration, events) == []


# --------------------------------------------------------------------------------------------- high velocity


def test_high_velocity_six_connectors_in_half_an_hour() -> None:
    events: list[Event] = []
    for i in range(7):
        events += start(f"CP-{i // 2}", str(i), T1, i * 5, connector=str(1 + i % 2))
    alerts = run(HighVelocity, events)
    assert len(alerts) == 1
    alert = alerts[0]
    assert alert.kind == "token.high_velocity"
    assert alert.ts == at(25)
    assert alert.token_ref == T1
    assert set(alert.transactions) == {str(i) for i in range(7)}
    assert alert.evidence["connectors"] == 6


def test_high_velocity_near_misses() -> None:
    five: list[Event] = []
    for i in range(5):
        five += start(f"CP-{i}", str(i), T1, i * 5)
    assert run(HighVelocity, five) == []
    retries: list[Event] = []
    for i in range(12):
        retries += start("CP-A", str(i), T1, i * 2)
    assert run(HighVelocity, retries) == []  # one connector
    slow: list[Event] = []
    for i in range(8):
        slow += start(f"CP-{i}", str(i), T1, i * 15)  # never six within an hour
    assert run(HighVelocity, slow) == []


def test_high_velocity_201_connectors_of_one_evse_are_one_place() -> None:
    events: list[Event] = []
    for i in range(6):
        events += start("CP-A", f"e{i}", None, i, ocpp="2.0.1", connector=f"1/{i + 1}")
        events.append(attach("CP-A", f"e{i}", T1, i + 0.5))
    assert run(HighVelocity, events) == []
    spread: list[Event] = []
    for i in range(6):
        spread += start("CP-A", f"e{i}", None, i, ocpp="2.0.1", connector=f"{i + 1}/1")
        spread.append(attach("CP-A", f"e{i}", T1, i + 0.5))
    assert [a.ts for a in run(HighVelocity, spread)] == [at(5.5)]


def test_high_velocity_offline_burst_keeps_station_time() -> None:
    events: list[Event] = []
    for i in range(8):
        events += start(f"CP-{i}", str(i), T1, i * 90, queued=True, arrive=800 + i * 0.1)
    assert run(HighVelocity, events) == []


# --------------------------------------------------------------------------------------------- bounded state


@pytest.mark.parametrize("cls", DETECTORS)
def test_state_stays_bounded_under_a_flood_of_tokens(cls: type[Any]) -> None:
    ctx = DetectorContext(inventory=SCOTLAND, limits=Limits(max_keys=50, ttl_s=3600.0))
    detector = make_detector(cls, ctx)
    stations = ["CP-DUN", "CP-EDI", "CP-GLA"]
    for i in range(600):
        station = stations[i % 3]
        for event in [
            *start(station, str(i), tok(i), i * 0.1, status="Invalid"),
            sample(station, str(i), i * 0.1, 5.0),
        ]:
            list(detector.process(event))
        list(detector.process(decision(station, tok(i), i * 0.1, "Invalid")))
    assert detector.state_size() <= 3 * 50


# --------------------------------------------------------------------------------------------- real sessions

DUNDEE = Path(__file__).resolve().parents[3].parent / "shared" / "datasets" / "scotland-dundee"


def _dundee() -> tuple[list[Event], Inventory]:
    """Dundee City Council charge sessions (Jun-Sep 2018, OGL v3) as 1.6 start/stop events, with a coordinate
    inventory. Sessions without a user id or an end are left out."""

    def when(day: str, hm: str) -> datetime:
        return datetime.strptime(f"{day} {hm}", "%d/%m/%Y %H:%M").replace(tzinfo=UTC)

    with (DUNDEE / "cp-locations_enriched.csv").open(encoding="utf-8") as f:
        coords = {
            r["CP ID"].removeprefix("SCO"): (float(r["Latitude"]), float(r["Longitude"]))
            for r in csv.DictReader(f)
        }
    timed: list[tuple[datetime, int, Event]] = []
    sites: dict[str, str] = {}
    with (DUNDEE / "charge-sessions-june-sept.csv").open(encoding="utf-8") as f:
        for r in csv.DictReader(f):
            if not (r["User ID"] and r["Start Date"] and r["End Date"]):
                continue
            began, ended = when(r["Start Date"], r["Start Time"]), when(r["End Date"], r["End Time"])
            station, tx, token = r["CP ID"], r["Charging event"], f"user-{r['User ID']}"
            sites[station] = r["Site"]
            connector = r["Connector"]
            timed.append(
                (
                    began,
                    0,
                    TransactionStarted(
                        began, began, station, "1.6", tx, connector, token, 0.0, auth_status="Accepted"
                    ),
                )
            )
            stop = TransactionEnded(
                ended,
                ended,
                station,
                "1.6",
                tx,
                connector,
                token,
                None,
                began,
                0.0,
                1000.0,
                None,
                0,
                None,
                None,
                None,
                True,
            )
            timed.append((ended, 1, stop))
    timed.sort(key=lambda item: (item[0], item[1]))
    inventory = Inventory(
        {
            cp: StationInfo(cp, *coords.get(cp, (None, None)), 50.0, location_id=site)
            for cp, site in sites.items()
        }
    )
    return [event for _, _, event in timed], inventory


@pytest.mark.skipif(not DUNDEE.is_dir(), reason="real datasets not present")
def test_default_thresholds_stay_quiet_on_real_dundee_sessions() -> None:
    events, inventory = _dundee()
    ctx = DetectorContext(inventory=inventory)
    assert len(events) > 38_000
    travel = run(ImpossibleTravel, events, context=ctx)
    assert len(travel) <= 2  # one card: 8.5 km in two minutes between two sessions
    velocity = run(HighVelocity, events, context=ctx)
    assert {a.token_ref for a in velocity} <= {"user-511718", "user-603453"}  # a test-site card and one other
    concurrent = run(ConcurrentUse, events, context=ctx)
    assert len(concurrent) <= 90  # of 19,131 sessions: shared cards (84: all user-overlap record pairs)
    assert sum(1 for a in concurrent if a.severity == Severity.HIGH) <= 20


# --------------------------------------------------------------------------------------------- end to end


def _scan(lines: list[dict[str, Any]]) -> list[Alert]:
    """Raw capture lines through the real pipeline (normaliser, engine) with the token detectors only."""
    import orjson

    from chargeguard.detectors.registry import build_detectors
    from chargeguard.pipeline import ScanPipeline
    from chargeguard.settings import Settings
    from chargeguard.sources.capture import parse_line
    from chargeguard.vault.pseudonyms import Pseudonymiser

    alerts: list[Alert] = []
    detectors = build_detectors(DetectorContext(), classes=(UnauthorizedCharging,))
    pipeline = ScanPipeline(
        Settings(), Pseudonymiser({1: bytes(range(32))}, 1), detectors=detectors, on_close=alerts.append
    )
    for number, line in enumerate(lines, start=1):
        pipeline.feed(parse_line(orjson.dumps(line), f"test:{number}"))
    pipeline.finish()
    return alerts


def _deauthorised_201(*, repeat_id_token: bool) -> list[dict[str, Any]]:
    """A 2.0.1 transaction whose card the CSMS revokes in its answer to a periodic TransactionEvent at minute
    20; the station charges on for 40 minutes (about 7 kWh more)."""
    card = {"idToken": "04A1B2C3D4E5F6", "type": "ISO14443"}
    lines: list[dict[str, Any]] = []

    def exchange(
        minute: int, event_type: str, trigger: str, wh: int, answer: dict[str, Any], **extra: Any
    ) -> None:
        ts = f"2026-03-01T{8 + minute // 60:02d}:{minute % 60:02d}:00.000Z"
        answered = f"2026-03-01T{8 + minute // 60:02d}:{minute % 60:02d}:00.050Z"
        payload: dict[str, Any] = {
            "eventType": event_type,
            "timestamp": ts,
            "triggerReason": trigger,
            "seqNo": minute,
            "transactionInfo": {"transactionId": "tx-1", "chargingState": "Charging"},
            "meterValue": [
                {
                    "timestamp": ts,
                    "sampledValue": [{"value": wh, "measurand": "Energy.Active.Import.Register"}],
                }
            ],
            **extra,
        }
        msg = f"m{minute}"
        lines.append({"ts": ts, "station": "CP-E", "ocpp": "2.0.1", "from": "station",
                      "frame": [2, msg, "TransactionEvent", payload]})  # fmt: skip
        lines.append(
            {"ts": answered, "station": "CP-E", "ocpp": "2.0.1", "from": "csms", "frame": [3, msg, answer]}
        )

    exchange(0, "Started", "Authorized", 10_000, {"idTokenInfo": {"status": "Accepted"}},
             idToken=card, evse={"id": 1, "connectorId": 1})  # fmt: skip
    exchange(10, "Updated", "MeterValuePeriodic", 11_800, {})
    revoked = {"idToken": card} if repeat_id_token else {}
    exchange(20, "Updated", "MeterValuePeriodic", 13_600, {"idTokenInfo": {"status": "Invalid"}}, **revoked)
    for minute in (30, 40, 50):
        exchange(minute, "Updated", "MeterValuePeriodic", 13_600 + 180 * (minute - 20), {})
    exchange(60, "Ended", "EVCommunicationLost", 20_800, {})
    return lines


def test_201_deauthorised_mid_session_end_to_end_when_the_request_repeats_the_id_token() -> None:
    alerts = _scan(_deauthorised_201(repeat_id_token=True))
    assert [(a.kind, a.ts.minute, a.evidence["status"]) for a in alerts] == [
        ("token.unauthorized_charging", 30, "Invalid")  # 1.8 kWh after the refusal: past the 1 kWh tolerance
    ]


def test_201_deauthorised_mid_session_end_to_end_when_only_the_answer_names_the_verdict() -> None:
    alerts = _scan(_deauthorised_201(repeat_id_token=False))
    assert [(a.kind, a.ts.minute) for a in alerts] == [("token.unauthorized_charging", 30)]
