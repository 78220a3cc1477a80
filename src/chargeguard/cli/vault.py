"""CLI: ``chargeguard vault ...``: audit verify, key rotation, signing keys, two-person reveal, erasure, retention."""

from __future__ import annotations

import secrets
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from chargeguard.cli.common import EXIT_USAGE, cli_errors, open_store, settings_from_cli
from chargeguard.errors import ConfigError, KeyMaterialError, VaultError
from chargeguard.logs import configure_logging
from chargeguard.settings import Settings
from chargeguard.store.connect import create_store_engine
from chargeguard.vault.audit import AuditLog
from chargeguard.vault.keys import add_key_version, load_pseudonym_keys, read_key_file, write_new_key_file
from chargeguard.vault.operations import apply_retention_settings, erase_subject
from chargeguard.vault.permissions import PRINCIPALS_FILE, Principals, load_principals
from chargeguard.vault.pseudonyms import Pseudonymiser
from chargeguard.vault.rotation import PseudonymRekeyStore, rotate
from chargeguard.vault.sealed import Principal, SealedVault
from chargeguard.vault.sealed_table import SealedTokenTable
from chargeguard.vault.signatures import (
    PASSPHRASE_ENV,
    Signed,
    generate_signing_key,
    load_signing_key,
    sign,
    statement,
    stored_reason,
)
from chargeguard.vault.token_vault import open_reveal_vault

vault_app = typer.Typer(
    name="vault",
    help="The token vault: audit log, key rotation, two-person reveal, erasure, retention.",
    no_args_is_help=True,
)
reveal_app = typer.Typer(
    name="reveal", help="Two-person reveal of a sealed token: request, approve, run.", no_args_is_help=True
)
vault_app.add_typer(reveal_app)


def register(app: typer.Typer) -> None:
    """Add ``vault`` to the main app."""
    app.add_typer(vault_app)


ConfigOption = Annotated[Path | None, typer.Option("--config", help="settings TOML file")]
DbOption = Annotated[str | None, typer.Option("--db", help="store URL (default: SQLite in CHARGEGUARD_HOME)")]


def cli_pseudonymiser(settings: Settings, key_file: Path | None, new_key: Path | None) -> Pseudonymiser:
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


