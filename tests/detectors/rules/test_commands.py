"""command.* rule detectors: must-fire cases and near misses, in OCPP 1.6 and 2.0.1."""

from __future__ import annotations

from typing import Any

import pytest

from chargeguard.detectors.base import DetectorContext, Limits
from chargeguard.detectors.registry import build_detectors
from chargeguard.detectors.rules.commands import (
    DETECTORS,
    Burst,
    FleetSynchronised,
    StaleLocalList,
    UntrustedUrl,
)
from chargeguard.errors import ConfigError
from chargeguard.events import AuthorizationDecision, CommandIssued, Severity, StationBooted
from chargeguard.testing import an_event, at, make_detector, run_detector

TOKEN_A = "tok1_aaaaaaaaaaaaaaa"
TOKEN_B = "tok1_bbbbbbbbbbbbbbb"


def cmd(seconds: float, action: str, ocpp: str = "1.6", **kw: Any) -> CommandIssued:
    kw.setdefault("message_id", f"m{seconds}")
    return an_event(CommandIssued, ts=at(seconds=seconds), action=action, ocpp=ocpp, **kw)


def test_exports_every_command_kind() -> None:
    assert sorted(k for cls in DETECTORS for k in cls.info.kinds) == [
        "command.burst",
        "command.fleet_synchronised",
        "command.stale_local_list",
        "command.untrusted_url",
    ]


# ------------------------------------------------------------------------------------------ untrusted_url


@pytest.mark.parametrize(
    ("ocpp", "action", "url", "severity"),
    [
        (
            "1.6",
            "UpdateFirmware",
            "http://fw.vendor.example/img.bin",
            Severity.HIGH,
        ),  # unsigned over plain http
        ("2.0.1", "UpdateFirmware", "http://fw.vendor.example/img.bin", Severity.MEDIUM),  # signed image
        ("1.6", "SignedUpdateFirmware", "https://203.0.113.5/img.bin", Severity.MEDIUM),
        ("1.6", "GetDiagnostics", "ftp://diag.vendor.example/in/", Severity.MEDIUM),
        ("2.0.1", "GetLog", "https://169.254.169.254/latest/meta-data/", Severity.HIGH),
        ("2.0.1", "GetLog", "file:///etc/shadow", Severity.HIGH),
        ("2.0.1", "GetLog", "https://localhost:8443/upload", Severity.HIGH),
        ("1.6", "GetDiagnostics", "https://10.1.2.3/upload", Severity.MEDIUM),
    ],
)
def test_unsafe_locations_fire(ocpp: str, action: str, url: str, severity: Severity) -> None:
    alerts = run_detector(make_detector(UntrustedUrl), [cmd(0, action, ocpp, urls=(url,))])
    assert len(alerts) == 1
    assert alerts[0].kind == "command.untrusted_url"
    assert alerts[0].severity is severity
    assert alerts[0].ts == at()


def test_safe_https_host_is_silent_without_allow_list() -> None:
    events = [
        cmd(0, "UpdateFirmware", "2.0.1", urls=("https://fw.vendor.example/img.bin?sig=abc",)),
        cmd(1, "GetDiagnostics", urls=("https://diag.vendor.example/upload",)),
        cmd(2, "Reset", urls=("http://203.0.113.1/",)),  # not a URL-bearing command
    ]
    assert run_detector(make_detector(UntrustedUrl), events) == []


