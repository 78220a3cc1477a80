"""CLI: ``chargeguard tokens scan|pseudonymise`` (an operator's own files) and ``chargeguard vault ...``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import orjson
import typer
from rich.console import Console

from chargeguard.cli.common import cli_errors, open_store, settings_from_cli
from chargeguard.errors import ConfigError, KeyMaterialError
from chargeguard.logs import configure_logging
from chargeguard.settings import Settings
from chargeguard.store.connect import create_store_engine
from chargeguard.vault.audit import AuditLog
from chargeguard.vault.filescan import scan_paths
from chargeguard.vault.keys import add_key_version, load_pseudonym_keys, read_key_file, write_new_key_file
from chargeguard.vault.pseudonyms import Pseudonymiser
from chargeguard.vault.rotation import PseudonymRekeyStore, rotate
from chargeguard.vault.share import pseudonymise_capture, pseudonymise_csv

tokens_app = typer.Typer(
    name="tokens", help="Find and pseudonymise driver tokens in your own files.", no_args_is_help=True
)
vault_app = typer.Typer(name="vault", help="The token vault: audit log, key rotation.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the main app."""
    app.add_typer(tokens_app)
    app.add_typer(vault_app)


ConfigOption = Annotated[Path | None, typer.Option("--config", help="settings TOML file")]
DbOption = Annotated[str | None, typer.Option("--db", help="store URL (default: SQLite in CHARGEGUARD_HOME)")]


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


def _pseudonymiser(settings: Settings, key_file: Path | None, new_key: Path | None) -> Pseudonymiser:
    if key_file is not None and new_key is not None:
        raise ConfigError("give either --key-file or --new-key, not both")
    if new_key is not None:
        keys = write_new_key_file(new_key)
        Console(stderr=True).print(f"created a sharing key in {new_key} (mode 0600)")
    elif key_file is not None:
        keys = read_key_file(key_file)
    else:
        env = settings.pseudonym_key.get_secret_value() if settings.pseudonym_key else None
        if env is None and not settings.effective_key_file.exists():
            raise ConfigError(
                f"no pseudonym key at {settings.effective_key_file}: pass --key-file FILE, or --new-key FILE to "
                "create a separate key for sharing"
            )
        keys, _ = load_pseudonym_keys(
            env_key=env, key_file=settings.effective_key_file, store_has_data=True, allow_generate=False
        )
    return Pseudonymiser(keys, max(keys), decimal_uids=settings.decimal_uids)


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
        pseudonymiser = _pseudonymiser(settings, key_file, new_key)
        is_csv = bool(column) or src.name.lower().removesuffix(".gz").endswith(".csv")
        if is_csv:
            report = pseudonymise_csv(src, dst, pseudonymiser, column or [])
        else:
            report = pseudonymise_capture(src, dst, pseudonymiser)
        Console(stderr=True, highlight=False).print(
            f"wrote {dst}: {report.lines} line(s), {report.values_pseudonymised} token(s) pseudonymised under key "
            f"version {pseudonymiser.current_version}, {report.not_json} non-JSON line(s) redacted"
        )


@vault_app.command("verify")
def verify(
    db: DbOption = None,
    expect_head: Annotated[
        str | None,
        typer.Option("--expect-head", help="SEQ:HASH printed by an earlier verify, kept elsewhere"),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Verify the vault's hash-chained audit log; exit 1 when it was tampered with."""
    with cli_errors():
        settings = settings_from_cli(config, db_url=db)
        configure_logging(settings.log_level, settings.log_format)
        expected: tuple[int, str] | None = None
        if expect_head:
            seq_text, _, digest = expect_head.partition(":")
            if not seq_text.isdigit() or len(digest) != 64:
                raise ConfigError("--expect-head must be SEQ:HASH (a number and 64 hex digits)")
            expected = (int(seq_text), digest.lower())
        engine, _ = create_store_engine(settings.effective_db_url)
        try:
            report = AuditLog(engine).verify(expected_head=expected)
        finally:
            engine.dispose()
        out = Console(highlight=False, soft_wrap=True)
        for problem in report.problems:
            out.print(f"[red]broken:[/] {problem}")
        out.print(f"{report.records} audit record(s); head {report.head_seq}:{report.head_hash}")
        if not report.ok:
            raise typer.Exit(1)
        out.print("audit log intact")


@vault_app.command("rotate")
def rotate_keys(
    layered: Annotated[
        bool,
        typer.Option(
            "--layered/--fresh",
            help="layer the new key over the current one (keeps linkage without raw tokens) or add a fresh key",
        ),
    ] = True,
    resume: Annotated[
        bool, typer.Option("--resume", help="finish an interrupted rotation without adding another key")
    ] = False,
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """Add a pseudonym key version and move the store's pseudonyms to it (interrupted: run with --resume)."""
    with cli_errors():
        settings = settings_from_cli(config, db_url=db)
        configure_logging(settings.log_level, settings.log_format)
        if settings.pseudonym_key is not None:
            raise ConfigError(
                "the pseudonym key comes from CHARGEGUARD_PSEUDONYM_KEY; rotate it in a key file"
            )
        err = Console(stderr=True, highlight=False)
        key_file = settings.effective_key_file
        store = open_store(settings)
        try:
            has_data = store.has_pseudonymised_data()
            if not layered and has_data:
                raise KeyMaterialError(
                    "a fresh key cannot move stored pseudonyms without their raw tokens; use --layered, or "
                    "re-derive from sealed tokens through the library (chargeguard.vault.rotation)"
                )
            if not isinstance(store, PseudonymRekeyStore) and has_data:
                raise ConfigError(
                    "this store cannot re-key its pseudonyms yet; no key version was added (stored data would be "
                    "split across versions)"
                )
            if not resume:
                ring = add_key_version(key_file, layered=layered)
                err.print(f"added pseudonym key version {ring.current} to {key_file}")
            keys = read_key_file(key_file)
            pseudonymiser = Pseudonymiser(keys, max(keys), decimal_uids=settings.decimal_uids)
            if isinstance(store, PseudonymRekeyStore):
                report = rotate(pseudonymiser, store)
                store.mark_pseudonymised([pseudonymiser.current_version])
                err.print(
                    f"moved {sum(report.moved.values())} pseudonym(s) to version {report.target_version}; "
                    + ("rotation complete" if report.complete else f"remaining {report.remaining}: run again")
                )
        finally:
            store.close()
