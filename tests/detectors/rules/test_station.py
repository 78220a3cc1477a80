"""station.* rule detectors: must-fire cases and near misses, in OCPP 1.6 and 2.0.1."""

from __future__ import annotations

from typing import Any

import pytest

from chargeguard.detectors.base import DetectorContext
from chargeguard.detectors.rules.station import (
    DETECTORS,
    AuthFailure,
    ClockSkew,
    DuplicateConnection,
    FirmwareDowngrade,
    IdentityChange,
    SecurityDowngrade,
    SecurityEvent,
)
from chargeguard.detectors.security_events import SECURITY_EVENT_TABLE, rate_security_event
from chargeguard.errors import ConfigError
from chargeguard.events import (
    ClockReading,
    ConfigurationChange,
    ConfigurationReport,
    ConnectionEvent,
    Direction,
    FirmwareStatusReported,
    FrameSeen,
    SecurityEventReported,
    Severity,
    StationBooted,
)
from chargeguard.testing import an_event, at, make_detector, run_detector

VERSIONS = ("1.6", "2.0.1")


def sec(
    ts: Any = None,
    ocpp: str = "1.6",
    event_type: str = "StartupOfTheDevice",
    station: str = "CP-0001",
    happened: Any = None,
) -> SecurityEventReported:
    # an_event's first parameter is also called event_type, so this event type is built directly
    when = at(0) if ts is None else ts
    return SecurityEventReported(
        ts=when, at=happened or when, station=station, ocpp=ocpp, event_type=event_type
    )


def conn(minutes: float, event: str, remote: str | None = "198.51.100.7:5000", **kw: Any) -> ConnectionEvent:
    return an_event(ConnectionEvent, ts=at(minutes), event=event, remote=remote, **kw)


def test_registry_exports_every_station_kind() -> None:
    kinds = sorted(k for cls in DETECTORS for k in cls.info.kinds)
    assert kinds == sorted(
        [
            "station.auth_failure",
            "station.duplicate_connection",
            "station.identity_change",
            "station.firmware_downgrade",
            "station.security_downgrade",
            "station.security_event",
            "station.clock_skew",
        ]
    )


# ---------------------------------------------------------------------------------- auth_failure


def test_auth_failure_brute_force_on_one_identity_is_one_alert() -> None:
    events = [conn(i * 0.5, "auth_failed", remote=f"203.0.113.9:{4000 + i}") for i in range(30)]
    alerts = run_detector(make_detector(AuthFailure), events)
    assert len(alerts) == 1
    alert = alerts[0]
    assert alert.kind == "station.auth_failure"
    assert alert.ts == at(2.0)  # the fifth failure completed the detection
    assert alert.station == "CP-0001"
    assert alert.evidence["remote_hosts"] == ["203.0.113.9"]
    assert alert.count == 3  # evidence added every reemit_s (5 min) while the burst lasts
    assert alert.last_ts == at(12.0)


def test_auth_failure_counts_gateway_reasons() -> None:
    reasons = ["bad_credentials", "bad_credentials", "username_mismatch", "locked", "Bad Credentials!"]
    events = [conn(i * 0.1, "auth_failed", detail={"reason": r}) for i, r in enumerate(reasons)]
    alerts = run_detector(make_detector(AuthFailure), events)
    assert alerts[0].evidence["reasons_so_far"] == {
        "bad_credentials": 2,
        "badcredentials": 1,  # foreign text is reduced to [a-z0-9_]
        "locked": 1,
        "username_mismatch": 1,
    }


def test_auth_failure_below_threshold_or_spread_out_is_silent() -> None:
    few = [conn(i, "auth_failed") for i in range(4)]
    assert run_detector(make_detector(AuthFailure), few) == []
    slow = [conn(i * 15, "auth_failed") for i in range(10)]  # one per 15 min: never 5 within 10 min
    assert run_detector(make_detector(AuthFailure), slow) == []


def test_auth_failure_password_spraying_across_identities() -> None:
    events = [
        an_event(
            ConnectionEvent,
            ts=at(i * 0.2),
            station=f"CP-{i:04d}",
            event="auth_failed",
            remote="203.0.113.50:1",
        )
        for i in range(4)
    ]
    alerts = run_detector(make_detector(AuthFailure), events)
    assert [a.kind for a in alerts] == ["station.auth_failure"]
    spray = alerts[0]
    assert spray.severity is Severity.HIGH
    assert spray.ts == at(0.4)
    assert set(spray.stations) >= {"CP-0000", "CP-0001", "CP-0002"}
    assert spray.evidence["remote_host"] == "203.0.113.50"


def test_auth_failure_identity_probing_is_named() -> None:
    events = [
        an_event(
            ConnectionEvent,
            ts=at(i * 0.2),
            station=f"GUESS-{i}",
            event="auth_failed",
            remote="203.0.113.50:1",
            detail={"reason": "unknown_station"},
        )
        for i in range(3)
    ]
    alerts = run_detector(make_detector(AuthFailure), events)
    assert [a.severity for a in alerts] == [Severity.HIGH]
    assert alerts[0].summary.startswith("identity probing: 3 station identities")
    assert alerts[0].evidence["reasons_so_far"] == {"unknown_station": 3}


def test_auth_failure_success_after_failures_escalates() -> None:
    events = [conn(i * 0.1, "auth_failed", remote="203.0.113.9:1") for i in range(5)]
    events.append(conn(1, "connect", remote="203.0.113.9:2"))
    alerts = run_detector(make_detector(AuthFailure), events)
    assert len(alerts) == 1
    assert alerts[0].severity is Severity.HIGH
    assert alerts[0].ts == at(0.4)