@pytest.mark.parametrize("ocpp", ["1.6", "2.0.1"])
def test_allow_list_flags_https_to_any_other_host(ocpp: str) -> None:
    det = make_detector(UntrustedUrl, trusted_hosts=["fw.vendor.example", "*.cdn.vendor.example"])
    events = [
        cmd(0, "SignedUpdateFirmware", ocpp, urls=("https://fw.vendor.example/a.bin",)),
        cmd(1, "GetLog", ocpp, urls=("https://eu.cdn.vendor.example/upload",)),
        cmd(2, "GetLog", ocpp, urls=("https://cdn.vendor.example/upload",)),  # a suffix covers its own name
        cmd(3, "SignedUpdateFirmware", ocpp, urls=("https://FW.Vendor.Example./b.bin",)),
        cmd(4, "GetLog", ocpp, urls=("https://uploads.example.net/in",)),  # valid TLS, but not trusted
        cmd(5, "SignedUpdateFirmware", ocpp, urls=("https://xfw.vendor.example/a.bin",)),
    ]
    alerts = run_detector(det, events)
    assert [(a.ts, a.severity) for a in alerts] == [
        (at(seconds=4), Severity.HIGH),
        (at(seconds=5), Severity.HIGH),
    ]
    assert alerts[0].evidence["reasons"] == ["host is not in the trusted list"]
    assert alerts[0].evidence["trusted_host"] is False


def test_without_allow_list_a_familiar_https_host_stays_silent() -> None:
    det = make_detector(UntrustedUrl)
    events = [cmd(i, "GetLog", urls=("https://uploads.example.net/in",)) for i in range(3)]
    assert run_detector(det, events) == []


def test_allow_list_matches_idna_spellings() -> None:
    det = make_detector(UntrustedUrl, trusted_hosts=(".bücher.example",))
    events = [
        cmd(0, "GetLog", urls=("https://logs.xn--bcher-kva.example/in",)),
        cmd(1, "GetLog", urls=("https://logs.bücher.example/in",)),
        cmd(2, "GetLog", urls=("https://logs.bucher.example/in",)),
    ]
    assert [a.ts for a in run_detector(det, events)] == [at(seconds=2)]


def test_allow_list_from_settings_and_ip_entries() -> None:
    context = DetectorContext()
    overrides = {
        "command-untrusted-url": {"trusted_hosts": ["192.0.2.10", "[2001:db8::1]", ".vendor.example"]}
    }
    det = build_detectors(context, overrides=overrides, classes=(UntrustedUrl,))[0]
    events = [
        cmd(0, "SignedUpdateFirmware", urls=("https://192.0.2.10/a.bin",)),
        cmd(1, "SignedUpdateFirmware", urls=("https://[2001:db8::1]:8443/a.bin",)),
        cmd(2, "SignedUpdateFirmware", urls=("https://192.0.2.11/a.bin",)),
    ]
    alerts = run_detector(det, events)
    assert [(a.ts, a.severity) for a in alerts] == [(at(seconds=2), Severity.HIGH)]


@pytest.mark.parametrize(
    "pattern",
    ["https://fw.vendor.example/", "fw.vendor.example:443", "*", "", "fw*.example", "a@b.example", "."],
)
def test_allow_list_refuses_entries_that_could_never_match(pattern: str) -> None:
    with pytest.raises(ConfigError, match="trusted_hosts"):
        make_detector(UntrustedUrl, trusted_hosts=(pattern,))


def test_allow_list_refuses_non_string_entries() -> None:
    overrides = {"command-untrusted-url": {"trusted_hosts": ["fw.vendor.example", 443]}}
    with pytest.raises(ConfigError, match="strings"):
        build_detectors(DetectorContext(), overrides=overrides, classes=(UntrustedUrl,))


def test_credentials_always_flagged_even_on_trusted_host() -> None:
    det = make_detector(UntrustedUrl, trusted_hosts=(".vendor.example",))
    event = cmd(0, "GetDiagnostics", urls=("ftp://diag.vendor.example/in/",), url_credentials=True)
    alerts = run_detector(det, [event])
    assert [a.severity for a in alerts] == [Severity.MEDIUM]
    assert alerts[0].evidence["reasons"] == ["credentials embedded in the URL"]
    det = make_detector(UntrustedUrl)
    event = cmd(0, "GetDiagnostics", urls=("https://diag.elsewhere.example/in/",), url_credentials=True)
    assert [a.severity for a in run_detector(det, [event])] == [Severity.HIGH]


