"""What every command shares: turning chargeguard errors into clear messages and exit codes, settings, the store."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import typer
from rich.console import Console

from chargeguard.errors import ChargeguardError, ConfigError, InputError
from chargeguard.pipeline import ScanReport
from chargeguard.settings import Settings, load_settings
from chargeguard.store import Store

EXIT_USAGE = 2
EXIT_FAILED = 1


def close_in_reverse(closers: list[Callable[[], None]], logger: Any, event: str) -> None:
    """Run ``closers`` last opened first; one that fails is logged as ``event`` and the others still run."""
    for closer in reversed(closers):
        try:
            closer()
        except ChargeguardError as exc:
            logger.error(event, error=str(exc))


@contextmanager
def cli_errors() -> Iterator[None]:
    """Print chargeguard errors as one clear line on stderr: exit 2 for configuration/usage, 1 otherwise."""
    try:
        yield
    except ConfigError as exc:
        Console(stderr=True, soft_wrap=True).print(f"[red]error:[/] {exc}", highlight=False)
        raise typer.Exit(EXIT_USAGE) from None
    except InputError as exc:
        Console(stderr=True, soft_wrap=True).print(f"[red]error:[/] {exc}", highlight=False)
        raise typer.Exit(EXIT_FAILED) from None
    except ChargeguardError as exc:
        Console(stderr=True, soft_wrap=True).print(f"[red]error:[/] {exc}", highlight=False)
        raise typer.Exit(EXIT_FAILED) from None


def settings_from_cli(config: Path | None, **overrides: Any) -> Settings:
    return load_settings(config, **overrides)


def record_run(store: Store, report: ScanReport, settings: Settings, started: datetime) -> None:
    """Record a finished scan in the store, with a digest of the settings that shaped its alerts."""
    relevant = settings.model_dump(
        include={"detectors", "disabled_detectors", "lateness_s", "merge_gap_s", "decimal_uids"}
    )
    digest = hashlib.sha256(orjson.dumps(relevant, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]
    store.record_scan_run(
        started_at=started,
        finished_at=datetime.now(UTC),
        inputs=report.files,
        frames=report.frames,
        bad_lines=sum(report.bad_lines.values()),
        alerts=sum(report.alerts.values()),
        settings_digest=digest,
        transactions=report.transactions,
    )


def open_store(settings: Settings) -> Store:
    settings.home.mkdir(parents=True, exist_ok=True)
    return Store.open(settings.effective_db_url)
