"""CLI commands: ``gateway`` (run the inline OCPP security gateway) and ``gateway-hash-password``."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import structlog
import typer

from chargeguard.errors import ChargeguardError
from chargeguard.sources.ocpp.gateway.auth import hash_password, password_problem
from chargeguard.sources.ocpp.gateway.capture_writer import CaptureWriter
from chargeguard.sources.ocpp.gateway.config import GatewayConfig, load_config
from chargeguard.sources.ocpp.gateway.observer import FrameObserver, ObserverFanout
from chargeguard.sources.ocpp.gateway.proxy import Gateway
from chargeguard.vault.keys import load_pseudonym_keys
from chargeguard.vault.pseudonyms import Pseudonymiser

log = structlog.get_logger("chargeguard.cli.gateway")


def _observers(
    config: GatewayConfig, key_file: Path | None
) -> tuple[list[FrameObserver], CaptureWriter | None]:
    if config.capture_dir is None:
        return [], None
    has_captures = config.capture_dir.exists() and any(config.capture_dir.glob("capture-*"))
    keys, generated = load_pseudonym_keys(
        env_key=os.environ.get("CHARGEGUARD_PSEUDONYM_KEY"),
        key_file=key_file,
        store_has_data=has_captures,
    )
    if generated is not None:
        log.warning("gateway.key.generated", path=str(generated))
    writer = CaptureWriter(
        config.capture_dir,
        Pseudonymiser(keys, max(keys)),
        max_bytes=config.capture_max_bytes,
        max_age_s=config.capture_max_age_s,
    )
    return [writer], writer


async def run_gateway(
    config: GatewayConfig,
    observer: FrameObserver,
    stop: asyncio.Event | None = None,
    on_started: Callable[[Gateway], None] | None = None,
) -> None:
    """Run until SIGINT/SIGTERM (or ``stop`` is set), then shut down gracefully."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    gateway = Gateway(config, observer)
    await gateway.start()
    if on_started is not None:
        on_started(gateway)
    try:
        await stop.wait()
    finally:
        await gateway.stop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the main app."""

    @app.command("gateway")
    def gateway_command(
        config: Annotated[Path, typer.Option("--config", help="Gateway configuration (TOML).", exists=True)],
        key_file: Annotated[
            Path | None,
            typer.Option(
                "--key-file", envvar="CHARGEGUARD_KEY_FILE", help="Pseudonym key file for captures."
            ),
        ] = None,
    ) -> None:
        """Run the inline OCPP security gateway in front of the operator's central system."""
        try:
            settings = load_config(config)
            observers, writer = _observers(settings, key_file)
        except ChargeguardError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from exc
        try:
            asyncio.run(run_gateway(settings, ObserverFanout(observers)))
        finally:
            if writer is not None:
                writer.close()

    @app.command("gateway-hash-password")
    def hash_password_command(
        version: Annotated[
            str, typer.Option("--ocpp", help="OCPP version of the station: 1.6, 2.0.1 or 2.1.")
        ],
    ) -> None:
        """Read a station password from stdin (or a prompt) and print its scrypt hash for the configuration."""
        if sys.stdin.isatty():
            password = typer.prompt("station password", hide_input=True)
        else:
            password = sys.stdin.readline().rstrip("\r\n")
        if version not in ("1.6", "2.0.1", "2.1"):
            typer.echo("error: --ocpp must be 1.6, 2.0.1 or 2.1", err=True)
            raise typer.Exit(2)
        problem = password_problem(version, password)
        if problem is not None:
            typer.echo(f"error: {problem}", err=True)
            raise typer.Exit(2)
        typer.echo(hash_password(password))