def test_allow_list_flags_other_hosts_and_trusts_its_own() -> None:
    det = make_detector(UntrustedUrl, trusted_hosts=("fw.vendor.example",))
    events = [
        cmd(
            0, "SignedUpdateFirmware", urls=("http://fw.vendor.example/a.bin",)
        ),  # trusted: plain is accepted
        cmd(1, "SignedUpdateFirmware", urls=("https://fw.vendor.example.evil.net/a.bin",)),
    ]
    alerts = run_detector(det, events)
    assert len(alerts) == 1
    assert alerts[0].ts == at(seconds=1)
    assert alerts[0].severity is Severity.HIGH
    assert alerts[0].evidence["host"] == "fw.vendor.example.evil.net"


def test_learned_hosts_flag_a_new_firmware_host() -> None:
    usual = [
        cmd(i, "SignedUpdateFirmware", urls=("https://fw.vendor.example/a.bin",), station=f"CP-{i}")
        for i in range(20)
    ]
    logs = [cmd(30, "GetLog", "2.0.1", urls=("https://logs.vendor.example/up",))]
    odd = [cmd(40, "SignedUpdateFirmware", urls=("https://fw-vendor-updates.example.net/a.bin",))]
    alerts = run_detector(make_detector(UntrustedUrl), [*usual, *logs, *odd])
    assert len(alerts) == 1  # the first log host is not new: too few log locations seen to judge
    assert alerts[0].ts == at(seconds=40)
    assert alerts[0].severity is Severity.MEDIUM
    assert alerts[0].evidence["reasons"] == ["host never used for this purpose before"]
    assert run_detector(make_detector(UntrustedUrl, new_host_after=0), [*usual, *odd]) == []
    assert run_detector(make_detector(UntrustedUrl), [*usual[:5], *odd]) == []  # still learning


def booted(seconds: float, station: str, vendor: str) -> StationBooted:
    return an_event(StationBooted, ts=at(seconds=seconds), station=station, vendor=vendor)


@pytest.mark.parametrize(
    ("ocpp", "action", "url"),
    [
        ("1.6", "UpdateFirmware", "https://update.charge-fix.example/fw/latest.bin"),
        ("2.0.1", "UpdateFirmware", "https://files.fw-mirror.example/fw/latest.bin"),
        ("2.0.1", "GetLog", "https://files.fw-mirror.example/upload"),
        ("1.6", "GetDiagnostics", "sftp://collect.charge-fix.example/in/"),
    ],
)
def test_https_host_foreign_to_the_vendor_fires_from_the_first_command(
    ocpp: str, action: str, url: str
) -> None:
    events = [booted(0, "CP-1", "Alfen BV"), cmd(10, action, ocpp, urls=(url,), station="CP-1")]
    alerts = run_detector(make_detector(UntrustedUrl), events)
    assert [(a.ts, a.severity) for a in alerts] == [(at(seconds=10), Severity.MEDIUM)]
    assert alerts[0].evidence["reasons"] == [
        "host is neither the station vendor's nor used for this purpose before"
    ]


def test_vendor_host_near_misses() -> None:
    vendor_own = [
        booted(0, "CP-1", "Alfen BV"),
        booted(0, "CP-2", "Wallbox"),
        booted(0, "CP-3", "ABB"),
        cmd(10, "UpdateFirmware", urls=("https://firmware.alfen.example/6.4.0.bin",), station="CP-1"),
        cmd(11, "UpdateFirmware", urls=("https://update.wall-box.example/c2.bin",), station="CP-2"),
        cmd(12, "UpdateFirmware", urls=("https://fw.abb.example/tac.bin",), station="CP-3"),
    ]
    assert run_detector(make_detector(UntrustedUrl), vendor_own) == []
    # the operator's own firmware server: reported once, then it is a host this network uses
    operator = [
        booted(0, "CP-1", "Alfen BV"),
        booted(0, "CP-2", "Alfen BV"),
        cmd(10, "UpdateFirmware", urls=("https://fw.cpo.example/a.bin",), station="CP-1"),
        cmd(7200, "UpdateFirmware", urls=("https://fw.cpo.example/b.bin",), station="CP-2", message_id="x"),
    ]
    assert [a.ts for a in run_detector(make_detector(UntrustedUrl), operator)] == [at(seconds=10)]
    foreign = [
        booted(0, "CP-1", "Alfen BV"),
        cmd(10, "UpdateFirmware", urls=("https://x.other.example/a",), station="CP-1"),
    ]
    assert len(run_detector(make_detector(UntrustedUrl), foreign)) == 1
    assert run_detector(make_detector(UntrustedUrl, vendor_hosts=False), foreign) == []
    unknown_vendor = [cmd(10, "UpdateFirmware", urls=("https://x.other.example/a",), station="CP-1")]
    assert run_detector(make_detector(UntrustedUrl), unknown_vendor) == []