@pytest.mark.parametrize(
    ("ocpp", "event_type"),
    [("1.6", "FailedToAuthenticateAtCentralSystem"), ("2.0.1", "FailedToAuthenticateAtCsms")],
)
def test_auth_failure_from_station_reported_events(ocpp: str, event_type: str) -> None:
    events = [sec(ts=at(i), ocpp=ocpp, event_type=event_type) for i in range(3)]
    alerts = run_detector(make_detector(AuthFailure), events)
    assert len(alerts) == 1
    assert alerts[0].ts == at(2)
    assert run_detector(make_detector(AuthFailure), events[:2]) == []
    routine = [sec(ts=at(i), ocpp=ocpp, event_type="ResetOrReboot") for i in range(5)]
    assert run_detector(make_detector(AuthFailure), routine) == []


# ---------------------------------------------------------------------------------- duplicate_connection


def test_duplicate_connection_from_other_address_while_first_is_active() -> None:
    events = [
        conn(0, "connect", remote="198.51.100.7:5000"),
        an_event(FrameSeen, ts=at(9.5), direction=Direction.STATION),
        conn(10, "connect", remote="203.0.113.66:6000"),
    ]
    alerts = run_detector(make_detector(DuplicateConnection), events)
    assert len(alerts) == 1
    assert alerts[0].kind == "station.duplicate_connection"
    assert alerts[0].severity is Severity.MEDIUM
    assert alerts[0].ts == at(10)
    assert alerts[0].evidence["first_connection_active"] is True


def test_duplicate_connection_after_a_missed_reconnect_the_station_still_holds_its_address() -> None:
    # a reconnect storm ends on a disconnect, yet the station keeps talking: the capture missed its last connect
    events = [
        conn(0, "connect", remote="198.51.100.7:5000"),
        conn(1, "disconnect", remote="198.51.100.7:5000"),
        an_event(FrameSeen, ts=at(600), direction=Direction.STATION),
        an_event(FrameSeen, ts=at(2000), direction=Direction.STATION),
        conn(2000.5, "connect", remote="203.0.113.66:6000"),
    ]
    alerts = run_detector(make_detector(DuplicateConnection), events)
    assert [(a.ts, a.severity) for a in alerts] == [(at(2000.5), Severity.MEDIUM)]
    assert alerts[0].evidence["open_remote_hosts"] == ["198.51.100.7"]
    # the same when the disconnect lines name no address: the station was last connected from its own
    unnamed = [
        conn(0, "connect", remote="198.51.100.7:5000"),
        conn(0.5, "disconnect", remote=None),
        conn(0.7, "connect", remote="198.51.100.7:5001"),
        conn(1, "disconnect", remote=None),
        *events[2:],
    ]
    assert [a.ts for a in run_detector(make_detector(DuplicateConnection), unnamed)] == [at(2000.5)]
    # near miss: silent after the disconnect (no frames), then a connect from a new address is a clean reconnect
    quiet = [events[0], events[1], conn(2000.5, "connect", remote="203.0.113.66:6000")]
    assert run_detector(make_detector(DuplicateConnection), quiet) == []


def test_duplicate_connection_quiet_first_connection_is_low() -> None:
    events = [conn(0, "connect", remote="198.51.100.7:5000"), conn(60, "connect", remote="203.0.113.66:1")]
    alerts = run_detector(make_detector(DuplicateConnection), events)
    assert [a.severity for a in alerts] == [Severity.LOW]


def test_duplicate_connection_near_misses() -> None:
    clean = [
        conn(0, "connect", remote="198.51.100.7:5000"),
        conn(5, "disconnect", remote="198.51.100.7:5000"),
        conn(6, "connect", remote="203.0.113.66:6000"),
    ]
    assert run_detector(make_detector(DuplicateConnection), clean) == []
    half_dead = [
        conn(0, "connect", remote="198.51.100.7:5000"),
        an_event(FrameSeen, ts=at(0.5), direction=Direction.STATION),
        conn(
            0.6, "connect", remote="198.51.100.7:5001"
        ),  # same address, new port: the old socket was half-dead
    ]
    assert run_detector(make_detector(DuplicateConnection), half_dead) == []


def test_gateway_refused_duplicate_is_reported_and_replacement_is_not() -> None:
    refused = [
        conn(0, "connect", remote="198.51.100.7:5000"),
        conn(
            3,
            "action",
            remote="203.0.113.66:1",
            detail={"action": "duplicate_refused", "reason": "old_connection_alive"},
        ),
        conn(
            4,
            "action",
            remote="203.0.113.66:2",
            detail={"action": "duplicate_refused", "reason": "old_connection_alive"},
        ),
    ]
    alerts = run_detector(make_detector(DuplicateConnection), refused)
    assert len(alerts) == 1
    assert (alerts[0].severity, alerts[0].ts, alerts[0].count) == (Severity.MEDIUM, at(3), 2)
    assert alerts[0].evidence["open_remote_hosts"] == ["198.51.100.7"]
    replaced = [
        conn(0, "connect", remote="198.51.100.7:5000"),
        conn(
            30,
            "action",
            remote="203.0.113.66:1",
            detail={"action": "duplicate_replaced", "reason": "old_unresponsive"},
        ),
        conn(30.01, "connect", remote="203.0.113.66:1"),
        conn(31, "action", remote="203.0.113.66:1", detail={"action": "denied", "reason": "too_large"}),
    ]
    assert run_detector(make_detector(DuplicateConnection), replaced) == []


