"""CLI: ``chargeguard simulate`` - a seeded network capture with its inventory and labelled incidents."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from chargeguard.cli.common import cli_errors
from chargeguard.errors import ConfigError
from chargeguard.logs import configure_logging
from chargeguard.sim.catalogue import incident_set
from chargeguard.sim.output import simulate
from chargeguard.sim.runner import DEFAULT_START, SimConfig


class OcppChoice(StrEnum):
    V16 = "1.6"
    V201 = "2.0.1"
    MIX = "mix"


class IncidentChoice(StrEnum):
    TUNING = "tuning"
    HOLDOUT = "holdout"
    NONE = "none"


def register(app: typer.Typer) -> None:
    """Add this module's commands to the main app."""
    app.command("simulate")(simulate_command)


def _start(text: str | None) -> datetime:
    if text is None:
        return DEFAULT_START
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ConfigError(f"--start: not an RFC 3339 time: {text!r}") from exc
    if moment.tzinfo is None:
        raise ConfigError("--start needs a zone (Z or an offset)")
    return moment.astimezone(UTC)


def simulate_command(
    out: Annotated[Path, typer.Option("--out", help="Output directory (created if missing).")],
    stations: Annotated[
        int, typer.Option("--stations", min=1, max=1_000_000, help="Number of stations.")
    ] = 10,
    days: Annotated[float, typer.Option("--days", min=0.01, max=3660, help="Simulated days.")] = 1.0,
    seed: Annotated[int, typer.Option("--seed", help="Seed: the same seed gives byte-identical output.")] = 0,
    ocpp: Annotated[OcppChoice, typer.Option("--ocpp", help="Protocol of the stations.")] = OcppChoice.MIX,
    compress: Annotated[bool, typer.Option("--gzip", help="Write capture.jsonl.gz.")] = False,
    incident_rate: Annotated[
        float,
        typer.Option("--incident-rate", min=0.0, help="Incidents per station per day (each variant >= 1)."),
    ] = 0.05,
    incidents: Annotated[
        IncidentChoice, typer.Option("--incidents", help="Incident set: tuning, holdout (frozen) or none.")
    ] = IncidentChoice.TUNING,
    meter_interval: Annotated[
        float, typer.Option("--meter-interval", min=10.0, help="MeterValues sample interval, seconds.")
    ] = 300.0,
    start: Annotated[
        str | None, typer.Option("--start", help="Start time, RFC 3339 (default 2026-03-02).")
    ] = None,
) -> None:
    """Simulate a charging network: DIR/capture.jsonl(.gz), DIR/stations.csv, DIR/truth.jsonl, DIR/network.json."""
    with cli_errors():
        configure_logging("warning")
        config = SimConfig(
            stations=stations,
            days=days,
            seed=seed,
            ocpp=ocpp.value,
            start=_start(start),
            sample_interval_s=meter_interval,
            incident_rate=incident_rate,
            incidents=incident_set(incidents.value),
        )
        err = Console(stderr=True)
        if sys.stderr.isatty():
            with Progress(
                TextColumn("simulating"),
                BarColumn(),
                TextColumn("{task.percentage:>3.0f}%"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=err,
                transient=True,
            ) as bar:
                task = bar.add_task("simulate", total=1.0)
                stats = simulate(
                    config, out, compress=compress, progress=lambda f: bar.update(task, completed=f)
                )
        else:
            stats = simulate(config, out, compress=compress)
        err.print(
            f"wrote {stats.lines} lines ({stats.frames} frames, {stats.sessions} sessions, "
            f"{stats.incidents} incidents) to {out}"
            + (
                f"; {stats.skipped} scheduled incidents found no room (more stations or days)"
                if stats.skipped
                else ""
            ),
            highlight=False,
        )