def test_same_location_to_many_stations_is_one_alert() -> None:
    events = [
        cmd(i, "UpdateFirmware", urls=("http://198.51.100.9/fw.bin",), station=f"CP-{i}") for i in range(5)
    ]
    alerts = run_detector(make_detector(UntrustedUrl), events)
    assert len(alerts) == 1
    assert alerts[0].count == 5
    assert set(alerts[0].stations) == {f"CP-{i}" for i in range(5)}
    assert alerts[0].evidence["location"] == "http://198.51.100.9/fw.bin"


# ------------------------------------------------------------------------------------------ burst


@pytest.mark.parametrize(
    ("ocpp", "action"), [("1.6", "RemoteStartTransaction"), ("2.0.1", "RequestStartTransaction")]
)
def test_remote_start_burst_at_one_station(ocpp: str, action: str) -> None:
    events = [cmd(i * 20, action, ocpp, connector=str(1 + i % 2)) for i in range(6)]
    alerts = run_detector(make_detector(Burst), events)
    assert len(alerts) == 1
    assert alerts[0].kind == "command.burst"
    assert alerts[0].ts == at(seconds=80)
    assert alerts[0].severity is Severity.MEDIUM
    assert alerts[0].evidence["family"] == "RemoteStart"


def test_burst_near_misses() -> None:
    retries = [cmd(i * 30, "RemoteStartTransaction") for i in range(4)]
    assert run_detector(make_detector(Burst), retries) == []
    spread = [cmd(i * 120, "UnlockConnector") for i in range(10)]  # one every two minutes
    assert run_detector(make_detector(Burst), spread) == []
    other = [cmd(i, "GetConfiguration") for i in range(20)]
    assert run_detector(make_detector(Burst), other) == []
    mixed = [cmd(i, a) for i, a in enumerate(["Reset", "UnlockConnector", "ChangeAvailability", "Reset"])]
    assert run_detector(make_detector(Burst), mixed) == []


def test_fleet_unlock_burst_is_high() -> None:
    events = [cmd(i * 0.5, "UnlockConnector", "2.0.1", station=f"CP-{i:03d}") for i in range(100)]
    alerts = run_detector(make_detector(Burst), events)
    assert len(alerts) == 1
    assert alerts[0].severity is Severity.HIGH
    assert alerts[0].ts == at(seconds=49.5)
    assert alerts[0].evidence["distinct_stations"] == 100


# ------------------------------------------------------------------------------------------ fleet_synchronised


@pytest.mark.parametrize("ocpp", ["1.6", "2.0.1"])
def test_same_profile_to_many_stations(ocpp: str) -> None:
    events = [
        cmd(i * 3, "SetChargingProfile", ocpp, station=f"CP-{i:03d}", fingerprint="f00d") for i in range(25)
    ]
    alerts = run_detector(make_detector(FleetSynchronised), events)
    assert len(alerts) == 1
    alert = alerts[0]
    assert alert.kind == "command.fleet_synchronised"
    assert alert.severity is Severity.HIGH
    assert alert.ts == at(seconds=27)  # the tenth station
    assert alert.count == 2  # at 10 and at 20 stations
    assert len(alert.stations) == 20


