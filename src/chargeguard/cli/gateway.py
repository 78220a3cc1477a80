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

from chargeguard.allowlist import AllowList
from chargeguard.cli.common import close_in_reverse
from chargeguard.errors import ChargeguardError, ConfigError
from chargeguard.events import Alert, Severity
from chargeguard.inventory import load_inventory
from chargeguard.live import LiveDetection
from chargeguard.settings import Settings, load_settings
from chargeguard.sinks.jsonl import JsonlAlertWriter
from chargeguard.sinks.store import StoreSink
from chargeguard.sinks.webhook import WebhookSink
from chargeguard.sources.ocpp.gateway.allowlist_watch import AllowListWatch
from chargeguard.sources.ocpp.gateway.auth import hash_password, password_problem
from chargeguard.sources.ocpp.gateway.cache_clear import AuthorizationCacheClearer
from chargeguard.sources.ocpp.gateway.capture_writer import CaptureWriter
from chargeguard.sources.ocpp.gateway.config import GatewayConfig, load_config
from chargeguard.sources.ocpp.gateway.enforce import AnswerRewriter, BlockTokensUnderAlert
from chargeguard.sources.ocpp.gateway.observer import FrameObserver, ObserverFanout
from chargeguard.sources.ocpp.gateway.proxy import Gateway
from chargeguard.store import Store
from chargeguard.vault.keys import load_pseudonym_keys
from chargeguard.vault.pseudonyms import Pseudonymiser

log = structlog.get_logger("chargeguard.cli.gateway")


class _Running:
    """What the gateway command opened besides the gateway itself, closed in reverse order on exit."""

    def __init__(self) -> None:
        self.observers: list[FrameObserver] = []
        self.rewriter: AnswerRewriter | None = None
        self.cache_clearer: AuthorizationCacheClearer | None = None
        self.allowlist_watch: AllowListWatch | None = None
        self.closers: list[Callable[[], None]] = []

    def close(self) -> None:
        close_in_reverse(self.closers, log, "gateway.shutdown.failed")


def _observers(config: GatewayConfig, key_file: Path | None) -> _Running:
    """The capture recorder and live detection (with enforce mode), as configured."""
    running = _Running()
    detection = config.detection
    settings = load_settings(None, lateness_s=0.0, db_url=detection.db_url, key_file=key_file)
    store = None
    if detection.enabled:
        settings.home.mkdir(parents=True, exist_ok=True)
        store = Store.open(settings.effective_db_url)
        running.closers.append(store.close)
    has_captures = (
        config.capture_dir is not None
        and config.capture_dir.exists()
        and any(config.capture_dir.glob("capture-*"))
    )
    if config.capture_dir is None and store is None:
        return running
    keys, generated = load_pseudonym_keys(
        env_key=os.environ.get("CHARGEGUARD_PSEUDONYM_KEY"),
        key_file=settings.effective_key_file,
        store_has_data=has_captures or (store is not None and store.has_pseudonymised_data()),
    )
    if generated is not None:
        log.warning("gateway.key.generated", path=str(generated))
    pseudonymiser = Pseudonymiser(keys, max(keys))
    if config.capture_dir is not None:
        writer = CaptureWriter(
            config.capture_dir,
            pseudonymiser,
            max_bytes=config.capture_max_bytes,
            max_age_s=config.capture_max_age_s,
        )
        running.observers.append(writer)
        running.closers.append(writer.close)
    if store is not None:
        store.mark_pseudonymised([pseudonymiser.current_version])
        running.observers.append(_live_detection(config, settings, store, pseudonymiser, running))
    return running


def _live_detection(
    config: GatewayConfig, settings: Settings, store: Store, pseudonymiser: Pseudonymiser, running: _Running
) -> LiveDetection:
    detection = config.detection
    sink = StoreSink(store)

    def to_store(alert: Alert) -> None:
        sink.on_close(alert)
        sink.flush()  # an alert reaches the store within the call that raised it; other rows are batched

    sinks: list[Callable[[Alert], None]] = [to_store]
    if detection.mode == "enforce":
        running.cache_clearer = AuthorizationCacheClearer(state_file=config.enforce_state)
        sinks.append(running.cache_clearer.on_alert)
    if detection.alerts_jsonl is not None:
        stream = detection.alerts_jsonl.open("ab")
        running.closers.append(stream.close)
        sinks.append(JsonlAlertWriter(stream, flush_each=True))
    if detection.webhook_url is not None:
        secret = os.environ.get("CHARGEGUARD_GATEWAY_WEBHOOK_SECRET", "")
        if len(secret) < 16:
            raise ConfigError("webhook_url needs CHARGEGUARD_GATEWAY_WEBHOOK_SECRET (at least 16 characters)")
        webhook = WebhookSink(detection.webhook_url, secret.encode())
        running.closers.append(webhook.close)
        sinks.append(webhook)
    live = LiveDetection(
        settings,
        pseudonymiser,
        inventory=load_inventory(detection.stations_inventory) if detection.stations_inventory else None,
        allowlist=AllowList(store.allow_entries()),
        sinks=sinks,
        event_sinks=[sink.on_event],
        enforce_kinds=detection.enforce_kinds if detection.mode == "enforce" else (),
        enforce_severity=Severity.parse(detection.enforce_severity),
    )
    running.closers.append(sink.close)
    running.closers.append(live.close)  # closes open incidents into the sinks before they close
    if running.cache_clearer is not None:
        watch = running.allowlist_watch = AllowListWatch(store, live, running.cache_clearer)
        running.cache_clearer.still_enforced = watch.verdict
        running.rewriter = BlockTokensUnderAlert(watch.verdict)
    return live


async def run_gateway(
    config: GatewayConfig,
    observer: FrameObserver,
    stop: asyncio.Event | None = None,
    on_started: Callable[[Gateway], None] | None = None,
    rewriter: AnswerRewriter | None = None,
    cache_clearer: AuthorizationCacheClearer | None = None,
    allowlist_watch: AllowListWatch | None = None,
) -> None:
    """Run until SIGINT/SIGTERM (or ``stop`` is set), then shut down gracefully."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    gateway = Gateway(config, observer, rewriter=rewriter, cache_clearer=cache_clearer)
    await gateway.start()
    if allowlist_watch is not None:
        gateway.spawn(allowlist_watch.run())
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
            if (
                settings.learned_credentials is None
            ):  # rotations survive a restart unless configured elsewhere
                home = load_settings(None, key_file=key_file).home
                settings = settings.model_copy(
                    update={"learned_credentials": home / "gateway-credentials.json"}
                )
            running = _observers(settings, key_file)
        except ChargeguardError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from exc
        try:
            asyncio.run(
                run_gateway(
                    settings,
                    ObserverFanout(running.observers),
                    rewriter=running.rewriter,
                    cache_clearer=running.cache_clearer,
                    allowlist_watch=running.allowlist_watch,
                )
            )
        finally:
            running.close()

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