@vault_app.command("verify")
def verify(
    db: DbOption = None,
    expect_head: Annotated[
        str | None,
        typer.Option("--expect-head", help="SEQ:HASH printed by an earlier verify, kept elsewhere"),
    ] = None,
    principals: Annotated[
        Path | None,
        typer.Option(
            "--principals",
            help=f"principals file whose public keys check every signature (default <home>/{PRINCIPALS_FILE})",
        ),
    ] = None,
    require_signatures: Annotated[
        bool,
        typer.Option(
            "--require-signatures", help="also fail on reveal and erasure records without a signature"
        ),
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Verify the vault's hash-chained audit log and its signatures; exit 1 when it was tampered with."""
    with cli_errors():
        settings = settings_from_cli(config, db_url=db)
        configure_logging(settings.log_level, settings.log_format)
        expected: tuple[int, str] | None = None
        if expect_head:
            seq_text, _, digest = expect_head.partition(":")
            if not seq_text.isdigit() or len(digest) != 64:
                raise ConfigError("--expect-head must be SEQ:HASH (a number and 64 hex digits)")
            expected = (int(seq_text), digest.lower())
        principals_file = principals or settings.home / PRINCIPALS_FILE
        if principals is not None and not principals.exists():
            raise ConfigError(f"principals file {principals} does not exist")
        keys = load_principals(principals_file).public_keys() if principals_file.exists() else None
        engine, _ = create_store_engine(settings.effective_db_url)
        try:
            report = AuditLog(engine).verify(
                expected_head=expected, public_keys=keys, require_signatures=require_signatures
            )
        finally:
            engine.dispose()
        out = Console(highlight=False, soft_wrap=True)
        for problem in report.problems:
            out.print(f"[red]broken:[/] {problem}")
        out.print(f"{report.records} audit record(s); head {report.head_seq}:{report.head_hash}")
        out.print(
            f"signatures: {report.signatures_ok} verified, {report.unsigned} reveal/erasure record(s) unsigned"
            + (
                f", {report.signatures_unchecked} not checked (no principals file)"
                if report.signatures_unchecked
                else ""
            )
        )
        if not report.ok:
            raise typer.Exit(1)
        out.print("audit log intact")


@vault_app.command("keygen")
def keygen(
    out: Annotated[Path, typer.Option("--out", help="where to write your private key (created, mode 0600)")],
    name: Annotated[str, typer.Option("--name", help="your name as the principals file lists it")],
) -> None:
    """Create your Ed25519 signing key; prints the line to add to the keys table of the principals file.

    The key is encrypted with the passphrase in $CHARGEGUARD_VAULT_KEY_PASSPHRASE when that is set.
    """
    with cli_errors():
        public = generate_signing_key(out)
        typer.echo(f'{name.strip()} = "{public}"')
        Console(stderr=True, highlight=False).print(
            f"wrote {out} (mode 0600); add the line above under [keys] in {PRINCIPALS_FILE}"
        )


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
            _rotate_sealed_index(settings, pseudonymiser, err)
        finally:
            store.close()


def _rotate_sealed_index(settings: Settings, pseudonymiser: Pseudonymiser, err: Console) -> None:
    """Move the sealed-token table's pseudonym index with the store (no master key needed for layers)."""
    engine, _ = create_store_engine(settings.effective_db_url)
    try:
        table = SealedTokenTable(engine)
        if not any(table.pseudonym_versions().values()):
            return
        report = rotate(pseudonymiser, table)
        err.print(
            f"moved {sum(report.moved.values())} sealed token index entries to version {report.target_version}; "
            + (
                "complete"
                if report.complete
                else f"remaining {report.remaining}: a fresh key needs re-derivation from the sealed tokens "
                "(chargeguard.vault.rotation with SealedVault.rederive)"
            )
        )
    finally:
        engine.dispose()


# --- reveal, erasure, retention ---------------------------------------------------------------------------

ByOption = Annotated[
    str,
    typer.Option("--by", help="the person acting (must be named, with a public key, in the principals file)"),
]
KeyOption = Annotated[
    Path,
    typer.Option(
        "--key",
        help="your Ed25519 private key (chargeguard vault keygen; 0600, yours): signs this step. An encrypted "
        f"key reads its passphrase from ${PASSPHRASE_ENV}",
    ),
]
PrincipalsOption = Annotated[
    Path | None,
    typer.Option("--principals", help=f"vault principals file (default <home>/{PRINCIPALS_FILE})"),
]


@contextmanager
def _refusals() -> Iterator[None]:
    """A vault refusal (permission, second person, expired, unknown request, ...) exits 2 with its reason."""
    try:
        yield
    except VaultError as exc:
        Console(stderr=True, soft_wrap=True).print(f"[red]refused:[/] {exc}", highlight=False)
        raise typer.Exit(EXIT_USAGE) from None


def _principals(settings: Settings, path: Path | None) -> Principals:
    return load_principals(path or settings.home / PRINCIPALS_FILE)


class _Signer:
    """The acting person: their principal (permissions, public keys) and their private key, which signs steps."""

    def __init__(self, principal: Principal, key_file: Path) -> None:
        self.principal = principal
        self._key = load_signing_key(key_file)

    def sign(self, message: bytes) -> Signed:
        return sign(self._key, message)

    def signing(self, action: str, *, reason: str, request: str, pseudonym: str) -> Principal:
        """The principal carrying its signature of one reveal step."""
        message = statement(
            action, self.principal.name, reason=stored_reason(reason), request=request, pseudonym=pseudonym
        )
        return replace(self.principal, signed=self.sign(message))


@contextmanager
def _reveal_vault(
    config: Path | None, db: str | None, principals: Path | None, by: str, key: Path
) -> Iterator[tuple[SealedVault, _Signer]]:
    settings = settings_from_cli(config, db_url=db)
    configure_logging(settings.log_level, settings.log_format)
    signer = _Signer(_principals(settings, principals).principal(by), key)
    pseudonymiser = cli_pseudonymiser(settings, None, None)
    engine, _ = create_store_engine(settings.effective_db_url)
    try:
        yield open_reveal_vault(settings, engine, pseudonymiser, require_signatures=True), signer
    finally:
        engine.dispose()


@reveal_app.command("request")
def reveal_request(
    pseudonym: Annotated[str, typer.Option("--pseudonym", help="the tok<v>_... pseudonym to reveal")],
    reason: Annotated[
        str, typer.Option("--reason", help="why (ticket, case number); at least 10 characters")
    ],
    by: ByOption,
    key: KeyOption,
    principals: PrincipalsOption = None,
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """Open a reveal request (needs vault.reveal), signed with your key; prints its id for a second person."""
    with cli_errors(), _refusals(), _reveal_vault(config, db, principals, by, key) as (vault, signer):
        request_id = secrets.token_hex(16)
        principal = signer.signing(
            "reveal.request", reason=reason, request=request_id, pseudonym=pseudonym.strip().lower()
        )
        vault.request_reveal(pseudonym, principal, reason, request_id=request_id)
        typer.echo(request_id)
        Console(stderr=True, highlight=False).print(
            f"reveal request {request_id} opened by {principal.name}; a second person with vault.approve must "
            f"run: chargeguard vault reveal approve {request_id} --by NAME --key THEIR_KEY"
        )


@reveal_app.command("approve")
def reveal_approve(
    request_id: Annotated[str, typer.Argument(help="the id printed by 'vault reveal request'")],
    by: ByOption,
    key: KeyOption,
    principals: PrincipalsOption = None,
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """Approve someone else's reveal request (needs vault.approve; never the requester): you sign its id,
    pseudonym and reason."""
    with cli_errors(), _refusals(), _reveal_vault(config, db, principals, by, key) as (vault, signer):
        pseudonym, requester, reason = vault.request_details(request_id)
        err = Console(stderr=True, highlight=False, soft_wrap=True, markup=False)
        err.print(f"request {request_id} by {requester} for {pseudonym}: {stored_reason(reason)}")
        principal = signer.signing("reveal.approve", reason=reason, request=request_id, pseudonym=pseudonym)
        vault.approve_reveal(request_id, principal)
        err.print(f"reveal request {request_id} approved by {principal.name}")


@reveal_app.command("run")
def reveal_run(
    request_id: Annotated[str, typer.Argument(help="an approved request of yours")],
    by: ByOption,
    key: KeyOption,
    principals: PrincipalsOption = None,
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """Print the raw token of an approved request once, on stdout only (audited before it is printed)."""
    with cli_errors(), _refusals(), _reveal_vault(config, db, principals, by, key) as (vault, signer):
        pseudonym, _, reason = vault.request_details(request_id)
        principal = signer.signing("reveal.run", reason=reason, request=request_id, pseudonym=pseudonym)
        raw = vault.reveal(request_id, principal)
        sys.stdout.write(raw + "\n")
        sys.stdout.flush()
        del raw


CapturesOption = Annotated[
    list[Path] | None,
    typer.Option("--captures", help="a capture directory (the gateway's recorder output) to include; repeat"),
]


@vault_app.command("erase")
def erase(
    reason: Annotated[str, typer.Option("--reason", help="the request reference, e.g. 'GDPR request 17'")],
    by: ByOption,
    key: KeyOption,
    pseudonym: Annotated[
        list[str] | None,
        typer.Option("--pseudonym", help="a pseudonym of the data subject (repeat for key versions)"),
    ] = None,
    card_from_stdin: Annotated[
        bool,
        typer.Option(
            "--card-from-stdin",
            help="read the card the driver presents from stdin (never argv) and erase its pseudonyms under "
            "every key version in use",
        ),
    ] = False,
    captures: CapturesOption = None,
    principals: PrincipalsOption = None,
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """Erase everything linked to a pseudonym: alerts, transactions, allow entries, sealed tokens, captures."""
    with cli_errors(), _refusals():
        settings = settings_from_cli(config, db_url=db)
        configure_logging(settings.log_level, settings.log_format)
        signer = _Signer(_principals(settings, principals).principal(by), key)
        pseudonymiser = cli_pseudonymiser(settings, None, None)
        card = sys.stdin.readline().strip() if card_from_stdin else None
        if card_from_stdin and not card:
            raise ConfigError("--card-from-stdin: no card on stdin")
        store = open_store(settings)
        try:
            receipt = erase_subject(
                settings,
                store,
                pseudonymiser,
                signer.principal,
                reason=reason,
                pseudonyms=pseudonym or [],
                card=card,
                captures=captures or [],
                signer=signer.sign,
                require_signature=True,
            )
        finally:
            del card
            store.close()
        removed = ", ".join(f"{kind} {count}" for kind, count in sorted(receipt.removed.items()))
        Console(highlight=False).print(
            f"erased {len(receipt.pseudonyms)} pseudonym(s): {removed or 'nothing stored'}; "
            f"audit record {receipt.audit_seq}"
        )


@vault_app.command("retention")
def retention(
    action: Annotated[str, typer.Argument(help="'apply': delete what is past its retention period")],
    by: Annotated[str, typer.Option("--by", help="who runs it (recorded in the audit log)")] = "system",
    captures: CapturesOption = None,
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """Apply the retention settings (retention = {alerts = '365d', ...}) to the store, sealed tokens, captures."""
    with cli_errors(), _refusals():
        if action != "apply":
            raise ConfigError(f"unknown retention action {action!r}; the only action is 'apply'")
        settings = settings_from_cli(config, db_url=db)
        configure_logging(settings.log_level, settings.log_format)
        store = open_store(settings)
        try:
            policy, removed = apply_retention_settings(settings, store, actor=by, captures=captures or [])
        finally:
            store.close()
        periods = ", ".join(
            f"{kind} {'kept' if period is None else f'{period.days}d'}"
            for kind, period in policy.periods.items()
        )
        done = ", ".join(f"{kind} {count}" for kind, count in sorted(removed.items()))
        Console(highlight=False).print(f"retention ({periods}) applied: deleted {done or 'nothing'}")