def test_duplicate_connection_alternating_addresses_is_one_high_alert() -> None:
    events = []
    for i, host in enumerate(["198.51.100.7", "203.0.113.66"] * 3):
        events.append(conn(i * 2, "connect", remote=f"{host}:1"))
        events.append(conn(i * 2 + 1, "disconnect", remote=f"{host}:1"))
    alerts = run_detector(make_detector(DuplicateConnection), events)
    assert len(alerts) == 1
    assert alerts[0].severity is Severity.HIGH
    assert alerts[0].ts == at(6)  # A, B, A, B: the second return
    assert alerts[0].evidence["remote_hosts"] == ["198.51.100.7", "203.0.113.66"]


# ---------------------------------------------------------------------------------- identity_change


def boot(minutes: float, ocpp: str = "1.6", **kw: Any) -> StationBooted:
    return an_event(StationBooted, ts=at(minutes), ocpp=ocpp, **kw)


@pytest.mark.parametrize("ocpp", VERSIONS)
def test_identity_change_serial_is_high(ocpp: str) -> None:
    events = [boot(0, ocpp), boot(60, ocpp, serial="SN-9999"), boot(120, ocpp, serial="SN-9999")]
    alerts = run_detector(make_detector(IdentityChange), events)
    assert len(alerts) == 1
    assert alerts[0].kind == "station.identity_change"
    assert alerts[0].severity is Severity.HIGH
    assert alerts[0].ts == at(60)
    assert alerts[0].evidence["changed"] == {"serial": {"before": "sn-0001", "after": "sn-9999"}}


@pytest.mark.parametrize("ocpp", VERSIONS)
def test_identity_change_model_only_is_medium_and_flip_back_is_high(ocpp: str) -> None:
    events = [boot(0, ocpp), boot(10, ocpp, model="Wallbox-11")]
    alerts = run_detector(make_detector(IdentityChange), events)
    assert [a.severity for a in alerts] == [Severity.MEDIUM]
    flip = [boot(0, ocpp), boot(10, ocpp, serial="SN-2"), boot(20, ocpp), boot(30, ocpp, serial="SN-2")]
    alerts = run_detector(make_detector(IdentityChange), flip)
    assert len(alerts) == 1
    assert alerts[0].count == 3
    assert alerts[0].evidence["merged"][0]["returned_to_earlier_identity"] is True


@pytest.mark.parametrize("ocpp", VERSIONS)
def test_identity_change_near_misses(ocpp: str) -> None:
    events = [
        boot(0, ocpp),
        boot(10, ocpp, firmware="2.0.0"),  # firmware alone is not identity
        boot(20, ocpp, serial=None),  # serial left out: not compared
        boot(30, ocpp, vendor=" acme ", model="WALLBOX-22"),  # spelling only
    ]
    assert run_detector(make_detector(IdentityChange), events) == []


# ---------------------------------------------------------------------------------- firmware_downgrade


@pytest.mark.parametrize("ocpp", VERSIONS)
def test_firmware_downgrade_fires_once_per_incident(ocpp: str) -> None:
    events = [
        boot(0, ocpp, firmware="v1.9.0"),
        boot(10, ocpp, firmware="v1.10.2"),
        boot(20, ocpp, firmware="v1.9.4"),
        boot(30, ocpp, firmware="v1.9.4"),
    ]
    alerts = run_detector(make_detector(FirmwareDowngrade), events)
    assert len(alerts) == 1
    alert = alerts[0]
    assert alert.kind == "station.firmware_downgrade"
    assert alert.ts == at(20)
    assert alert.severity is Severity.HIGH
    assert alert.evidence["highest_seen"] == "v1.10.2"
    assert alert.count == 1  # the reboot into the same downgraded version is the same downgrade


def test_firmware_downgrade_reboots_days_later_do_not_refire_but_a_new_downgrade_does() -> None:
    events = [
        boot(0, firmware="R5.1.12"),
        boot(10, firmware="R4.9.2"),  # the downgrade
        boot(60 * 19, firmware="R4.9.2"),  # the downgraded station reboots 19 hours later
        boot(60 * 30, firmware="R5.1.12"),  # upgraded again
        boot(60 * 50, firmware="R4.9.2"),  # and downgraded again: a new incident
        boot(60 * 70, firmware="R4.8.0"),  # and further down
    ]
    alerts = run_detector(make_detector(FirmwareDowngrade), events)
    assert [a.ts for a in alerts] == [at(10), at(60 * 50), at(60 * 70)]


def test_firmware_downgrade_build_regression_is_medium_and_rollback_low() -> None:
    events = [boot(0, firmware="R2.1 build 345"), boot(5, firmware="R2.1 build 300")]
    alerts = run_detector(make_detector(FirmwareDowngrade), events)
    assert [a.severity for a in alerts] == [Severity.MEDIUM]
    rollback = [
        boot(0, firmware="4.12.0.1234"),
        an_event(FirmwareStatusReported, ts=at(3), status="InstallationFailed"),
        boot(5, firmware="4.11.9"),
    ]
    alerts = run_detector(make_detector(FirmwareDowngrade), rollback)
    assert [a.severity for a in alerts] == [Severity.LOW]