def test_fleet_synchronised_near_misses() -> None:
    slow = [cmd(i * 60, "SetChargingProfile", station=f"CP-{i}", fingerprint="f00d") for i in range(15)]
    assert run_detector(make_detector(FleetSynchronised), slow) == []  # at most 3 stations per 2 minutes
    different = [cmd(i, "SetChargingProfile", station=f"CP-{i}", fingerprint=f"p{i}") for i in range(15)]
    assert run_detector(make_detector(FleetSynchronised), different) == []
    same_station = [cmd(i, "SetChargingProfile", fingerprint="f00d") for i in range(15)]
    assert run_detector(make_detector(FleetSynchronised), same_station) == []
    reads = [cmd(i, "GetConfiguration", station=f"CP-{i}", fingerprint="cafe") for i in range(15)]
    assert run_detector(make_detector(FleetSynchronised), reads) == []
    no_print = [cmd(i, "SetChargingProfile", station=f"CP-{i}", fingerprint=None) for i in range(15)]
    assert run_detector(make_detector(FleetSynchronised), no_print) == []


def test_configuration_rollout_is_medium() -> None:
    events = [cmd(i, "ChangeConfiguration", station=f"CP-{i}", fingerprint="cfg") for i in range(10)]
    assert [a.severity for a in run_detector(make_detector(FleetSynchronised), events)] == [Severity.MEDIUM]


# ------------------------------------------------------------------------------------------ stale_local_list


def decision(seconds: float, token: str, status: str, ocpp: str = "1.6") -> AuthorizationDecision:
    return an_event(AuthorizationDecision, ts=at(seconds=seconds), token_ref=token, status=status, ocpp=ocpp)


@pytest.mark.parametrize("ocpp", ["1.6", "2.0.1"])
def test_local_list_with_blocked_token(ocpp: str) -> None:
    events = [
        decision(0, TOKEN_A, "Blocked", ocpp),
        decision(1, TOKEN_B, "Accepted", ocpp),
        cmd(60, "SendLocalList", ocpp, token_refs=(TOKEN_B, TOKEN_A.upper())),
        cmd(70, "SendLocalList", ocpp, token_refs=(TOKEN_A,)),
    ]
    alerts = run_detector(make_detector(StaleLocalList), events)
    assert len(alerts) == 1
    alert = alerts[0]
    assert alert.kind == "command.stale_local_list"
    assert alert.severity is Severity.HIGH
    assert alert.ts == at(seconds=60)
    assert alert.token_ref == TOKEN_A.upper()
    assert alert.count == 2


def test_stale_local_list_near_misses() -> None:
    unblocked = [
        decision(0, TOKEN_A, "Expired"),
        decision(5, TOKEN_A, "Accepted"),
        cmd(60, "SendLocalList", token_refs=(TOKEN_A,)),
    ]
    assert run_detector(make_detector(StaleLocalList), unblocked) == []
    unrelated = [decision(0, TOKEN_A, "ConcurrentTx"), cmd(60, "SendLocalList", token_refs=(TOKEN_A,))]
    assert run_detector(make_detector(StaleLocalList), unrelated) == []
    other_command = [
        decision(0, TOKEN_A, "Blocked"),
        cmd(60, "RemoteStartTransaction", token_refs=(TOKEN_A,)),
    ]
    assert run_detector(make_detector(StaleLocalList), other_command) == []


def test_expired_token_is_medium() -> None:
    events = [decision(0, TOKEN_A, "Expired"), cmd(60, "SendLocalList", token_refs=(TOKEN_A,))]
    assert [a.severity for a in run_detector(make_detector(StaleLocalList), events)] == [Severity.MEDIUM]


