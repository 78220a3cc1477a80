"""The token vault a pipeline uses: pseudonymise every token and, when the deployment opted in, seal it once.

One call per token, the same as a bare ``Pseudonymiser``::

    vault = open_token_vault(settings, store)          # or open_token_vault(settings, store, pseudonymiser=p)
    try:
        pipeline = ScanPipeline(settings, vault.pseudonymiser, ...)   # sealing off: nothing changes
        Normaliser(vault)                                              # any Callable[[str], str] works
        ...
    finally:
        vault.close()                                                  # seals what is still pending

With ``settings.seal_tokens`` off (the default) ``vault(raw)`` is exactly ``pseudonymiser(raw)`` and no raw
token is kept anywhere. With it on, each token whose pseudonym this process has not seen yet is queued (in
memory only) and sealed in batches of ``batch_size`` (one SELECT of existing pseudonyms and one multi-row
INSERT per batch) into ``vault_sealed_tokens`` of the store's database; ``flush``/``close`` seal the rest.
A crash before a flush loses only sealing (never pseudonyms); the next sighting of the token seals it.
"""

from __future__ import annotations

import threading
from datetime import timedelta
from types import TracebackType

import structlog
from sqlalchemy import Engine

from chargeguard.errors import ConfigError
from chargeguard.settings import Settings
from chargeguard.store import Store
from chargeguard.store.connect import create_store_engine, redact_url
from chargeguard.vault.audit import AuditLog
from chargeguard.vault.keys import KeyProvider, LocalKeyFileProvider, load_pseudonym_keys
from chargeguard.vault.pseudonyms import PSEUDONYM_LENGTH, Pseudonymiser
from chargeguard.vault.sealed import SealedVault

log = structlog.get_logger(__name__)

DEFAULT_BATCH = 512
MAX_SEEN = 1_000_000  # pseudonyms remembered as sealed; beyond that the set restarts (the table dedups)


class TokenVault:
    """``pseudonymise(raw) -> pseudonym``, sealing each new token when a ``SealedVault`` is given."""

    def __init__(
        self,
        pseudonymiser: Pseudonymiser,
        sealed: SealedVault | None = None,
        *,
        batch_size: int = DEFAULT_BATCH,
        engine: Engine | None = None,
    ) -> None:
        if batch_size < 1:
            raise ConfigError("the sealing batch size must be at least 1")
        self.pseudonymiser = pseudonymiser
        self.sealed = sealed
        self._batch = batch_size
        self._engine = engine  # owned: disposed by close()
        self._seen: set[str] = set()
        self._pending: dict[str, str] = {}
        self._lock = threading.Lock()
        self.sealed_count = 0

    @property
    def sealing(self) -> bool:
        return self.sealed is not None

    def pseudonymise(self, raw: str) -> str:
        """The pseudonym of ``raw`` (see ``Pseudonymiser.pseudonymise``); queues it for sealing when on."""
        pseudonym = self.pseudonymiser(raw)
        if self.sealed is None or pseudonym in self._seen:
            return pseudonym
        if len(raw) == PSEUDONYM_LENGTH and self.pseudonymiser.is_pseudonym(raw):
            return pseudonym  # already a pseudonym: there is no raw token to seal
        with self._lock:
            if pseudonym in self._seen:
                return pseudonym
            if len(self._seen) >= MAX_SEEN:
                self._seen.clear()
            self._seen.add(pseudonym)
            self._pending[pseudonym] = raw
            full = len(self._pending) >= self._batch
        if full:
            self.flush()
        return pseudonym

    __call__ = pseudonymise

    def flush(self) -> int:
        """Seal every queued token now; returns how many new sealed records were written."""
        if self.sealed is None:
            return 0
        with self._lock:
            batch, self._pending = self._pending, {}
        if not batch:
            return 0
        try:
            written = self.sealed.seal_many(batch)
        except BaseException:
            with self._lock:  # not sealed: forget them so a later sighting tries again
                self._seen.difference_update(batch)
            raise
        self.sealed_count += written
        log.debug("vault.sealed.batch", tokens=len(batch), written=written)
        return written

    def close(self) -> None:
        """Seal what is pending and release the vault's own database engine."""
        try:
            self.flush()
        finally:
            if self._engine is not None:
                self._engine.dispose()
                self._engine = None

    def __enter__(self) -> TokenVault:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def pseudonymiser_from_settings(settings: Settings, store: Store) -> Pseudonymiser:
    """The configured pseudonymiser; refuses to create a key when the store already holds pseudonyms."""
    env = settings.pseudonym_key.get_secret_value() if settings.pseudonym_key else None
    keys, created = load_pseudonym_keys(
        env_key=env, key_file=settings.effective_key_file, store_has_data=store.has_pseudonymised_data()
    )
    if created is not None:
        log.warning("vault.key.created", path=str(created))
    return Pseudonymiser(keys, max(keys), decimal_uids=settings.decimal_uids)


def open_token_vault(
    settings: Settings,
    store: Store,
    *,
    pseudonymiser: Pseudonymiser | None = None,
    provider: KeyProvider | None = None,
    batch_size: int = DEFAULT_BATCH,
) -> TokenVault:
    """The deployment's token vault: sealing into the store's database when ``settings.seal_tokens`` is on.

    ``provider`` (a KMS or HashiCorp Vault backend) wins over ``settings.master_key_file``. Sealing on
    without either is refused (``ConfigError``); a master key file that is missing, unreadable or not
    0600/0400 and ours is refused at start-up (``KeyMaterialError``), never replaced by a new key.
    """
    pseudonymiser = pseudonymiser or pseudonymiser_from_settings(settings, store)
    if not settings.seal_tokens:
        return TokenVault(pseudonymiser, batch_size=batch_size)
    if provider is None:
        if settings.master_key_file is None:
            raise ConfigError(
                "seal_tokens is on but no master key is configured: set master_key_file (CHARGEGUARD_"
                "MASTER_KEY_FILE, a 0600 key file) or pass a KeyProvider"
            )
        provider = LocalKeyFileProvider(settings.master_key_file)
    engine, url = create_store_engine(settings.effective_db_url)
    try:
        if redact_url(url) != store.url:
            raise ConfigError(
                f"sealed tokens go into the settings' database ({redact_url(url)}), but the store is {store.url}: "
                "open the store from the same settings"
            )
        sealed = SealedVault(
            engine,
            provider,
            pseudonymiser,
            AuditLog(engine),
            request_ttl=_ttl(settings),
        )
    except BaseException:
        engine.dispose()
        raise
    log.info("vault.sealing.on", key_id=provider.current_key_id, store=store.url)
    return TokenVault(pseudonymiser, sealed, batch_size=batch_size, engine=engine)


def _ttl(settings: Settings) -> timedelta:
    return timedelta(seconds=settings.vault_request_ttl_s)


def open_reveal_vault(
    settings: Settings, engine: Engine, pseudonymiser: Pseudonymiser, *, require_signatures: bool = False
) -> SealedVault:
    """The sealed vault for reveal requests on ``engine``; needs the master key that sealed the tokens.

    ``require_signatures``: every step must come from a principal that signed it (what the CLI sets).
    """
    if settings.master_key_file is None:
        raise ConfigError(
            "no master key is configured (master_key_file / CHARGEGUARD_MASTER_KEY_FILE): this deployment "
            "has no sealed tokens to reveal"
        )
    provider = LocalKeyFileProvider(settings.master_key_file)
    return SealedVault(
        engine,
        provider,
        pseudonymiser,
        AuditLog(engine),
        request_ttl=_ttl(settings),
        require_signatures=require_signatures,
    )