def test_firmware_of_another_device_is_not_a_downgrade() -> None:
    events = [
        boot(0, firmware="6.1.0-4159"),
        boot(10, vendor="OtherCo", model="DC-50", serial="X1", firmware="R5.1.12"),  # an impostor's device
        boot(20, firmware="6.1.0-4159"),  # the real station is back
        boot(30, firmware="6.0.9"),  # and now really regresses
    ]
    alerts = run_detector(make_detector(FirmwareDowngrade), events)
    assert [(a.ts, a.evidence["highest_seen"]) for a in alerts] == [(at(30), "6.1.0-4159")]


@pytest.mark.parametrize("ocpp", VERSIONS)
def test_firmware_downgrade_near_misses(ocpp: str) -> None:
    events = [
        boot(0, ocpp, firmware="1.2.3-rc1"),
        boot(1, ocpp, firmware="1.2.3"),  # release after rc: upgrade
        boot(2, ocpp, firmware="FW_2023.04.1"),  # scheme change: not comparable
        boot(3, ocpp, firmware="1.2.3"),
        boot(4, ocpp, firmware="nightly"),  # unparseable
        boot(5, ocpp, firmware=None),
        boot(6, ocpp, firmware="1.10"),
    ]
    assert run_detector(make_detector(FirmwareDowngrade), events) == []
    other_station = [
        boot(0, ocpp, firmware="2.0"),
        an_event(StationBooted, ts=at(1), station="CP-2", firmware="1.0"),
    ]
    assert run_detector(make_detector(FirmwareDowngrade), other_station) == []


# ---------------------------------------------------------------------------------- security_downgrade


def change(minutes: float, key: str, value: str | None, ocpp: str = "1.6", **kw: Any) -> ConfigurationChange:
    source = "ChangeConfiguration" if ocpp == "1.6" else "SetVariables"
    kw.setdefault("source", source)
    return an_event(ConfigurationChange, ts=at(minutes), ocpp=ocpp, key=key, value=value, **kw)


PROFILE_KEY = {"1.6": "SecurityProfile", "2.0.1": "SecurityCtrlr.SecurityProfile"}


@pytest.mark.parametrize("ocpp", VERSIONS)
def test_security_profile_lowering_attempt_is_high(ocpp: str) -> None:
    events = [
        conn(0, "connect", security_profile=2),
        change(5, PROFILE_KEY[ocpp], "1", ocpp),
        change(6, PROFILE_KEY[ocpp], "0", ocpp),
    ]
    alerts = run_detector(make_detector(SecurityDowngrade), events)
    assert len(alerts) == 1
    assert alerts[0].kind == "station.security_downgrade"
    assert alerts[0].severity is Severity.HIGH
    assert alerts[0].ts == at(5)
    assert alerts[0].evidence["highest_seen"] == 2


@pytest.mark.parametrize("ocpp", VERSIONS)
def test_security_profile_baseline_from_report_and_raise_is_silent(ocpp: str) -> None:
    report = an_event(ConfigurationReport, ts=at(0), ocpp=ocpp, key=PROFILE_KEY[ocpp], value="3")
    alerts = run_detector(make_detector(SecurityDowngrade), [report, change(1, PROFILE_KEY[ocpp], "2", ocpp)])
    assert [a.severity for a in alerts] == [Severity.HIGH]
    upgrade = [conn(0, "connect", security_profile=1), change(1, PROFILE_KEY[ocpp], "2", ocpp)]
    assert run_detector(make_detector(SecurityDowngrade), upgrade) == []


def test_gateway_refused_profile_downgrade_is_medium() -> None:
    event = conn(0, "auth_failed", security_profile=1, detail={"reason": "security_profile_downgrade"})
    alerts = run_detector(make_detector(SecurityDowngrade), [event])
    assert [(a.severity, a.ts) for a in alerts] == [(Severity.MEDIUM, at(0))]
    other = conn(0, "auth_failed", security_profile=1, detail={"reason": "bad_credentials"})
    assert run_detector(make_detector(SecurityDowngrade), [other]) == []


def test_reconnect_at_lower_profile_is_high() -> None:
    events = [conn(0, "connect", security_profile=3), conn(60, "connect", security_profile=1)]
    alerts = run_detector(make_detector(SecurityDowngrade), events)
    assert len(alerts) == 1
    assert alerts[0].ts == at(60)
    assert alerts[0].severity is Severity.HIGH
    same = [conn(0, "connect", security_profile=2), conn(60, "connect", security_profile=2)]
    assert run_detector(make_detector(SecurityDowngrade), same) == []
    rejected_raise = [  # a raise the station refused must not make its old profile a "downgrade"
        conn(0, "connect", security_profile=2),
        change(1, "SecurityProfile", "3"),
        conn(2, "connect", security_profile=2),
    ]
    assert run_detector(make_detector(SecurityDowngrade), rejected_raise) == []


def network(minutes: float, url: str, profile: int, slot: int = 1) -> ConfigurationChange:
    return an_event(
        ConfigurationChange,
        ts=at(minutes),
        ocpp="2.0.1",
        source="SetNetworkProfile",
        key=f"NetworkConnectionProfile/{slot}",
        value=None,
        details={"ocppCsmsUrl": url, "securityProfile": profile},
    )


def test_set_network_profile_redirect_and_lower_profile() -> None:
    events = [
        conn(0, "connect", security_profile=2),
        network(1, "wss://csms.operator.example/ocpp", 2),
        network(2, "wss://evil.example.net/ocpp", 2, slot=2),
        network(3, "ws://csms.operator.example/ocpp", 1, slot=3),
    ]
    alerts = run_detector(make_detector(SecurityDowngrade), events)
    assert len(alerts) == 1
    alert = alerts[0]
    assert alert.ts == at(1)  # first SetNetworkProfile: cannot be verified (low), then merged
    assert alert.severity is Severity.HIGH
    reasons = [r for m in alert.evidence["merged"] for r in m["reasons"]]
    assert any("evil.example.net" in r for r in reasons)
    assert any("security profile 1 below 2" in r for r in reasons)


