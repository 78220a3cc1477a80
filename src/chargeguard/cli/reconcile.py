"""CLI: ``chargeguard reconcile --cpo FILE --emsp FILE [--capture FILE] [--tariffs FILE] [--out DIR]``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.console import Console

from chargeguard.cli.common import cli_errors, settings_from_cli
from chargeguard.errors import ConfigError
from chargeguard.pipeline import build_pseudonymiser
from chargeguard.reconcile.capture import load_capture, uncovered
from chargeguard.reconcile.load import LoadOptions
from chargeguard.reconcile.match import MatchOptions, reconcile
from chargeguard.reconcile.prices import Repriced, reprice
from chargeguard.reconcile.report import print_summary, write_csv, write_html
from chargeguard.sources.ocpi.importer import import_file


def register(app: typer.Typer) -> None:
    """Add ``reconcile`` to the main app."""
    app.command("reconcile")(reconcile_command)


def reconcile_command(
    cpo: Annotated[
        Path, typer.Option("--cpo", help="the CPO's CDRs (or sessions): JSON Lines or JSON array")
    ],
    emsp: Annotated[Path, typer.Option("--emsp", help="the eMSP's CDRs (or sessions) of the same period")],
    capture: Annotated[
        list[Path] | None,
        typer.Option("--capture", help="OCPP capture(s): flag CPO CDRs with no OCPP transaction behind them"),
    ] = None,
    tariffs: Annotated[
        Path | None,
        typer.Option("--tariffs", help="OCPI Tariffs: reprice disputed CDRs with the tariff engine"),
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", help="directory for CSV files and report.html")] = None,
    objects: Annotated[str, typer.Option("--objects", help="cdr or session")] = "cdr",
    start_tolerance_s: Annotated[
        float, typer.Option(help="start times within this many seconds match")
    ] = 300.0,
    money_tolerance: Annotated[
        float, typer.Option(help="cost differences up to this are not disputes")
    ] = 0.01,
    max_kwh: Annotated[
        float, typer.Option(help="records claiming more energy are rejected as absurd")
    ] = 1000.0,
    time_zone: Annotated[
        str, typer.Option(help="IANA zone for tariff restrictions (the Location's)")
    ] = "UTC",
    config: Annotated[Path | None, typer.Option("--config", help="settings TOML file")] = None,
) -> None:
    """Match the two parties' records; report matched, unmatched and disputed records with the amount at stake."""
    with cli_errors():
        if objects not in ("cdr", "session"):
            raise ConfigError("--objects must be cdr or session")
        kind: Literal["cdr", "session"] = "cdr" if objects == "cdr" else "session"
        if tariffs is not None and kind != "cdr":
            raise ConfigError("--tariffs reprices CDRs; it cannot be used with --objects session")
        settings = settings_from_cli(config)
        pseudonymiser, created = build_pseudonymiser(settings, store_has_data=False)
        err = Console(stderr=True, highlight=False, soft_wrap=True)
        if created:
            err.print(f"created a new pseudonym key in {created} (mode 0600) - back it up")
        result = reconcile(
            cpo,
            emsp,
            pseudonymiser,
            kind=kind,
            load_options=LoadOptions(max_kwh=max_kwh),
            options=MatchOptions(start_tolerance_s=start_tolerance_s, money_tolerance=money_tolerance),
        )
        if capture:
            load_capture(result, capture, pseudonymiser, settings)
            uncovered(result, slack_s=start_tolerance_s)
        repriced: list[Repriced] = []
        if tariffs is not None:
            loaded = import_file(tariffs, "tariff", pseudonymiser)
            for error in loaded.errors[:5]:
                err.print(f"bad tariff: {error}")
            repriced = reprice(result, {t.id: t for t in loaded.objects}, pseudonymiser, time_zone=time_zone)
        print_summary(result, Console(highlight=False), repriced)
        if out is not None:
            files = write_csv(result, out, repriced)
            files.append(write_html(result, out / "report.html", repriced))
            err.print("wrote " + ", ".join(str(f) for f in files))
