"""CLI: ``chargeguard allow add|list|remove`` - operator allow-lists kept in the store, with expiry and author.

``--token`` takes a token pseudonym only (``tok<version>_...``, as alerts show it), never a raw card number: a raw
token typed on a command line would stay in shell history and process listings, which chargeguard promises never
to hold. Anything that is not pseudonym-shaped is refused without being echoed back.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.table import Table

from chargeguard.allowlist import AllowEntry, Subject
from chargeguard.cli.common import cli_errors, open_store, settings_from_cli
from chargeguard.logs import configure_logging
from chargeguard.store import AllowRecord, Store
from chargeguard.store.records import pseudonym_version

allow_app = typer.Typer(
    name="allow",
    help="Operator allow-lists: findings declared legitimate (fleet cards, technician cards, test stations).",
    no_args_is_help=True,
)

ConfigOption = Annotated[Path | None, typer.Option("--config", help="settings TOML file")]
DbOption = Annotated[str | None, typer.Option("--db", help="store URL (default: SQLite in CHARGEGUARD_HOME)")]


def register(app: typer.Typer) -> None:
    """Add this module's commands to the main app."""
    app.add_typer(allow_app)


def _open(config: Path | None, db: str | None) -> Store:
    settings = settings_from_cli(config, db_url=db)
    configure_logging(settings.log_level, settings.log_format)
    return open_store(settings)


def parse_expires(text: str) -> datetime:
    """An RFC 3339 time with ``Z`` or an offset, as UTC; a time without a zone is a usage error."""
    try:
        value = datetime.fromisoformat(text.strip().replace("z", "Z"))
    except ValueError:
        raise typer.BadParameter(
            "expected an RFC 3339 time such as 2026-12-31T00:00:00Z", param_hint="--expires"
        ) from None
    if value.tzinfo is None or value.utcoffset() is None:
        raise typer.BadParameter("give a time zone (Z or +hh:mm)", param_hint="--expires")
    return value.astimezone(UTC)


def _subject(token: str | None, station: str | None) -> tuple[Subject, str]:
    if (token is None) == (station is None):
        raise typer.BadParameter("give exactly one of --token or --station", param_hint="--token/--station")
    if token is not None:
        if pseudonym_version(token.strip()) is None:
            raise typer.BadParameter(
                "takes a token pseudonym (tok<version>_..., 20 characters, as alerts show it); raw tokens are "
                "refused - they must not be typed on command lines or reach the store",
                param_hint="--token",
            )
        return "token", token.strip().lower()
    assert station is not None
    return "station", station.strip()


def _warn_unknown_kind(kind: str, err: Console) -> None:
    from chargeguard.detectors.registry import all_kinds

    known = all_kinds()
    family = kind[:-1] if kind.endswith(".*") else None
    if kind == "*" or kind in known or (family and any(k.startswith(family) for k in known)):
        return
    err.print(f"[yellow]warning:[/] no registered detector emits {kind!r}; the entry will match nothing yet")


@allow_app.command("add")
def add(
    kind: Annotated[str, typer.Option("--kind", help="detection kind, 'family.*' or '*'")],
    expires: Annotated[str, typer.Option("--expires", help="RFC 3339 time, e.g. 2026-12-31T00:00:00Z")],
    reason: Annotated[str, typer.Option("--reason", help="why these findings are legitimate")],
    by: Annotated[str, typer.Option("--by", help="who adds the entry")],
    token: Annotated[str | None, typer.Option("--token", help="token pseudonym (tok1_...)")] = None,
    station: Annotated[str | None, typer.Option("--station", help="station identity")] = None,
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """Allow findings of KIND about one token or station until EXPIRES (event time)."""
    subject, value = _subject(token, station)
    when = parse_expires(expires)
    err = Console(stderr=True, highlight=False)
    with cli_errors():
        store = _open(config, db)
        try:
            entry_id = store.add_allow(
                AllowEntry(
                    kind=kind.strip(), subject=subject, value=value, expires=when, reason=reason, added_by=by
                )
            )
        finally:
            store.close()
        _warn_unknown_kind(kind.strip(), err)
        if when <= datetime.now(UTC):
            err.print(
                "[yellow]note:[/] this entry has already expired; it only affects replays of older captures"
            )
        Console(highlight=False).print(f"added allow entry {entry_id}")


def _as_dict(record: AllowRecord) -> dict[str, Any]:
    e = record.entry
    return {
        "id": record.id,
        "kind": e.kind,
        "subject": e.subject,
        "value": e.value,
        "expires": e.expires,
        "reason": e.reason,
        "added_by": e.added_by,
        "added_at": e.added_at,
        "removed_at": record.removed_at,
        "removed_by": record.removed_by,
    }


def _when(value: datetime | None) -> str:
    return "" if value is None else value.strftime("%Y-%m-%dT%H:%M:%SZ")


@allow_app.command("list")
def list_entries(
    include_removed: Annotated[
        bool, typer.Option("--all", help="include removed entries (the trail)")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per entry on stdout")] = False,
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """Show allow entries (not removed ones unless --all), oldest first."""
    with cli_errors():
        store = _open(config, db)
        try:
            entries = store.allow_records(include_removed=include_removed)
        finally:
            store.close()
    if as_json:
        for record in entries:
            sys.stdout.buffer.write(orjson.dumps(_as_dict(record), option=orjson.OPT_UTC_Z) + b"\n")
        return
    out = Console(highlight=False)
    if not entries:
        out.print("no allow entries")
        return
    now = datetime.now(UTC)
    table = Table(title="allow entries")
    for column in ("id", "kind", "subject", "expires", "reason", "added", "state"):
        table.add_column(column, overflow="fold")
    for record in entries:
        e = record.entry
        if record.removed_at is not None:
            state = f"removed by {record.removed_by} {_when(record.removed_at)}"
        else:
            state = "expired" if e.expires <= now else "active"
        table.add_row(
            str(record.id),
            e.kind,
            f"{e.subject} {e.value}",
            _when(e.expires),
            e.reason,
            f"{e.added_by} {_when(e.added_at)}",
            state,
        )
    out.print(table)


@allow_app.command("remove")
def remove(
    entry_id: Annotated[int, typer.Argument(metavar="ID", help="entry id (see chargeguard allow list)")],
    by: Annotated[str, typer.Option("--by", help="who removes the entry")],
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """Remove an allow entry; it stays in the store as part of the trail (see list --all)."""
    with cli_errors():
        store = _open(config, db)
        try:
            record = store.remove_allow(entry_id, by)
        finally:
            store.close()
    Console(highlight=False).print(
        f"removed allow entry {record.id} ({record.entry.kind}, {record.entry.subject})"
    )
