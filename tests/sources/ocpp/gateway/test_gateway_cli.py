"""The ``gateway`` CLI commands, and the gateway end to end writing a pseudonymised capture."""

from __future__ import annotations

import asyncio
import gzip
import json
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner
from websockets.asyncio.client import connect
from websockets.headers import build_authorization_basic

from chargeguard.cli import gateway as gateway_cli
from chargeguard.sources.ocpp.gateway.auth import PasswordHash
from chargeguard.sources.ocpp.gateway.config import load_config
from chargeguard.sources.ocpp.gateway.observer import ObserverFanout
from chargeguard.sources.ocpp.gateway.proxy import Gateway

PW16 = "0123456789abcdef0123456789abcdef01234567"
TOKEN = "04A2B3C4D5E6F7"


@pytest.fixture
def app() -> typer.Typer:
    app = typer.Typer()
    gateway_cli.register(app)
    return app


def test_hash_password_command(app: typer.Typer) -> None:
    result = CliRunner().invoke(app, ["gateway-hash-password", "--ocpp", "1.6"], input=PW16 + "\n")
    assert result.exit_code == 0, result.output
    encoded = result.output.strip()
    assert PW16 not in encoded and PasswordHash.parse(encoded).verify(PW16)
    short = CliRunner().invoke(app, ["gateway-hash-password", "--ocpp", "2.0.1"], input="short\n")
    assert short.exit_code == 2 and "16-40" in short.output


def test_gateway_command_refuses_bad_config(app: typer.Typer, tmp_path: Path) -> None:
    (tmp_path / "gw.toml").write_text(
        '[listen]\nplain_port = 0\n[upstream]\nurl = "http://nope"\n', encoding="utf-8"
    )
    result = CliRunner().invoke(app, ["gateway", "--config", str(tmp_path / "gw.toml")])
    assert result.exit_code == 2 and "ws://" in result.output


def test_end_to_end_capture_is_pseudonymised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, harness: Any, hashes_by_password: Any
) -> None:
    monkeypatch.setenv("CHARGEGUARD_PSEUDONYM_KEY", "ab" * 32)
    monkeypatch.setenv("CHARGEGUARD_HOME", str(tmp_path / "home"))

    async def scenario() -> None:
        async with harness() as h:  # reuse the harness's central system
            (tmp_path / "gw.toml").write_text(
                f'capture_dir = "captures"\n[listen]\nplain_port = 0\n'
                f'[upstream]\nurl = "{h.csms.url}"\n'
                f"[stations.CP-1]\nsecurity_profile = 1\nallow_plain = true\n"
                f'password_hash = "{hashes_by_password(PW16)}"\n',
                encoding="utf-8",
            )
            config = load_config(tmp_path / "gw.toml")
            running = gateway_cli._observers(config, None)
            assert len(running.observers) == 2  # the capture recorder and live detection
            stop = asyncio.Event()
            started: list[Gateway] = []
            runner = asyncio.create_task(
                gateway_cli.run_gateway(config, ObserverFanout(running.observers), stop, started.append)
            )
            while not started:
                await asyncio.sleep(0.01)
            url = f"ws://127.0.0.1:{started[0].plain_port}/ocpp/CP-1"
            headers = {"Authorization": build_authorization_basic("CP-1", PW16)}
            async with connect(url, subprotocols=["ocpp1.6"], additional_headers=headers, proxy=None) as ws:  # type: ignore[list-item]
                await ws.send(json.dumps([2, "a1", "Authorize", {"idTag": TOKEN}]))
                answer = json.loads(await ws.recv())
                assert answer[:2] == [3, "a1"]
            await asyncio.sleep(0.05)
            stop.set()
            await runner
            running.close()

    asyncio.run(scenario())
    files = list((tmp_path / "captures").glob("*.jsonl.gz"))
    assert len(files) == 1
    raw = gzip.decompress(files[0].read_bytes()).decode()
    assert TOKEN not in raw and PW16 not in raw
    lines = [json.loads(line) for line in raw.splitlines()]
    assert [line.get("event") for line in lines] == ["connect", None, None, "disconnect"]
    assert lines[1]["frame"][3]["idTag"].startswith("tok1_")
    store = tmp_path / "home" / "chargeguard.db"
    assert (
        store.exists() and TOKEN.encode() not in store.read_bytes()
    )  # live detection persisted, pseudonymised


def test_enforce_mode_wires_rewriter_cache_clearing_and_the_allowlist(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hashes_by_password: Any
) -> None:
    monkeypatch.setenv("CHARGEGUARD_PSEUDONYM_KEY", "ab" * 32)
    monkeypatch.setenv("CHARGEGUARD_HOME", str(tmp_path / "home"))
    (tmp_path / "gw.toml").write_text(
        '[listen]\nplain_port = 0\n[upstream]\nurl = "ws://127.0.0.1:9/csms"\n[detection]\nmode = "enforce"\n'
        f'[stations.CP-1]\nsecurity_profile = 1\nallow_plain = true\npassword_hash = "{hashes_by_password(PW16)}"\n',
        encoding="utf-8",
    )
    running = gateway_cli._observers(load_config(tmp_path / "gw.toml"), None)
    try:
        assert running.rewriter is not None and running.cache_clearer is not None
        watch = running.allowlist_watch
        assert watch is not None and running.cache_clearer.still_enforced == watch.verdict
        live = running.observers[-1]
        assert running.cache_clearer.on_alert in live.sinks  # closed alerts release the caches
    finally:
        running.close()
    monitor = tmp_path / "monitor.toml"
    monitor.write_text((tmp_path / "gw.toml").read_text(encoding="utf-8").replace('"enforce"', '"monitor"'))
    running = gateway_cli._observers(load_config(monitor), None)
    try:
        assert running.rewriter is None and running.cache_clearer is None and running.allowlist_watch is None
    finally:
        running.close()