def test_network_priority_switch_to_weaker_slot() -> None:
    events = [
        conn(0, "connect", security_profile=3),
        network(1, "wss://csms.operator.example/ocpp", 3, slot=1),
        network(2, "wss://csms.operator.example/ocpp", 1, slot=2),
        change(3, "OCPPCommCtrlr.NetworkConfigurationPriority", "2,1", "2.0.1"),
    ]
    alerts = run_detector(make_detector(SecurityDowngrade), events)
    assert len(alerts) == 1
    assert alerts[0].count == 3  # the unverifiable first profile, the weaker slot, then its activation
    assert alerts[0].severity is Severity.HIGH
    assert "activates slot 2" in alerts[0].evidence["merged"][-1]["summary"]
    upgrade = [
        conn(0, "connect", security_profile=2),
        network(1, "wss://csms.operator.example/ocpp", 3, slot=2),
        change(2, "OCPPCommCtrlr.NetworkConfigurationPriority", "2,1", "2.0.1"),
    ]
    alerts = run_detector(
        make_detector(SecurityDowngrade, trusted_csms_hosts=("csms.operator.example",)), upgrade
    )
    assert alerts == []


def test_set_network_profile_with_trusted_hosts() -> None:
    det = make_detector(SecurityDowngrade, trusted_csms_hosts=(".operator.example",))
    ok = [conn(0, "connect", security_profile=2), network(1, "wss://csms2.operator.example/ocpp", 2)]
    assert run_detector(det, ok) == []
    det = make_detector(SecurityDowngrade, trusted_csms_hosts=(".operator.example",))
    bad = [network(1, "wss://operator.example.evil.net/ocpp", 3)]
    alerts = run_detector(det, bad)
    assert [a.severity for a in alerts] == [Severity.HIGH]


def test_trusted_csms_hosts_refuses_a_url() -> None:
    with pytest.raises(ConfigError, match="trusted_csms_hosts"):
        make_detector(SecurityDowngrade, trusted_csms_hosts=("wss://csms.operator.example/ocpp",))


@pytest.mark.parametrize(
    ("ocpp", "key", "value", "severity"),
    [
        ("1.6", "AllowOfflineTxForUnknownId", "True", Severity.HIGH),
        ("1.6", "LocalAuthorizeOffline", "true", Severity.LOW),
        ("1.6", "AuthorizeRemoteTxRequests", "FALSE", Severity.MEDIUM),
        ("1.6", "StopTransactionOnInvalidId", "false", Severity.MEDIUM),
        ("2.0.1", "AuthCtrlr.OfflineTxForUnknownIdEnabled", "true", Severity.HIGH),
        ("2.0.1", "AuthCtrlr.LocalAuthorizeOffline", "True", Severity.LOW),
        ("2.0.1", "AuthCtrlr.LocalPreAuthorize", "true", Severity.LOW),
        ("2.0.1", "AuthCtrlr.AuthorizeRemoteStart", "false", Severity.MEDIUM),
        ("2.0.1", "AuthCtrlr.DisableRemoteAuthorization", "true", Severity.MEDIUM),
        ("2.0.1", "TxCtrlr.StopTxOnInvalidId", "false", Severity.MEDIUM),
        ("2.0.1", "TxCtrlr.MaxEnergyOnInvalidId", "5000", Severity.MEDIUM),
    ],
)
def test_risky_values_fire(ocpp: str, key: str, value: str, severity: Severity) -> None:
    alerts = run_detector(make_detector(SecurityDowngrade), [change(1, key, value, ocpp)])
    assert len(alerts) == 1
    assert alerts[0].severity is severity
    assert alerts[0].ts == at(1)
    assert alerts[0].evidence["key"] == key


@pytest.mark.parametrize(
    ("ocpp", "key", "value"),
    [
        ("1.6", "AllowOfflineTxForUnknownId", "false"),
        ("1.6", "AuthorizeRemoteTxRequests", "true"),
        ("1.6", "HeartbeatInterval", "300"),
        ("1.6", "AuthorizationKey", "[redacted]"),
        ("2.0.1", "TxCtrlr.MaxEnergyOnInvalidId", "500"),
        ("2.0.1", "AuthCtrlr.OfflineTxForUnknownIdEnabled", "False"),
        ("2.0.1", "AuthCtrlr.AuthorizeRemoteStart", "maybe"),
    ],
)
def test_safe_values_are_silent(ocpp: str, key: str, value: str) -> None:
    assert run_detector(make_detector(SecurityDowngrade), [change(1, key, value, ocpp)]) == []


def test_reported_risky_values_are_one_level_lower_and_once() -> None:
    reports = [
        an_event(ConfigurationReport, ts=at(i), key="AllowOfflineTxForUnknownId", value="true")
        for i in range(3)
    ]
    reports.append(an_event(ConfigurationReport, ts=at(5), key="LocalAuthorizeOffline", value="true"))
    alerts = run_detector(make_detector(SecurityDowngrade), reports)
    assert len(alerts) == 1
    assert alerts[0].severity is Severity.MEDIUM
    assert alerts[0].count == 1  # repeated report of the same value is not new evidence


# ---------------------------------------------------------------------------------- security_event


