"""CLI: ``chargeguard scan`` (captures and OCPI files -> alerts), ``detectors`` (the catalogue) and ``demo``."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import IO, Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from chargeguard.allowlist import AllowList
from chargeguard.cli.common import cli_errors, open_store, record_run, settings_from_cli
from chargeguard.detectors.catalogue import catalogue_rows
from chargeguard.errors import ConfigError
from chargeguard.events import Alert
from chargeguard.inventory import load_inventory
from chargeguard.logs import configure_logging
from chargeguard.pipeline import ScanPipeline, ScanReport, build_pseudonymiser
from chargeguard.sinks.jsonl import JsonlAlertWriter
from chargeguard.sinks.store import StoreSink
from chargeguard.sources.ocpi.files import OcpiInputs, OcpiLoad, load_ocpi
from chargeguard.sources.ocpi.merge import merge_into
from chargeguard.sources.ocpi.stations import inventory_from_locations, merge_inventories
from chargeguard.vault.token_vault import TokenVault, open_token_vault


class StationId(StrEnum):
    """How an OCPI EVSE maps onto the capture's station identity (see docs/ocpi.md)."""

    evse_uid = "evse_uid"
    evse_id = "evse_id"
    location = "location"


def _ocpi_option(name: str, what: str) -> Any:
    return typer.Option(name, help=f"OCPI {what} (JSON array, OCPI envelope or JSON Lines); repeatable")


def register(app: typer.Typer) -> None:
    app.command("scan")(scan)
    app.command("detectors")(detectors)
    app.command("demo")(demo)


def scan(
    captures: Annotated[
        list[str] | None, typer.Argument(help="capture files (JSON Lines, plain or gzip); - for stdin")
    ] = None,
    stations: Annotated[Path | None, typer.Option("--stations", help="station inventory CSV")] = None,
    cdrs: Annotated[list[Path] | None, _ocpi_option("--cdrs", "CDRs")] = None,
    sessions: Annotated[list[Path] | None, _ocpi_option("--sessions", "Sessions")] = None,
    tariffs: Annotated[list[Path] | None, _ocpi_option("--tariffs", "Tariffs")] = None,
    tokens_files: Annotated[list[Path] | None, _ocpi_option("--tokens", "Tokens (eMSP token status)")] = None,
    locations: Annotated[
        list[Path] | None, _ocpi_option("--locations", "Locations, also a station inventory")
    ] = None,
    station_id: Annotated[
        StationId,
        typer.Option("--ocpi-station-id", help="what of an OCPI EVSE is the capture's station identity"),
    ] = StationId.evse_uid,
    alerts: Annotated[
        str | None, typer.Option("--alerts", help="write alerts as JSON Lines here; - for stdout")
    ] = None,
    db: Annotated[
        str | None, typer.Option("--db", help="store URL (default: SQLite in CHARGEGUARD_HOME)")
    ] = None,
    no_store: Annotated[bool, typer.Option("--no-store", help="do not persist to the store")] = False,
    config: Annotated[Path | None, typer.Option("--config", help="settings TOML file")] = None,
    lateness: Annotated[
        float | None, typer.Option("--lateness", help="out-of-order tolerance, seconds")
    ] = None,
) -> None:
    """Scan OCPP captures, and OCPI CDRs, sessions, tariffs, tokens and locations, with every detector."""
    captures = captures or []
    ocpi = OcpiInputs(
        cdrs=cdrs or (),
        sessions=sessions or (),
        tariffs=tariffs or (),
        tokens=tokens_files or (),
        locations=locations or (),
    )
    with cli_errors():
        if not captures and not ocpi:
            raise ConfigError(
                "nothing to scan: give capture files and/or OCPI files (--cdrs, --sessions, ...)"
            )
        settings = settings_from_cli(config, db_url=db, lateness_s=lateness)
        configure_logging(settings.log_level, settings.log_format)
        to_stdout = alerts == "-"
        out = Console(stderr=True, soft_wrap=True) if to_stdout else Console(soft_wrap=True)
        err = Console(stderr=True, soft_wrap=True)
        inventory = load_inventory(stations) if stations else None
        store = None if no_store else open_store(settings)
        started = datetime.now(UTC)
        try:
            pseudonymiser, created = build_pseudonymiser(
                settings, store_has_data=store.has_pseudonymised_data() if store else False
            )
            if created:
                err.print(f"[yellow]created a new pseudonym key in {created} (mode 0600) - back it up[/]")
            stream: IO[bytes] | None = None
            writer: JsonlAlertWriter | None = None
            if alerts is not None:
                stream = sys.stdout.buffer if to_stdout else Path(alerts).open("wb")  # noqa: SIM115
                writer = JsonlAlertWriter(stream, flush_each=to_stdout)
            sink = StoreSink(store) if store else None
            tokens: Callable[[str], str] = pseudonymiser
            vault: TokenVault | None = None
            if store is not None:
                store.mark_pseudonymised([pseudonymiser.current_version])
                vault = open_token_vault(settings, store, pseudonymiser=pseudonymiser)
                tokens = vault
            elif settings.seal_tokens:
                raise ConfigError("seal_tokens needs the store: drop --no-store")
            loaded: OcpiLoad | None = None
            if ocpi:
                loaded = load_ocpi(ocpi, vault if vault is not None else pseudonymiser, mode=station_id.value)
                if loaded.locations:
                    from_locations = inventory_from_locations(loaded.locations, loaded.mapping)
                    inventory = merge_inventories(inventory, from_locations)

            def on_close(alert: Alert) -> None:
                if writer is not None:
                    writer(alert)
                if sink is not None:
                    sink.on_close(alert)

            pipeline = ScanPipeline(
                settings,
                tokens,
                inventory=inventory,
                allowlist=AllowList(store.allow_entries()) if store else None,
                on_close=on_close,
                on_event=sink.on_event if sink else None,
            )
            if loaded is not None:
                merge_into(pipeline, loaded.events())
            report = _run_with_progress(pipeline, captures, err)
            if vault is not None:
                vault.close()  # seals what is still queued
            if sink is not None and store is not None:
                sink.close()
                inputs = report.files + (loaded.files if loaded else [])
                record_run(store, dataclasses.replace(report, files=inputs), settings, started)
            if stream is not None and not to_stdout:
                stream.close()
        finally:
            if store is not None:
                store.close()
        print_summary(report, out, loaded)
        capture_nothing = report.nothing_read or not captures
        ocpi_nothing = loaded is None or (
            bool(loaded.unreadable) and len(loaded.unreadable) == len(loaded.files)
        )
        if capture_nothing and ocpi_nothing:
            raise typer.Exit(1)


