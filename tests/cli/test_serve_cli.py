"""``chargeguard serve``: --invite issues a TOKEN_A kept only as a hash; the served app enforces it over HTTP."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import typer
from typer.testing import CliRunner

from chargeguard.cli import serve
from chargeguard.sources.ocpi.connector.headers import encode_token
from chargeguard.vault.keys import write_new_master_key_file
from waiting import answers, wait_until

_RUNNER = """
import typer
from chargeguard.cli import serve
app = typer.Typer()
@app.callback()
def main() -> None: ...
serve.register(app)
app()
"""


def _wait_until(ready: Callable[[], bool], procs: list[subprocess.Popen[bytes]], what: str) -> None:
    """Poll ``ready()`` until it is true; fail early with the server's stderr when a process died."""

    def died() -> str | None:
        for proc in procs:
            if proc.poll() is not None:
                return f"serve exited {proc.returncode}: {proc.communicate()[1][-2000:]!r}"
        return None

    wait_until(ready, died=died, what=what)


def _app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def main() -> None: ...

    serve.register(app)
    return app


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_invite_then_serve(tmp_path: Path) -> None:
    write_new_master_key_file(tmp_path / "master.key")
    port = _free_port()
    config = tmp_path / "ocpi.toml"
    config.write_text(
        f"""[ocpi]
base_url = "http://127.0.0.1:{port}"
country_code = "DE"
party_id = "CGD"
port = {port}
partners_file = "{tmp_path / "partners.json"}"
master_key_file = "{tmp_path / "master.key"}"
"""
    )
    settings = tmp_path / "settings.toml"
    settings.write_text(f'home = "{tmp_path / "home"}"\n')
    env = {**os.environ, "CHARGEGUARD_PSEUDONYM_KEY": "ab" * 32}
    result = CliRunner().invoke(
        _app(), ["serve", "--config", str(config), "--settings", str(settings), "--invite", "emsp-1"], env=env
    )
    assert result.exit_code == 0, result.output
    token_a = result.output.split("): ")[1].split()[0]
    assert token_a not in (tmp_path / "partners.json").read_text()

    proc = subprocess.Popen(
        [sys.executable, "-c", _RUNNER, "serve", "--config", str(config), "--settings", str(settings)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_until(lambda: answers(base + "/ocpi/versions"), [proc], "serve")
        ok = httpx.get(base + "/ocpi/versions", headers={"Authorization": encode_token(token_a)})
        assert ok.status_code == 200 and ok.json()["data"][0]["version"] == "2.2.1"
        module = httpx.get(
            base + "/ocpi/2.2.1/cpo/locations", headers={"Authorization": encode_token(token_a)}
        )
        assert module.status_code == 401
        bad = httpx.get(base + "/ocpi/versions", headers={"Authorization": encode_token("nope")})
        assert bad.status_code == 401 and bad.json()["status_code"] == 2000
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=60)
    assert token_a.encode() not in err


def test_bad_config_is_a_clear_usage_error(tmp_path: Path) -> None:
    config = tmp_path / "ocpi.toml"
    config.write_text('[ocpi]\nbase_url = "ftp://x"\ncountry_code = "DEU"\nparty_id = "CGD"\n')
    result = CliRunner().invoke(_app(), ["serve", "--config", str(config)])
    assert result.exit_code == 2
    assert "base_url" in result.output and "country_code" in result.output


def _config(tmp_path: Path, name: str, port: int, party: str, roles: str) -> Path:
    write_new_master_key_file(tmp_path / f"{name}.key")
    path = tmp_path / f"{name}.toml"
    path.write_text(
        f"""[ocpi]
base_url = "http://127.0.0.1:{port}"
country_code = "DE"
party_id = "{party}"
roles = {roles}
port = {port}
partners_file = "{tmp_path / f"{name}-partners.json"}"
master_key_file = "{tmp_path / f"{name}.key"}"
"""
    )
    return path


@pytest.mark.slow
def test_register_with_a_second_serving_platform(tmp_path: Path) -> None:
    """Two `chargeguard serve` processes: B registers with A using A's TOKEN_A from the environment."""
    port_a, port_b = _free_port(), _free_port()
    config_a = _config(tmp_path, "a", port_a, "CPA", '["CPO"]')
    config_b = _config(tmp_path, "b", port_b, "EMB", '["EMSP"]')
    settings = tmp_path / "settings.toml"
    settings.write_text(f'home = "{tmp_path / "home"}"\n')
    env = {**os.environ, "CHARGEGUARD_PSEUDONYM_KEY": "ab" * 32}
    invited = CliRunner().invoke(
        _app(), ["serve", "--config", str(config_a), "--settings", str(settings), "--invite", "b"], env=env
    )
    token_a = invited.output.split("): ")[1].split()[0]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _RUNNER, "serve", "--config", str(config_a), "--settings", str(settings)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
    ]
    try:
        _wait_until(lambda: answers(f"http://127.0.0.1:{port_a}/ocpi/versions"), procs, "platform A")
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    _RUNNER,
                    "serve",
                    "--config",
                    str(config_b),
                    "--settings",
                    str(settings),
                    "--register-with",
                    f"http://127.0.0.1:{port_a}/ocpi/versions",
                    "--partner-name",
                    "a",
                ],
                env={**env, "CHARGEGUARD_OCPI_TOKEN_A": token_a},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
        )

        def registered() -> bool:
            path = tmp_path / "b-partners.json"
            doc = json.loads(path.read_text()) if path.exists() else {}
            return any(p["registered"] for p in doc.get("partners", []))

        _wait_until(registered, procs, "B registering with A")
        a_doc = json.loads((tmp_path / "a-partners.json").read_text())
        assert a_doc["partners"][0]["registered"] and a_doc["partners"][0]["roles"][0]["party_id"] == "EMB"
        b_text = (tmp_path / "b-partners.json").read_text()
        assert token_a not in b_text and json.loads(b_text)["partners"][0]["outgoing_sealed"]["ciphertext"]
        # TOKEN_A is dead at A now
        dead = httpx.get(
            f"http://127.0.0.1:{port_a}/ocpi/versions", headers={"Authorization": encode_token(token_a)}
        )
        assert dead.status_code == 401
    finally:
        errors = b""
        for proc in procs:
            proc.terminate()
            errors += proc.communicate(timeout=60)[1]
    assert token_a.encode() not in errors