@pytest.mark.parametrize("cls", DETECTORS)
def test_state_is_bounded(cls: type) -> None:
    det = make_detector(cls, DetectorContext(limits=Limits(max_keys=20, ttl_s=600)))
    for i in range(300):
        for ev in (
            decision(i, f"tok1_{i:015d}", "Blocked"),
            cmd(i, "SetChargingProfile", station=f"CP-{i}", fingerprint=f"f{i}"),
            cmd(i, "Reset", station=f"CP-{i}"),
        ):
            if type(ev) in det.consumes:
                list(det.process(ev))
    assert det.state_size() <= 20 + 5


# ---------------------------------------------------------------------------------- end to end (real normaliser)


def scan(lines: list[dict[str, Any]]) -> list[Any]:
    """Raw capture lines through the real pipeline (normaliser, engine) with the command detectors only."""
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


def wire_ts(seconds: float) -> str:
    whole = int(seconds)
    return f"2026-03-01T08:{whole // 60:02d}:{whole % 60:02d}.{int(seconds * 1000) % 1000:03d}Z"


def frame(seconds: float, ocpp: str, sender: str, body: list[Any], station: str = "CP-9") -> dict[str, Any]:
    return {"ts": wire_ts(seconds), "station": station, "ocpp": ocpp, "from": sender, "frame": body}


def test_end_to_end_command_kinds_ocpp16() -> None:
    card = "04A2B3C4D5E6F7"
    lines = [
        frame(0, "1.6", "station", [2, "a1", "Authorize", {"idTag": card}]),
        frame(0.1, "1.6", "csms", [3, "a1", {"idTagInfo": {"status": "Blocked"}}]),
        frame(
            5,
            "1.6",
            "csms",
            [
                2,
                "u1",
                "UpdateFirmware",
                {"location": "ftp://u:pw@198.51.100.3/fw.bin", "retrieveDate": wire_ts(5)},
            ],
        ),
        frame(5.1, "1.6", "station", [3, "u1", {}]),
        frame(
            10,
            "1.6",
            "csms",
            [
                2,
                "l1",
                "SendLocalList",
                {
                    "listVersion": 2,
                    "updateType": "Full",
                    "localAuthorizationList": [{"idTag": card, "idTagInfo": {"status": "Accepted"}}],
                },
            ],
        ),
        frame(10.1, "1.6", "station", [3, "l1", {"status": "Accepted"}]),
    ]
    profile = {
        "connectorId": 0,
        "csChargingProfiles": {
            "chargingProfileId": 7,
            "stackLevel": 1,
            "chargingProfilePurpose": "ChargePointMaxProfile",
            "chargingProfileKind": "Absolute",
            "chargingSchedule": {
                "chargingRateUnit": "W",
                "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 0}],
            },
        },
    }
    for i in range(12):
        station = f"CP-{i:02d}"
        lines.append(
            frame(20 + i, "1.6", "csms", [2, f"p{i}", "SetChargingProfile", profile], station=station)
        )
        lines.append(frame(20.5 + i, "1.6", "station", [3, f"p{i}", {"status": "Accepted"}], station=station))
    alerts = scan(lines)
    assert [(a.kind, a.severity, a.ts) for a in alerts] == [
        ("command.untrusted_url", Severity.HIGH, at(seconds=5)),
        ("command.stale_local_list", Severity.HIGH, at(seconds=10)),
        ("command.fleet_synchronised", Severity.HIGH, at(seconds=29)),
    ]
    assert card not in repr(alerts)
    assert "pw" not in alerts[0].evidence["location"]


def test_end_to_end_request_start_burst_ocpp201() -> None:
    lines = []
    for i in range(5):
        request = {"idToken": {"idToken": f"CARD{i}", "type": "ISO14443"}, "remoteStartId": i, "evseId": 1}
        lines.append(frame(i * 30, "2.0.1", "csms", [2, f"r{i}", "RequestStartTransaction", request]))
        lines.append(frame(i * 30 + 0.2, "2.0.1", "station", [3, f"r{i}", {"status": "Accepted"}]))
    alerts = scan(lines)
    assert [(a.kind, a.ts) for a in alerts] == [("command.burst", at(seconds=120))]
