"""CLI command ``serve``: host the OCPI 2.2.1 connector (CPO, eMSP or both) with chargeguard's fraud decision and
live detection on what partners push (alerts to the store and an alerts file, like the gateway)."""

from __future__ import annotations

import asyncio
import os
import ssl
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import structlog
import typer
import uvicorn

from chargeguard.allowlist import AllowList
from chargeguard.cli.common import cli_errors, close_in_reverse, open_store, settings_from_cli
from chargeguard.errors import ConfigError
from chargeguard.events import Alert
from chargeguard.inventory import load_inventory
from chargeguard.live import LiveDetection
from chargeguard.logs import configure_logging
from chargeguard.settings import Settings
from chargeguard.sinks.jsonl import JsonlAlertWriter
from chargeguard.sinks.store import StoreSink
from chargeguard.sources.ocpi.connector.app import create_app
from chargeguard.sources.ocpi.connector.client import OcpiClient
from chargeguard.sources.ocpi.connector.config import ServeConfig, load_serve_config
from chargeguard.sources.ocpi.connector.context import Connector
from chargeguard.sources.ocpi.connector.credentials import register as register_with
from chargeguard.sources.ocpi.connector.decision import TokenStatusDecision
from chargeguard.sources.ocpi.connector.live import OcpiLiveFeed
from chargeguard.sources.ocpi.connector.store import PartnerStore
from chargeguard.sources.ocpi.importer import ObjectKind, import_file
from chargeguard.sources.ocpi.models import Location
from chargeguard.sources.ocpi.normalize import StationMapping
from chargeguard.sources.ocpi.stations import inventory_from_locations, merge_inventories
from chargeguard.store import Store
from chargeguard.vault.keys import LocalKeyFileProvider
from chargeguard.vault.pseudonyms import Pseudonymiser
from chargeguard.vault.token_vault import pseudonymiser_from_settings

log = structlog.get_logger("chargeguard.cli.serve")
TOKEN_A_ENV = "CHARGEGUARD_OCPI_TOKEN_A"  # noqa: S105 - the name of the variable, not a token
_KINDS: dict[str, ObjectKind] = {
    "locations": "location",
    "sessions": "session",
    "cdrs": "cdr",
    "tariffs": "tariff",
    "tokens": "token",
}


def build_connector(config: ServeConfig, store: Store, settings_pseudonymiser: Pseudonymiser) -> Connector:
    """The connector for a config: partner registry, published files, and the default fraud decision
    (the token's status plus open alerts on its pseudonym in the store)."""
    provider = LocalKeyFileProvider(config.master_key_file) if config.master_key_file else None
    partners = PartnerStore(config.partners_file, key_provider=provider)
    verify: ssl.SSLContext | bool = True
    if config.partner_ca_file is not None:
        verify = ssl.create_default_context(cafile=str(config.partner_ca_file))
    connector_config = config.connector_config()
    connector = Connector(
        config=connector_config,
        store=partners,
        client=OcpiClient(connector_config.party, timeout_s=config.partner_timeout_s, verify=verify),
        pseudonymiser=settings_pseudonymiser,
    )

    def open_alert_kinds(pseudonym: str) -> Sequence[str]:
        return [a.kind for a in store.alerts(token_ref=pseudonym, status="open", limit=20)]

    connector.decision = TokenStatusDecision(connector.lookup_token, open_alert_kinds)
    for module, kind in _KINDS.items():
        path = getattr(config.publish, module)
        if path is None:
            continue
        result = import_file(path, kind, settings_pseudonymiser)
        for obj in result.objects:
            connector.published.put(module, obj)
        log.info("ocpi.serve.published", module=module, objects=len(result.objects), bad=result.bad)
    return connector


class LiveOcpi:
    """Live detection attached to a connector, and what to close (in reverse order) when serving ends."""

    def __init__(self, detection: LiveDetection, feed: OcpiLiveFeed) -> None:
        self.detection = detection
        self.feed = feed
        self.closers: list[Callable[[], None]] = []

    def close(self) -> None:
        close_in_reverse(self.closers, log, "ocpi.serve.shutdown_failed")