def test_security_table_covers_every_appendix_type() -> None:
    appendix = {
        "FirmwareUpdated", "FailedToAuthenticateAtCsms", "CsmsFailedToAuthenticate", "SettingSystemTime",
        "StartupOfTheDevice", "ResetOrReboot", "SecurityLogWasCleared", "ReconfigurationOfSecurityParameters",
        "MemoryExhaustion", "InvalidMessages", "AttemptedReplayAttacks", "TamperDetectionActivated",
        "InvalidFirmwareSignature", "InvalidFirmwareSigningCertificate", "InvalidCsmsCertificate",
        "InvalidChargingStationCertificate", "InvalidTLSVersion", "InvalidTLSCipherSuite",
        "MaintenanceLoginAccepted", "MaintenanceLoginFailed",
    }  # fmt: skip
    assert appendix <= set(SECURITY_EVENT_TABLE)
    assert rate_security_event("InvalidCentralSystemCertificate").event_type == "InvalidCsmsCertificate"
    assert (
        rate_security_event("invalidchargepointcertificate").event_type == "InvalidChargingStationCertificate"
    )
    assert rate_security_event("StartupOfTheDevice").base is Severity.INFO
    assert rate_security_event("TamperDetectionActivated").base is Severity.HIGH
    critical = {name for name, rating in SECURITY_EVENT_TABLE.items() if rating.ocpp_critical}
    assert len(critical) == 13  # the 13 the appendix says a station must push
    assert not rate_security_event("InvalidFirmwareSignature").ocpp_critical
    assert rate_security_event("InvalidCentralSystemCertificate").ocpp_critical
    vendor = rate_security_event("AcmeDoorOpened")
    assert (vendor.base, vendor.known) == (Severity.LOW, False)


@pytest.mark.parametrize(
    ("ocpp", "event_type", "severity"),
    [
        ("2.0.1", "TamperDetectionActivated", Severity.HIGH),
        ("1.6", "TamperDetectionActivated", Severity.HIGH),
        ("2.0.1", "SecurityLogWasCleared", Severity.HIGH),
        ("2.0.1", "InvalidFirmwareSignature", Severity.HIGH),
        ("1.6", "InvalidCentralSystemCertificate", Severity.HIGH),
        ("2.0.1", "AttemptedReplayAttacks", Severity.MEDIUM),
        ("1.6", "CentralSystemFailedToAuthenticate", Severity.MEDIUM),
        ("2.0.1", "AcmeVendorEvent", Severity.LOW),
    ],
)
def test_security_event_rated_and_merged(ocpp: str, event_type: str, severity: Severity) -> None:
    events = [sec(ts=at(i), ocpp=ocpp, event_type=event_type) for i in range(2)]
    alerts = run_detector(make_detector(SecurityEvent), events)
    assert len(alerts) == 1
    assert alerts[0].kind == "station.security_event"
    assert alerts[0].severity is severity
    assert alerts[0].ts == at(0)
    assert alerts[0].count == 2


@pytest.mark.parametrize("ocpp", VERSIONS)
def test_routine_reboot_is_silent_but_reboot_loop_is_medium(ocpp: str) -> None:
    single = [
        sec(ts=at(0), ocpp=ocpp, event_type="StartupOfTheDevice"),
        sec(ts=at(0.1), ocpp=ocpp, event_type="FirmwareUpdated"),
    ]
    assert run_detector(make_detector(SecurityEvent), single) == []
    loop = [
        sec(ts=at(i * 5), ocpp=ocpp, event_type=t)
        for i in range(3)
        for t in ("ResetOrReboot", "StartupOfTheDevice")
    ]
    alerts = run_detector(make_detector(SecurityEvent), loop)
    assert len(alerts) == 1
    assert alerts[0].severity is Severity.MEDIUM
    assert alerts[0].ts == at(10)  # the fifth reboot-type event
    assert alerts[0].evidence["burst"] is True


def test_queued_reboots_delivered_together_are_not_a_loop() -> None:
    # ten reboots over twenty hours, queued while offline and delivered within seconds of each other
    queued = [
        sec(ts=at(0, seconds=i), event_type="ResetOrReboot", happened=at(-120 * (10 - i))) for i in range(10)
    ]
    assert run_detector(make_detector(SecurityEvent), queued) == []
    # the same ten reboots within an hour of station time are a loop, even delivered late
    loop = [sec(ts=at(0, seconds=i), event_type="ResetOrReboot", happened=at(-60 + 5 * i)) for i in range(10)]
    assert [a.severity for a in run_detector(make_detector(SecurityEvent), loop)] == [Severity.MEDIUM]


def test_a_reboot_stamped_days_off_is_not_part_of_an_earlier_loop() -> None:
    loop = [sec(ts=at(i), event_type="StartupOfTheDevice") for i in range(6)]  # a reboot loop: one alert
    late = sec(ts=at(60 * 23), event_type="StartupOfTheDevice", happened=at(60 * 23 - 3 * 24 * 60))
    alerts = run_detector(make_detector(SecurityEvent), [*loop, late])  # clock three days behind after it
    assert [(a.ts, a.severity) for a in alerts] == [(at(4), Severity.MEDIUM)]
    # near miss the other way: a sixth reboot stamped within the loop's hour still belongs to it
    again = sec(ts=at(60 * 23), event_type="StartupOfTheDevice", happened=at(7))
    assert len(run_detector(make_detector(SecurityEvent), [*loop, again])) == 2  # a burst again, a day on