def _run_with_progress(pipeline: ScanPipeline, captures: list[str], err: Console) -> ScanReport:
    if not err.is_terminal:
        return pipeline.run(captures)
    with Progress(
        TextColumn("[bold]scanning"),
        BarColumn(),
        TextColumn("{task.completed:,} lines"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    ) as progress:
        task = progress.add_task("scan", total=None)
        return pipeline.run(captures, lambda n: progress.advance(task, n))


def _print_ocpi(loaded: OcpiLoad, console: Console) -> None:
    counts = ", ".join(f"{n:,} {kind}s" for kind, n in sorted(loaded.objects.items()) if n) or "no objects"
    console.print(f"[bold]OCPI[/] {len(loaded.files)} file(s): {counts}")
    for problem in loaded.unreadable:
        console.print(f"[red]unreadable:[/] {problem}")
    if loaded.bad:
        kinds = ", ".join(f"{kind} {n}" for kind, n in loaded.bad.most_common())
        console.print(f"[yellow]bad OCPI records:[/] {loaded.bad_total} ({kinds})")
        for example in loaded.bad_examples:
            console.print(f"  {example}", markup=False, highlight=False)


def print_summary(report: ScanReport, console: Console, ocpi: OcpiLoad | None = None) -> None:
    """The end-of-scan summary: volumes, bad lines with examples, alerts per kind and severity."""
    rate = report.lines_read / report.seconds if report.seconds else 0.0
    console.print(
        f"[bold]scanned[/] {len(report.files)} file(s): {report.frames:,} frames, {report.connection_lines:,} "
        f"connection lines, {report.transactions:,} transactions in {report.seconds:.1f} s ({rate:,.0f} lines/s)"
    )
    for problem in report.unreadable:
        console.print(f"[red]unreadable:[/] {problem}")
    if ocpi is not None:
        _print_ocpi(ocpi, console)
    if report.bad_lines:
        total = sum(report.bad_lines.values())
        reasons = ", ".join(f"{reason} {count}" for reason, count in report.bad_lines.most_common())
        console.print(f"[yellow]bad lines:[/] {total} ({reasons})")
        for example in report.bad_examples:
            console.print(f"  {example}")
    if report.engine and report.engine.detector_failures:
        console.print(f"[red]detector failures:[/] {dict(report.engine.detector_failures)}")
    table = Table(title="alerts", show_lines=False)
    table.add_column("kind")
    for severity in ("critical", "high", "medium", "low", "info"):
        table.add_column(severity, justify="right")
    table.add_column("total", justify="right")
    kinds = sorted({kind for kind, _ in report.alerts})
    for kind in kinds:
        row = [report.alerts.get((kind, sev), 0) for sev in ("critical", "high", "medium", "low", "info")]
        table.add_row(kind, *[str(v) if v else "" for v in row], str(sum(row)))
    if kinds:
        console.print(table)
    else:
        console.print("no alerts")


def detectors(
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Print the detector catalogue: kinds, default severity, what each detector catches."""
    rows = catalogue_rows()
    if as_json:
        import orjson

        sys.stdout.buffer.write(orjson.dumps(rows, option=orjson.OPT_INDENT_2) + b"\n")
        return
    table = Table(title="chargeguard detectors")
    for column in ("kind", "severity", "detector", "catches"):
        table.add_column(column)
    for row in rows:
        for kind in row["kinds"]:
            table.add_row(kind, row["severity"], row["name"], row["summary"])
    Console().print(table)


def demo(
    out_dir: Annotated[Path, typer.Option("--out", help="where the demo writes its files")] = Path(
        "demo-out"
    ),
    seed: Annotated[int, typer.Option("--seed")] = 7,
) -> None:
    """A simulated network attacked and defended: generate, scan, show the alerts and the score."""
    from chargeguard.cli.demo import run_demo

    with cli_errors():
        run_demo(out_dir, seed)
