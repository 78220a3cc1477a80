"""CLI: ``chargeguard tokens scan|pseudonymise``: driver tokens in an operator's own files (vault: cli/vault.py)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import orjson
import typer
from rich.console import Console

from chargeguard.cli import vault
from chargeguard.cli.common import cli_errors, settings_from_cli
from chargeguard.cli.vault import cli_pseudonymiser
from chargeguard.logs import configure_logging
from chargeguard.vault.filescan import scan_paths
from chargeguard.vault.share import pseudonymise_capture, pseudonymise_csv

tokens_app = typer.Typer(
    name="tokens", help="Find and pseudonymise driver tokens in your own files.", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    """Add this module's commands, and the vault's (``chargeguard.cli.vault``), to the main app."""
    app.add_typer(tokens_app)
    vault.register(app)


ConfigOption = Annotated[Path | None, typer.Option("--config", help="settings TOML file")]


@tokens_app.command("scan")
def scan_tokens(
    paths: Annotated[
        list[Path], typer.Argument(help="files or directories (CSV, JSON, SQL dumps, logs, .gz, SQLite)")
    ],
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per finding on stdout")] = False,
) -> None:
    """Search files for plaintext driver tokens and secrets; report where, masked. Exit 1 when any is found."""
    with cli_errors():
        out = Console(highlight=False, soft_wrap=True, markup=False)
        err = Console(stderr=True, highlight=False, markup=False)
        found = unreadable = 0
        files: set[str] = set()
        for finding in scan_paths(paths):
            files.add(finding.path)
            if finding.kind == "unreadable":
                unreadable += 1
                err.print(f"cannot read {finding.path}: {finding.masked}")
                continue
            found += 1
            if as_json:
                sys.stdout.buffer.write(orjson.dumps(finding.as_dict()) + b"\n")
            else:
                field = finding.field or "-"
                out.print(
                    f"{finding.path}:{finding.location} offset {finding.offset} "
                    f"field {field} kind {finding.kind} value {finding.masked}"
                )
        sys.stdout.flush()
        err.print(
            f"{found} plaintext token(s) or secret(s) found in {len(files)} file(s); {unreadable} unreadable"
        )
        if found or unreadable:
            raise typer.Exit(1)


@tokens_app.command("pseudonymise")
def pseudonymise_file(
    src: Annotated[Path, typer.Argument(help="OCPP capture (JSON Lines) or CSV export; gzip is detected")],
    dst: Annotated[Path, typer.Argument(help="output file (created, never overwritten; .gz to compress)")],
    column: Annotated[
        list[str] | None, typer.Option("--column", help="CSV column holding tokens (repeat)")
    ] = None,
    key_file: Annotated[Path | None, typer.Option("--key-file", help="pseudonym key file to use")] = None,
    new_key: Annotated[
        Path | None, typer.Option("--new-key", help="create a separate sharing key here and use it")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Rewrite a capture or CSV export with pseudonyms (and redactions) so it can be shared."""
    with cli_errors():
        settings = settings_from_cli(config)
        configure_logging(settings.log_level, settings.log_format)
        pseudonymiser = cli_pseudonymiser(settings, key_file, new_key)
        is_csv = bool(column) or src.name.lower().removesuffix(".gz").endswith(".csv")
        if is_csv:
            report = pseudonymise_csv(src, dst, pseudonymiser, column or [])
        else:
            report = pseudonymise_capture(src, dst, pseudonymiser)
        Console(stderr=True, highlight=False).print(
            f"wrote {dst}: {report.lines} line(s), {report.values_pseudonymised} token(s) pseudonymised under key "
            f"version {pseudonymiser.current_version}, {report.not_json} non-JSON line(s) redacted"
        )
