"""The capture recorder: tokens pseudonymised inside frames, secrets redacted, rotation with gzip; config files."""

from __future__ import annotations

import asyncio
import datetime as dt
import gzip
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chargeguard.errors import ConfigError
from chargeguard.sources.ocpp.gateway.capture_writer import CaptureWriter
from chargeguard.sources.ocpp.gateway.config import load_config, parse_config
from chargeguard.sources.ocpp.gateway.metrics import GatewayMetrics
from chargeguard.sources.ocpp.gateway.observer import CollectingObserver, ObserverFanout, rfc3339
from chargeguard.sources.ocpp.gateway.redact import REDACTED, sanitise_frame
from chargeguard.vault.pseudonyms import Pseudonymiser

TOKENS = [
    "04A2B3C4D5E6F7",
    "PARENT-0001",
    "EMAID-DE-ABC-123",
    "ADDITIONAL-77",
    "GROUP-TOKEN-9",
    "LOCAL-LIST-5",
]
SECRETS = ["0123456789abcdef0123456789abcdef01234567", "basic-auth-password-42", "apn-secret", "1234", "vpn-pass",
           "vpn-key-material", "ftp-password"]  # fmt: skip


@pytest.fixture
def pseudonymiser() -> Pseudonymiser:
    return Pseudonymiser({1: b"k" * 32}, 1)


FRAMES: list[list[Any]] = [
    [2, "1", "Authorize", {"idTag": TOKENS[0]}],
    [3, "1", {"idTagInfo": {"status": "Accepted", "parentIdTag": TOKENS[1]}}],
    [2, "2", "TransactionEvent", {"idToken": {"idToken": TOKENS[2], "type": "eMAID",
                                              "additionalInfo": [{"additionalIdToken": TOKENS[3], "type": "x"}]}}],
    [3, "2", {"idTokenInfo": {"status": "Accepted", "groupIdToken": {"idToken": TOKENS[4], "type": "Central"}}}],
    [2, "3", "SendLocalList", {"listVersion": 1, "updateType": "Full",
                               "localAuthorizationList": [{"idTag": TOKENS[5]}]}],
    [2, "4", "ChangeConfiguration", {"key": "AuthorizationKey", "value": SECRETS[0]}],
    [2, "5", "SetVariables", {"setVariableData": [{"attributeValue": SECRETS[1], "component": {"name": "SecurityCtrlr"},
                                                   "variable": {"name": "BasicAuthPassword"}}]}],
    [2, "6", "SetNetworkProfile", {"configurationSlot": 1, "connectionData": {
        "apn": {"apn": "internet", "apnPassword": SECRETS[2], "simPin": SECRETS[3], "apnAuthentication": "AUTO"},
        "vpn": {"server": "v", "user": "u", "password": SECRETS[4], "key": SECRETS[5], "type": "IPSec"},
        "ocppCsmsUrl": "wss://csms.example/ocpp"}}],
    [2, "7", "UpdateFirmware", {"firmware": {"location": f"ftp://user:{SECRETS[6]}@fw.example/f.bin"}}],
    [3, "8", {"configurationKey": [{"key": "AuthorizationKey", "readonly": False, "value": SECRETS[0]}]}],
    [2, "9", "Authorize", {"idToken": {"idToken": "", "type": "NoAuthorization"}}],
]  # fmt: skip


def test_sanitise_replaces_every_token_and_secret(pseudonymiser: Pseudonymiser) -> None:
    clean = [sanitise_frame(frame, pseudonymiser) for frame in FRAMES]
    text = json.dumps(clean)
    for raw in TOKENS + SECRETS:
        assert raw not in text
    assert clean[0][3]["idTag"] == pseudonymiser(TOKENS[0])
    assert clean[2][3]["idToken"]["additionalInfo"][0]["additionalIdToken"] == pseudonymiser(TOKENS[3])
    assert clean[3][2]["idTokenInfo"]["groupIdToken"]["idToken"] == pseudonymiser(TOKENS[4])
    assert clean[5][3] == {"key": "AuthorizationKey", "value": REDACTED}
    assert clean[7][3]["connectionData"]["apn"]["apn"] == "internet"
    assert clean[7][3]["connectionData"]["ocppCsmsUrl"] == "wss://csms.example/ocpp"
    assert clean[8][3]["firmware"]["location"] == "ftp://fw.example/f.bin"
    assert clean[10][3]["idToken"]["idToken"] == ""
    assert FRAMES[0][3]["idTag"] == TOKENS[0]  # the input is not modified
    # pseudonyms fit a 1.6 idTag and pass through a second sanitising unchanged
    assert len(clean[0][3]["idTag"]) == 20
    assert sanitise_frame(clean[0], pseudonymiser) == clean[0]