def attach_detection(
    connector: Connector, config: ServeConfig, settings: Settings, store: Store, pseudonymiser: Pseudonymiser
) -> LiveOcpi:
    """Feed what partners push (and the Tokens, Tariffs, Locations this platform publishes) to live detection.

    Alerts reach the store within the request that raised them - so the fraud decision of real-time
    authorisation sees them at once - and the alerts file when ``[ocpi.detection] alerts_jsonl`` is set. The
    published Locations, with the CSV ``stations_inventory`` winning where both describe a station, are the
    station inventory.
    """
    detection = config.detection
    store.mark_pseudonymised([pseudonymiser.current_version])  # alerts carry pseudonyms of this key
    sink = StoreSink(store)
    closers: list[Callable[[], None]] = [sink.close]

    def to_store(alert: Alert) -> None:
        sink.on_close(alert)
        sink.flush()

    sinks: list[Callable[[Alert], None]] = [to_store]
    if detection.alerts_jsonl is not None:
        stream = detection.alerts_jsonl.open("ab")
        closers.insert(0, stream.close)
        sinks.append(JsonlAlertWriter(stream, flush_each=True))
    published = [connector.published.objects(m) for m in ("locations", "tariffs", "tokens")]
    locations = [obj for obj in published[0] if isinstance(obj, Location)]
    feed_mode = detection.station_id
    inventory = load_inventory(detection.stations_inventory) if detection.stations_inventory else None
    if locations:
        mapping = StationMapping.from_locations(locations, mode=feed_mode)
        inventory = merge_inventories(inventory, inventory_from_locations(locations, mapping))
    live = LiveDetection(
        settings, pseudonymiser, inventory=inventory, allowlist=AllowList(store.allow_entries()), sinks=sinks
    )
    closers.append(live.close)  # closes open incidents into the sinks before they close
    feed = OcpiLiveFeed(live.engine, mode=feed_mode, locations=locations)
    feed.preload([*published[1], *published[2]])
    connector.on_received = feed
    running = LiveOcpi(live, feed)
    running.closers = closers
    return running


async def _serve(connector: Connector, config: ServeConfig, register_url: str | None, name: str) -> None:
    if (config.tls_certfile is None) != (config.tls_keyfile is None):
        raise ConfigError("tls_certfile and tls_keyfile go together")
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(connector),
            host=config.host,
            port=config.port,
            ssl_certfile=str(config.tls_certfile) if config.tls_certfile else None,
            ssl_keyfile=str(config.tls_keyfile) if config.tls_keyfile else None,
            log_level="warning",
            access_log=False,  # the app logs a redacted access line itself: OCPI URLs carry token uids
            server_header=False,
        )
    )
    task = asyncio.create_task(server.serve())
    if register_url is not None:
        token_a = os.environ.get(TOKEN_A_ENV)
        if not token_a:
            raise ConfigError(f"--register-with needs the partner's TOKEN_A in ${TOKEN_A_ENV}")
        while not server.started:
            await asyncio.sleep(0.05)
        partner = await register_with(connector, name, register_url, token_a)
        log.warning("ocpi.serve.registered", partner=name, parties=[str(p) for p in partner.parties])
    await task
    await connector.client.aclose()


def register(app: typer.Typer) -> None:
    """Add ``serve`` to the main app."""

    @app.command("serve")
    def serve_command(
        config: Annotated[
            Path, typer.Option("--config", help="OCPI connector configuration (TOML, [ocpi]).")
        ],
        settings_file: Annotated[
            Path | None, typer.Option("--settings", help="chargeguard settings (TOML): keys, store.")
        ] = None,
        invite: Annotated[
            str | None,
            typer.Option(
                "--invite", help="Issue a registration token (TOKEN_A) for a new partner, print it, exit."
            ),
        ] = None,
        register_with_url: Annotated[
            str | None,
            typer.Option(
                "--register-with",
                help=f"Register with a partner's versions URL (its TOKEN_A in ${TOKEN_A_ENV}) once serving.",
            ),
        ] = None,
        partner_name: Annotated[
            str, typer.Option("--partner-name", help="Name for --register-with.")
        ] = "partner",
    ) -> None:
        """Serve OCPI 2.2.1 (versions, credentials, locations, sessions, cdrs, tariffs, tokens, authorisation)."""
        with cli_errors():
            serve_config = load_serve_config(config)
            settings = settings_from_cli(settings_file)
            configure_logging(settings.log_level, settings.log_format)
            store = open_store(settings)
            connector = build_connector(serve_config, store, pseudonymiser_from_settings(settings, store))
            if invite is not None:
                if serve_config.partners_file is None:
                    raise ConfigError(
                        "--invite needs partners_file in [ocpi]: the server must know the token"
                    )
                partner = connector.store.create_partner(invite)
                token = connector.store.issue_token(
                    partner.partner_id, "registration", ttl=timedelta(hours=serve_config.registration_ttl_h)
                )
                typer.echo(f"TOKEN_A for {invite} (shown once; send it over a secure channel): {token}")
                typer.echo(f"versions URL: {connector.config.versions_url}")
                return
            running: LiveOcpi | None = None
            if serve_config.detection.enabled:
                pseudonymiser = connector.pseudonymiser
                running = attach_detection(connector, serve_config, settings, store, pseudonymiser)
            try:
                asyncio.run(_serve(connector, serve_config, register_with_url, partner_name))
            finally:
                if running is not None:
                    running.close()