def test_security_event_min_severity_is_validated() -> None:
    with pytest.raises(ConfigError):
        make_detector(SecurityEvent, min_severity="loud")
    det = make_detector(SecurityEvent, min_severity="info")
    alerts = run_detector(det, [sec(event_type="StartupOfTheDevice")])
    assert [a.severity for a in alerts] == [Severity.INFO]


# ---------------------------------------------------------------------------------- clock_skew


def reading(minutes: float, skew_s: float, **kw: Any) -> ClockReading:
    ts = at(minutes)
    return an_event(ClockReading, ts=ts, at=at(minutes, seconds=skew_s), action="MeterValues", **kw)


def test_clock_ahead_persisting_fires_once() -> None:
    events = [reading(i, 900 + i) for i in range(6)]
    alerts = run_detector(make_detector(ClockSkew), events)
    assert len(alerts) == 1
    assert alerts[0].kind == "station.clock_skew"
    assert alerts[0].ts == at(2)  # third consistent reading
    assert alerts[0].severity is Severity.LOW


def test_clock_behind_on_live_messages_fires_medium() -> None:
    events = [conn(0, "connect"), *(reading(10 + i, -2 * 3600) for i in range(3))]
    alerts = run_detector(make_detector(ClockSkew), events)
    assert [a.severity for a in alerts] == [Severity.MEDIUM]
    assert alerts[0].ts == at(12)


def test_clock_skew_near_misses() -> None:
    one_odd = [reading(0, 0), reading(1, 3600), reading(2, 1), reading(3, 3600), reading(4, 0)]
    assert run_detector(make_detector(ClockSkew), one_odd) == []
    queued = [reading(i * 0.01, -5 * 3600, queued=True) for i in range(10)]
    assert run_detector(make_detector(ClockSkew), queued) == []
    replay = [conn(0, "connect"), *(reading(0.1 + i * 0.01, -3 * 3600 + 60 * i) for i in range(10))]
    assert run_detector(make_detector(ClockSkew), replay) == []
    small = [reading(i, 120) for i in range(10)]
    assert run_detector(make_detector(ClockSkew), small) == []
    replay_unflagged = [reading(i * 0.01, -3 * 3600 + 300 * i) for i in range(6)]  # offsets spread out
    assert run_detector(make_detector(ClockSkew), replay_unflagged) == []


@pytest.mark.parametrize("skew_s", [-5 * 3600.0, -3 * 86_400.0 - 1234.0])
def test_clock_behind_on_messages_that_look_queued_fires_once_the_offset_holds(skew_s: float) -> None:
    # a reboot with the clock days behind; each 5-minute sample comes after a silence, so each looks queued
    events = [conn(0, "connect"), *(reading(0.2 + 5 * i, skew_s, queued=True) for i in range(5))]
    alerts = run_detector(make_detector(ClockSkew), events)
    assert [(a.ts, a.severity) for a in alerts] == [(at(10.2), Severity.MEDIUM)]  # 3 readings over 10 min
    assert alerts[0].evidence["skew_s"] == pytest.approx(skew_s)


def test_clock_behind_queue_replays_stay_silent_even_when_long() -> None:
    # an offline hour replayed over 12 minutes: offsets shrink as the replay catches up
    slow_replay = [reading(i, -3600 + 50 * i, queued=True) for i in range(12)]
    assert run_detector(make_detector(ClockSkew), slow_replay) == []
    # a steady lag in a burst (seconds of transport time) is not yet a clock
    burst = [conn(0, "connect"), *(reading(0.1 + i * 0.05, -2 * 86_400.0, queued=True) for i in range(8))]
    assert run_detector(make_detector(ClockSkew), burst) == []


def test_clock_absurd_future_is_high_on_one_reading() -> None:
    ts = at(0)
    far = ts.replace(year=2099)
    alerts = run_detector(
        make_detector(ClockSkew), [an_event(ClockReading, ts=ts, at=far, action="TransactionEvent")]
    )
    assert len(alerts) == 1
    assert alerts[0].severity is Severity.HIGH
    assert alerts[0].evidence["absurd"] is True


def test_clock_reset_to_epoch_counts_even_when_queued() -> None:
    ts = at(0)
    epoch = ts.replace(year=1970)
    events = [
        an_event(ClockReading, ts=at(i), at=epoch.replace(minute=i), action="StatusNotification", queued=True)
        for i in range(3)
    ]
    alerts = run_detector(make_detector(ClockSkew), events)
    assert [a.severity for a in alerts] == [Severity.MEDIUM]


# ---------------------------------------------------------------------------------- bounded state


@pytest.mark.parametrize("cls", DETECTORS)
def test_state_stays_bounded(cls: type) -> None:
    from chargeguard.detectors.base import DetectorContext, Limits

    det = make_detector(cls, DetectorContext(limits=Limits(max_keys=50, ttl_s=3600)))
    for i in range(500):
        station = f"CP-{i}"
        for ev in (
            an_event(
                ConnectionEvent,
                ts=at(i),
                station=station,
                event="auth_failed",
                remote=f"10.0.{i // 250}.{i % 250}:1",
            ),
            an_event(ConnectionEvent, ts=at(i), station=station, event="connect", security_profile=2),
            an_event(StationBooted, ts=at(i), station=station),
            sec(ts=at(i), station=station),
            an_event(ClockReading, ts=at(i), station=station, action="Heartbeat"),
            an_event(
                ConfigurationReport, ts=at(i), station=station, key="LocalAuthorizeOffline", value="true"
            ),
        ):
            if type(ev) in det.consumes:
                list(det.process(ev))
    assert det.state_size() <= 3 * 50


# ---------------------------------------------------------------------------------- end to end (real normaliser)