def test_sanitise_copies_only_what_changes_and_keeps_the_free_text_net(pseudonymiser: Pseudonymiser) -> None:
    ts = "2026-03-01T08:00:00Z"
    sample = {"value": "12345.6", "measurand": "Energy.Active.Import.Register"}
    meter = [
        2,
        "m",
        "MeterValues",
        {"connectorId": 1, "meterValue": [{"timestamp": ts, "sampledValue": [sample]}]},
    ]
    assert sanitise_frame(meter, pseudonymiser)[3] is meter[3]  # nothing to change: no copy
    nested = {"vendorId": "X", "data": {"note": f"{ts} card 04C10AED0CA8D1", "ok": ts}, "keep": [1, 2]}
    frame = [2, "d", "DataTransfer", nested]
    clean = sanitise_frame(frame, pseudonymiser)
    assert "04C10AED0CA8D1" not in json.dumps(clean)  # a timestamp prefix does not hide a card number
    assert clean[3]["data"]["ok"] == ts and clean[3]["keep"] is nested["keep"]
    assert nested["data"]["note"].endswith("04C10AED0CA8D1")  # the input is not modified


def _line(i: int, frame: list[Any]) -> dict[str, Any]:
    return {"ts": f"2026-03-01T08:00:{i:02d}.000Z", "station": "CP-1", "ocpp": "1.6", "from": "station",
            "frame": frame}  # fmt: skip


def _read_all(directory: Path) -> list[dict[str, Any]]:
    lines: list[dict[str, Any]] = []
    for path in sorted(directory.iterdir(), key=lambda p: int(p.name.split("-")[-1].split(".")[0])):
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8") as handle:
            lines.extend(json.loads(line) for line in handle)
    return lines


def test_writer_rotates_by_size_and_gzips(tmp_path: Path, pseudonymiser: Pseudonymiser) -> None:
    writer = CaptureWriter(tmp_path, pseudonymiser, max_bytes=1024)
    for i in range(40):
        writer.on_frame(_line(i % 60, [2, str(i), "Authorize", {"idTag": TOKENS[0]}]))
    writer.on_connection(
        {"ts": "2026-03-01T08:01:00.000Z", "station": "CP-1", "event": "disconnect", "detail": {}}
    )
    writer.close()
    files = sorted(tmp_path.iterdir())
    assert len(files) > 3 and all(f.name.endswith(".jsonl.gz") for f in files)
    assert all(f.stat().st_size < 1024 for f in files)
    lines = _read_all(tmp_path)
    assert [line["frame"][1] for line in lines[:-1]] == [str(i) for i in range(40)]
    assert lines[-1]["event"] == "disconnect"
    assert TOKENS[0] not in json.dumps(lines)


def test_writer_batches_after_the_relay_step_in_order(tmp_path: Path, pseudonymiser: Pseudonymiser) -> None:
    writer = CaptureWriter(tmp_path, pseudonymiser, batch_lines=4)

    async def relay() -> None:
        writer.on_frame(_line(0, [2, "0", "Authorize", {"idTag": TOKENS[0]}]))
        assert writer.lines_written == 0  # still this relay step: the frame goes out first
        await asyncio.sleep(0)
        assert writer.lines_written == 1
        for i in range(1, 6):  # a full batch is written at once
            writer.on_frame(_line(i, [2, str(i), "Heartbeat", {}]))
        assert writer.lines_written == 5
        writer.flush()
        assert writer.lines_written == 6

    asyncio.run(relay())
    writer.close()
    lines = _read_all(tmp_path)
    assert [line["frame"][1] for line in lines] == [str(i) for i in range(6)]
    assert TOKENS[0] not in json.dumps(lines)


def test_writer_rotates_by_age(tmp_path: Path, pseudonymiser: Pseudonymiser) -> None:
    now = [0.0]
    writer = CaptureWriter(tmp_path, pseudonymiser, max_age_s=60, clock=lambda: now[0])
    writer.on_frame(_line(0, [2, "1", "Heartbeat", {}]))
    now[0] = 61
    writer.on_frame(_line(1, [2, "2", "Heartbeat", {}]))
    writer.flush()
    assert writer.current_path is not None and writer.current_path.suffix == ".jsonl"
    writer.close()
    assert len(list(tmp_path.glob("*.jsonl.gz"))) == 2


def test_fanout_isolates_a_failing_observer() -> None:
    class Broken:
        def on_frame(self, line: dict[str, Any]) -> None:
            raise RuntimeError(TOKENS[0])

        def on_connection(self, line: dict[str, Any]) -> None:
            raise RuntimeError(TOKENS[0])

    collector = CollectingObserver()
    fanout = ObserverFanout([Broken(), collector])
    fanout.on_frame(_line(0, [2, "1", "Heartbeat", {}]))
    fanout.on_connection({"event": "connect"})
    assert fanout.failures == 2 and len(collector.lines) == 2


