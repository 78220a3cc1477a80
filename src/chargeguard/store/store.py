"""The Store: chargeguard's database (SQLite file or PostgreSQL) behind one small, typed API.

Opening a store migrates it to the newest schema. Every write runs in one database transaction per call;
batching is the caller's business (see ``chargeguard.sinks.store.StoreSink``). Errors leave as ``StoreError``
with the URL redacted. Tokens arrive and leave as pseudonyms only; the key versions of the pseudonyms written
are recorded in ``meta`` so the vault can refuse to start without the matching key.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import Connection, Engine, func, or_, select, text
from sqlalchemy.engine import URL

from chargeguard.allowlist import AllowEntry, AllowList
from chargeguard.errors import ConfigError, StoreError
from chargeguard.events import Alert, ConnectionEvent, Severity, StationBooted, TransactionEnded
from chargeguard.store import allow, meta, migrate, personal, records, rekey, schema, upsert
from chargeguard.store.connect import create_store_engine, default_url, redact_url, translate

if TYPE_CHECKING:
    from chargeguard.sinks.store import StoreSink
    from chargeguard.vault.retention import DataKind

log = structlog.get_logger("chargeguard.store")

# PostgreSQL advisory lock taken while migrating, so two processes opening a fresh store do not race
_MIGRATION_LOCK = 0x63675F6D6967  # "cg_mig"
_CHUNK = 500  # ids per IN (...) list, well under SQLite's bound parameter limit
DEFAULT_LIMIT = 1000


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _now() -> datetime:
    return datetime.now(UTC)


class Store:
    """chargeguard's persistence: alerts, transactions, stations, allow entries, scan runs and meta."""

    def __init__(self, engine: Engine, url: URL) -> None:
        """Use ``Store.open``; this constructor assumes a migrated database."""
        self._engine = engine
        self._url = url
        self._dialect = engine.dialect.name
        self._known_versions: set[int] | None = None
        self._evidence_refs: set[str] | None = None  # pseudonyms inside evidence, cached during a rotation

    # ------------------------------------------------------------------------------------------ lifecycle

    @classmethod
    def open(cls, url: str | None = None) -> Store:
        """Connect to ``url`` (``default_url()`` when None) and migrate it to the newest schema."""
        engine, parsed = create_store_engine(url or default_url())
        store = cls(engine, parsed)
        try:
            store._migrate()
        except BaseException:
            engine.dispose()
            raise
        return store

    def _migrate(self) -> None:
        head = migrate.head_revision()
        with self._write("opening the store") as conn:
            if self._dialect == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
            current = migrate.current_revision(conn)
            if current == head:
                return
            if current is not None and current not in migrate.known_revisions():
                raise StoreError(
                    f"the store at {self.url} has schema revision {current}, newer than this chargeguard "
                    f"knows (head {head}); upgrade chargeguard"
                )
            migrate.upgrade(conn)
            log.info("store.migrated", url=self.url, from_revision=current, to_revision=head)

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def sink(self, *, batch_size: int = 1000) -> StoreSink:
        """A batching sink writing into this store (see ``chargeguard.sinks.store``)."""
        from chargeguard.sinks.store import StoreSink  # the sink module depends on this one, not the reverse

        return StoreSink(self, batch_size=batch_size)

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine (for modules that keep tables of their own in the same database, e.g. the vault)."""
        return self._engine

    @property
    def url(self) -> str:
        """The store's URL with any password hidden."""
        return redact_url(self._url)

    @property
    def dialect(self) -> str:
        return self._dialect

    @contextmanager
    def _write(self, action: str) -> Iterator[Connection]:
        with translate(action, self._url), self._engine.connect() as conn:
            conn.execution_options(chargeguard_write=True)
            with conn.begin():
                yield conn

    @contextmanager
    def _read(self, action: str) -> Iterator[Connection]:
        with translate(action, self._url), self._engine.connect() as conn, conn.begin():
            yield conn

    # ------------------------------------------------------------------------------------------ alerts

    def save_alerts(self, alerts: Iterable[Alert]) -> int:
        """Upsert alerts by id (an open alert is replaced by its closed version); returns the count."""
        return self.save_batch(alerts=alerts)

    def save_batch(
        self,
        *,
        alerts: Iterable[Alert] = (),
        transactions: Iterable[TransactionEnded] = (),
        sightings: Iterable[StationBooted | ConnectionEvent] = (),
    ) -> int:
        """Write alerts, transactions and station sightings in one database transaction; returns the rows."""
        latest: dict[str, Alert] = {a.id: a for a in alerts}
        started, unstarted = records.transaction_rows(transactions)
        stations = records.sighting_rows(sightings)
        if not (latest or started or unstarted or stations):
            return 0
        with self._write("saving to the store") as conn:
            versions: set[int] = set()
            if latest:
                self._evidence_refs = None
                upsert.upsert_alerts(conn, latest.values(), _now())
                versions |= records.key_versions_in(a.token_ref for a in latest.values())
            if started or unstarted:
                upsert.upsert_transactions(conn, started, unstarted)
                rows = [*started, *unstarted]
                versions |= records.key_versions_in(
                    [r["token_ref"] for r in rows] + [r["stop_token_ref"] for r in rows]
                )
            if stations:
                upsert.execute_rows(conn, upsert.station_upsert(self._dialect), stations)
            self._note_versions(conn, versions)
        return len(latest) + len(started) + len(unstarted) + len(stations)

    def alert(self, alert_id: str) -> Alert | None:
        """One alert by id, or None."""
        with self._read("reading an alert") as conn:
            found = self._load_alerts(conn, select(schema.alerts).where(schema.alerts.c.id == alert_id))
        return found[0] if found else None

    def alerts(
        self,
        kind: str | None = None,
        station: str | None = None,
        since: datetime | None = None,
        *,
        until: datetime | None = None,
        token_ref: str | None = None,
        status: str | None = None,
        limit: int = DEFAULT_LIMIT,
    ) -> list[Alert]:
        """Alerts newest first. ``station`` matches any station involved; ``since`` <= ts < ``until``."""
        t = schema.alerts
        query = select(t)
        if kind is not None:
            query = query.where(t.c.kind == kind)
        if station is not None:
            involved = select(schema.alert_stations.c.alert_id).where(
                schema.alert_stations.c.station == station
            )
            query = query.where(or_(t.c.station == station, t.c.id.in_(involved)))
        if since is not None:
            query = query.where(t.c.ts >= since)
        if until is not None:
            query = query.where(t.c.ts < until)
        if token_ref is not None:
            query = query.where(t.c.token_ref == token_ref)
        if status is not None:
            query = query.where(t.c.status == status)
        query = query.order_by(t.c.ts.desc(), t.c.id).limit(max(0, limit))
        with self._read("reading alerts") as conn:
            return self._load_alerts(conn, query)

    def alert_counts(
        self, since: datetime | None = None, until: datetime | None = None
    ) -> dict[tuple[str, Severity], int]:
        """How many alerts per (kind, severity) with ``since`` <= ts < ``until`` (dashboard overview)."""
        t = schema.alerts
        query = select(t.c.kind, t.c.severity, func.count()).group_by(t.c.kind, t.c.severity)
        if since is not None:
            query = query.where(t.c.ts >= since)
        if until is not None:
            query = query.where(t.c.ts < until)
        with self._read("counting alerts") as conn:
            return {(kind, Severity(severity)): int(n) for kind, severity, n in conn.execute(query)}

    def _load_alerts(self, conn: Connection, query: Any) -> list[Alert]:
        rows = [r._mapping for r in conn.execute(query)]
        ids = [r["id"] for r in rows]
        stations: dict[str, list[str]] = {i: [] for i in ids}
        transactions: dict[str, list[str]] = {i: [] for i in ids}
        for chunk in _chunks(ids):
            s, x = schema.alert_stations, schema.alert_transactions
            for r in conn.execute(
                select(s).where(s.c.alert_id.in_(chunk)).order_by(s.c.alert_id, s.c.position)
            ):
                stations[r.alert_id].append(r.station)
            for r in conn.execute(
                select(x).where(x.c.alert_id.in_(chunk)).order_by(x.c.alert_id, x.c.position)
            ):
                transactions[r.alert_id].append(r.transaction_id)
        return [records.alert_from_row(r, stations[r["id"]], transactions[r["id"]]) for r in rows]

    # ------------------------------------------------------------------------------------------ transactions

    def save_transactions(self, ends: Iterable[TransactionEnded]) -> int:
        """Upsert transactions, unique on (station, transaction_id, started_at); returns the count."""
        return self.save_batch(transactions=ends)

    def transactions(
        self,
        station: str | None = None,
        since: datetime | None = None,
        *,
        token_ref: str | None = None,
        limit: int = DEFAULT_LIMIT,
    ) -> list[TransactionEnded]:
        """Transactions newest end first; ``since`` compares with the end (station time)."""
        t = schema.transactions
        query = select(t)
        if station is not None:
            query = query.where(t.c.station == station)
        if since is not None:
            query = query.where(t.c.ended_at >= since)
        if token_ref is not None:
            query = query.where(t.c.token_ref == token_ref)
        query = query.order_by(t.c.ended_at.desc(), t.c.id.desc()).limit(max(0, limit))
        with self._read("reading transactions") as conn:
            return [records.transaction_from_row(r._mapping) for r in conn.execute(query)]

    # ------------------------------------------------------------------------------------------ stations

    def save_station_boot(self, ev: StationBooted) -> None:
        """Record who a station said it is (BootNotification)."""
        self.save_station_sightings([ev])

    def save_station_sightings(self, events: Iterable[StationBooted | ConnectionEvent]) -> int:
        """Merge boots and connections into ``stations`` (newest identity wins; first/last seen widen)."""
        return self.save_batch(sightings=events)

    def stations(self) -> list[records.StationRecord]:
        with self._read("reading stations") as conn:
            rows = conn.execute(select(schema.stations).order_by(schema.stations.c.station))
            return [records.station_from_row(r._mapping) for r in rows]

    # ------------------------------------------------------------------------------------------ allow-lists

    def add_allow(self, entry: AllowEntry) -> int:
        """Store an allow entry (token subjects must be pseudonyms); returns its id."""
        with self._write("adding an allow entry") as conn:
            new_id, row = allow.insert(conn, entry, _now())
            self._note_versions(
                conn, records.key_versions_in([row["value"] if row["subject"] == "token" else None])
            )
        log.info(
            "store.allow.added", id=new_id, kind=row["kind"], subject=row["subject"], added_by=row["added_by"]
        )
        return new_id

    def remove_allow(
        self, entry_id: int, removed_by: str, *, at: datetime | None = None
    ) -> records.AllowRecord:
        """Mark an entry removed (it stays in the table as the trail); returns the updated record."""
        with self._write("removing an allow entry") as conn:
            record = allow.mark_removed(conn, entry_id, removed_by, at or _now())
        log.info("store.allow.removed", id=entry_id, removed_by=record.removed_by)
        return record

    def allow_records(
        self, *, include_removed: bool = False, active_at: datetime | None = None
    ) -> list[records.AllowRecord]:
        """Allow entries with ids and trail, oldest first; ``active_at``: only those in force at that instant."""
        stmt = allow.query(include_removed=include_removed, active_at=active_at)
        with self._read("reading allow entries") as conn:
            return [records.allow_record_from_row(r._mapping) for r in conn.execute(stmt)]

    def allowlist(self) -> AllowList:
        """An ``AllowList`` of every entry not removed (the engine applies expiry in event time)."""
        return AllowList(self.allow_entries())

    def allow_entries(self, active_at: datetime | None = None) -> list[AllowEntry]:
        """Entries for an ``AllowList``: every entry not removed (expiry is applied in event time by the
        AllowList), or with ``active_at`` only those in force at that instant."""
        return [r.entry for r in self.allow_records(active_at=active_at)]

    # ------------------------------------------------------------------------------------------ scan runs

    def record_scan_run(
        self,
        *,
        started_at: datetime,
        finished_at: datetime | None,
        inputs: Sequence[str],
        frames: int,
        bad_lines: int,
        alerts: int,
        settings_digest: str,
        transactions: int = 0,
    ) -> int:
        """Record one scan run; returns its id."""
        row = {
            "started_at": started_at,
            "finished_at": finished_at,
            "inputs": [str(name) for name in inputs],
            "frames": frames,
            "bad_lines": bad_lines,
            "transactions": transactions,
            "alerts": alerts,
            "settings_digest": settings_digest,
        }
        with self._write("recording a scan run") as conn:
            return int(
                conn.execute(schema.scan_runs.insert().returning(schema.scan_runs.c.id), row).scalar_one()
            )

    def scan_runs(self, limit: int = 100) -> list[records.ScanRun]:
        """Scan runs, newest first."""
        t = schema.scan_runs
        query = select(t).order_by(t.c.started_at.desc(), t.c.id.desc()).limit(max(0, limit))
        with self._read("reading scan runs") as conn:
            return [records.scan_run_from_row(r._mapping) for r in conn.execute(query)]

    # ------------------------------------------------------------------------------------------ key rotation

    def pseudonym_versions(self) -> dict[int, int]:
        """Key version -> number of distinct pseudonyms stored under it (columns and alert evidence)."""
        with self._read("counting stored pseudonyms") as conn:
            self._evidence_refs = rekey.evidence_pseudonyms(conn)
            return rekey.pseudonym_versions(conn, self._evidence_refs)

    def pseudonyms_under(self, version: int, *, after: str | None, limit: int) -> list[str]:
        """Up to ``limit`` distinct pseudonyms of ``version`` in ascending order, all greater than ``after``."""
        with self._read("listing stored pseudonyms") as conn:
            if self._evidence_refs is None:
                self._evidence_refs = rekey.evidence_pseudonyms(conn)
            return rekey.pseudonyms_under(conn, self._evidence_refs, version, after=after, limit=limit)

    def rekey(self, mapping: Mapping[str, str]) -> int:
        """Replace every stored occurrence of each old pseudonym by its new one, in one transaction."""
        with self._write("re-keying pseudonyms") as conn:
            changed = rekey.rekey(conn, mapping)
            self._note_versions(conn, records.key_versions_in(mapping.values()))
        if self._evidence_refs is not None:
            lowered = {old.lower(): new.lower() for old, new in mapping.items()}
            self._evidence_refs = {lowered.get(v, v) for v in self._evidence_refs}
        return changed

    # ------------------------------------------------------------------------------------------ retention, erasure

    def kinds(self) -> frozenset[DataKind]:
        """The kinds of personal data this store holds (``vault.retention.PersonalDataStore``)."""
        from chargeguard.vault.retention import DataKind

        return frozenset({DataKind.ALERTS, DataKind.TRANSACTIONS})

    def delete_older_than(self, kind: DataKind, cutoff: datetime) -> int:
        """Delete alerts or transactions whose event time is before ``cutoff``; returns how many."""
        if kind == "alerts":
            with self._write("deleting old alerts") as conn:
                count = personal.delete_alerts_older_than(conn, cutoff)
        elif kind == "transactions":
            with self._write("deleting old transactions") as conn:
                count = personal.delete_transactions_older_than(conn, cutoff)
        else:
            raise ConfigError(f"the store holds no {kind}")
        self._evidence_refs = None
        return count

    def erase_pseudonyms(self, pseudonyms: Sequence[str]) -> dict[DataKind, int]:
        """Erase everything linked to the pseudonyms in one transaction (see ``chargeguard.store.personal``)."""
        from chargeguard.vault.retention import DataKind

        with self._write("erasing pseudonyms") as conn:
            alerts, transactions, allows = personal.erase(conn, pseudonyms, _now())
        self._evidence_refs = None
        log.info("store.erased", alerts=alerts, transactions=transactions, allow_entries=allows)
        return {DataKind.ALERTS: alerts, DataKind.TRANSACTIONS: transactions}

    # ------------------------------------------------------------------------------------------ meta

    def has_pseudonymised_data(self) -> bool:
        """True when the store holds (or held) pseudonyms: marked in meta, or any alert or transaction row.

        The vault refuses to start (and to generate a new key) when this is true and no key is configured.
        """
        with self._read("reading store meta") as conn:
            return meta.has_data(conn)

    def pseudonym_key_versions(self) -> frozenset[int]:
        """The pseudonym key versions recorded as used for data in this store."""
        with self._read("reading store meta") as conn:
            return frozenset(meta.read_versions(conn))

    def mark_pseudonymised(self, key_versions: Iterable[int]) -> None:
        """Record that the store holds pseudonyms made under ``key_versions`` (merged with those recorded)."""
        versions = {int(v) for v in key_versions}
        bad = sorted(v for v in versions if not 1 <= v <= 99)
        if bad:
            raise ConfigError(f"pseudonym key versions must be 1..99, got {bad}")
        with self._write("writing store meta") as conn:
            self._known_versions = meta.note_versions(conn, versions)

    def _note_versions(self, conn: Connection, versions: set[int]) -> None:
        """Record key versions seen in written rows (skipped when already recorded by this Store)."""
        if not versions or (self._known_versions is not None and versions <= self._known_versions):
            return
        self._known_versions = meta.note_versions(conn, versions)