def scan(lines: list[dict[str, Any]]) -> list[Any]:
    """Raw capture lines through the real pipeline (normaliser, engine) with the station detectors only."""
    import orjson

    from chargeguard.detectors.registry import build_detectors
    from chargeguard.pipeline import ScanPipeline
    from chargeguard.settings import Settings
    from chargeguard.sources.capture import parse_line
    from chargeguard.vault.pseudonyms import Pseudonymiser

    alerts: list[Any] = []
    detectors = build_detectors(DetectorContext(), classes=DETECTORS)
    pipeline = ScanPipeline(
        Settings(), Pseudonymiser({1: bytes(range(32))}, 1), detectors=detectors, on_close=alerts.append
    )
    for number, line in enumerate(lines, start=1):
        pipeline.feed(parse_line(orjson.dumps(line), f"test:{number}"))
    pipeline.finish()
    return sorted(alerts, key=lambda a: (a.ts, a.kind))


def wire_ts(seconds: int) -> str:
    return f"2026-03-01T08:{seconds // 60:02d}:{seconds % 60:02d}.000Z"


def frame(seconds: int, ocpp: str, sender: str, body: list[Any], station: str = "CP-9") -> dict[str, Any]:
    return {"ts": wire_ts(seconds), "station": station, "ocpp": ocpp, "from": sender, "frame": body}


def boot_frame(seconds: int, ocpp: str, msg_id: str, firmware: str, serial: str) -> list[dict[str, Any]]:
    if ocpp == "1.6":
        payload: dict[str, Any] = {
            "chargePointVendor": "ACME",
            "chargePointModel": "Wallbox-22",
            "chargePointSerialNumber": serial,
            "firmwareVersion": firmware,
        }
        answer: dict[str, Any] = {"status": "Accepted", "currentTime": wire_ts(seconds), "interval": 300}
    else:
        payload = {
            "reason": "PowerUp",
            "chargingStation": {
                "vendorName": "ACME",
                "model": "Wallbox-22",
                "serialNumber": serial,
                "firmwareVersion": firmware,
            },
        }
        answer = {"status": "Accepted", "currentTime": wire_ts(seconds), "interval": 300}
    return [
        frame(seconds, ocpp, "station", [2, msg_id, "BootNotification", payload]),
        frame(seconds, ocpp, "csms", [3, msg_id, answer]),
    ]


@pytest.mark.parametrize("ocpp", VERSIONS)
def test_end_to_end_station_kinds_from_raw_frames(ocpp: str) -> None:
    if ocpp == "1.6":
        lower = [2, "c1", "ChangeConfiguration", {"key": "SecurityProfile", "value": "0"}]
        lower_answer = [3, "c1", {"status": "Rejected"}]
        tamper = "InvalidCentralSystemCertificate"
    else:
        lower = [
            2,
            "c1",
            "SetVariables",
            {
                "setVariableData": [
                    {
                        "component": {"name": "SecurityCtrlr"},
                        "variable": {"name": "SecurityProfile"},
                        "attributeValue": "0",
                    }
                ]
            },
        ]
        lower_answer = [
            3,
            "c1",
            {
                "setVariableResult": [
                    {
                        "attributeStatus": "Rejected",
                        "component": {"name": "SecurityCtrlr"},
                        "variable": {"name": "SecurityProfile"},
                    }
                ]
            },
        ]
        tamper = "InvalidCsmsCertificate"
    lines = [
        {
            "ts": wire_ts(0),
            "station": "CP-9",
            "event": "connect",
            "remote": "198.51.100.7:5000",
            "security_profile": 2,
        },
        *boot_frame(1, ocpp, "b1", "v2.4.1", "SN-1"),
        frame(10, ocpp, "csms", lower),
        frame(11, ocpp, "station", lower_answer),
        frame(
            20,
            ocpp,
            "station",
            [2, "s1", "SecurityEventNotification", {"type": tamper, "timestamp": wire_ts(19)}],
        ),
        frame(21, ocpp, "csms", [3, "s1", {}]),
        *boot_frame(30, ocpp, "b2", "v2.1.0", "SN-2"),
    ]
    alerts = scan(lines)
    assert [(a.kind, a.severity, a.ts) for a in alerts] == [
        ("station.security_downgrade", Severity.HIGH, at(seconds=10)),
        ("station.security_event", Severity.HIGH, at(seconds=20)),
        ("station.firmware_downgrade", Severity.HIGH, at(seconds=30)),
        ("station.identity_change", Severity.HIGH, at(seconds=30)),
    ]
    assert all(a.station == "CP-9" for a in alerts)


def test_clock_skew_threshold_edge_is_exact() -> None:
    # exactly at the threshold is healthy; a millisecond beyond it counts (decided by the full float path)
    at_edge = [reading(i, 300.0) for i in range(5)]
    assert run_detector(make_detector(ClockSkew), at_edge) == []
    beyond = [reading(i, 300.001) for i in range(3)]
    assert [a.ts for a in run_detector(make_detector(ClockSkew), beyond)] == [at(2)]
    behind = [reading(i, -300.0005) for i in range(3)]
    assert len(run_detector(make_detector(ClockSkew), behind)) == 1


def test_clock_healthy_reading_inside_the_band_ends_a_streak() -> None:
    events = [reading(0, 900), reading(1, 900), reading(2, 10), reading(3, 900), reading(4, 900)]
    assert run_detector(make_detector(ClockSkew), events) == []
    assert len(run_detector(make_detector(ClockSkew), [*events, reading(5, 900)])) == 1