def test_rfc3339_is_utc_with_millis() -> None:
    moment = dt.datetime(2026, 3, 1, 9, 0, 0, 123456, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    assert rfc3339(moment) == "2026-03-01T08:00:00.123Z"


def test_metrics_render_prometheus_text() -> None:
    metrics = GatewayMetrics()
    metrics.inc("chargeguard_gateway_frames_denied_total", reason='we"ird')
    metrics.set("chargeguard_gateway_open_connections", 3)
    text = metrics.render()
    assert "# TYPE chargeguard_gateway_frames_denied_total counter" in text
    assert 'chargeguard_gateway_frames_denied_total{reason="we\\"ird"} 1.0' in text
    assert "chargeguard_gateway_open_connections 3.0" in text


MINIMAL = {"listen": {"plain_port": 9000}, "upstream": {"url": "ws://127.0.0.1:9001/ocpp"}}


def test_config_env_overrides_and_refusals(tmp_path: Path) -> None:
    config = parse_config(MINIMAL, env={"CHARGEGUARD_GATEWAY_UPSTREAM_URL": "wss://csms.example/ocpp/"})
    assert config.upstream.url == "wss://csms.example/ocpp"
    assert config.policy.max_frame_bytes == 65536
    with pytest.raises(ConfigError, match="UPSTREAM_PASSWORD"):
        parse_config({**MINIMAL, "upstream": {"url": "ws://x", "password": "p"}}, env={})
    with pytest.raises(ConfigError, match="serial_number"):
        parse_config({**MINIMAL, "stations": {"CP-1": {"security_profile": 3}}}, env={})
    with pytest.raises(ConfigError, match="password_hash"):
        parse_config({**MINIMAL, "stations": {"CP-1": {"security_profile": 2}}}, env={})
    with pytest.raises(ConfigError, match="ws://"):
        parse_config({**MINIMAL, "upstream": {"url": "http://x"}}, env={})
    with pytest.raises(ConfigError, match="tls"):
        parse_config({**MINIMAL, "listen": {"tls_port": 9443}}, env={})
    secret = parse_config(
        {**MINIMAL, "upstream": {"url": "ws://x", "basic_auth": "configured"}},
        env={"CHARGEGUARD_GATEWAY_UPSTREAM_PASSWORD": "upstream-secret"},
    )
    assert "upstream-secret" not in repr(secret)


def test_load_config_resolves_relative_paths(tmp_path: Path) -> None:
    (tmp_path / "gw.toml").write_text(
        '[listen]\ntls_port = 8443\n[tls]\ncert = "s.pem"\nkey = "s.key"\n'
        '[upstream]\nurl = "wss://csms.example/ocpp"\nca = "/etc/ca.pem"\n',
        encoding="utf-8",
    )
    config = load_config(tmp_path / "gw.toml", env={})
    assert config.tls is not None and config.tls.cert == tmp_path / "s.pem"
    assert config.upstream.ca == Path("/etc/ca.pem")
    (tmp_path / "bad.toml").write_text("[listen\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="TOML"):
        load_config(tmp_path / "bad.toml", env={})
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.toml", env={})


_TOKEN_KEYS = ["idTag", "parentIdTag", "idToken", "additionalIdToken", "IDTAG", "emaid", "contractId"]
_json_leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=8))
_payloads = st.recursive(
    _json_leaf,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(
            st.sampled_from([*_TOKEN_KEYS, "status", "data", "value", "key"]), children, max_size=5
        ),
    ),
    max_leaves=30,
)


def _token_values(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [
            v for k, v in node.items() if k.lower() in {t.lower() for t in _TOKEN_KEYS} and isinstance(v, str)
        ]
        return found + [t for v in node.values() for t in _token_values(v)]
    if isinstance(node, list):
        return [t for v in node for t in _token_values(v)]
    return []


@settings(max_examples=200, deadline=None)
@given(payload=_payloads, secret=st.text(min_size=1, max_size=24).filter(lambda s: s.strip() != ""))
def test_no_raw_token_survives_sanitising(payload: Any, secret: str) -> None:
    pseudonymiser = Pseudonymiser({1: b"k" * 32}, 1)
    wrapped = {"idTag": secret, "nested": [payload, {"idToken": {"idToken": secret}}]}
    clean = sanitise_frame([2, "1", "Authorize", wrapped], pseudonymiser)[3]
    for value in _token_values(clean):
        assert value == "" or pseudonymiser.is_pseudonym(value)
    assert clean["idTag"] == pseudonymiser(secret)
