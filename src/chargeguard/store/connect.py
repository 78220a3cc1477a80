"""Database URLs and engines: the default location, password redaction, SQLite pragmas, error translation.

Every SQLAlchemy or driver error leaving the store passes through ``translate`` and becomes a ``StoreError``
whose message names the operation and the redacted URL, never a password and never SQL parameters.
"""

from __future__ import annotations

import os
import re
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError

from chargeguard.errors import StoreError
from chargeguard.store.clean import json_dumps

HOME_ENV = "CHARGEGUARD_HOME"
DEFAULT_HOME = Path("~/.local/share/chargeguard")
DB_FILE = "chargeguard.db"
SQLITE_BUSY_TIMEOUT_MS = 10_000
PG_CONNECT_TIMEOUT_S = 10

_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<user>[^:/@]*):(?P<password>[^@]*)@")
_PASSWORD_PARAM = re.compile(r"(?i)([a-z_]*password=)[^&\s]*")


def default_url() -> str:
    """SQLite file at ``$CHARGEGUARD_HOME/chargeguard.db`` (``~/.local/share/chargeguard`` when unset)."""
    home = os.environ.get(HOME_ENV) or str(DEFAULT_HOME)
    return f"sqlite:///{Path(home).expanduser() / DB_FILE}"


def redact_url(url: str | URL) -> str:
    """The URL with any password replaced by ``***`` (works on URLs SQLAlchemy cannot parse too)."""
    try:
        text = (url if isinstance(url, URL) else make_url(url)).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        text = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:***@", str(url))
    # libpq also takes passwords as query parameters (password=, sslpassword=)
    return _PASSWORD_PARAM.sub(r"\1***", text)


def _secrets_of(url: str | URL) -> list[str]:
    try:
        parsed = url if isinstance(url, URL) else make_url(url)
    except (ArgumentError, ValueError):
        m = _USERINFO.search(str(url))
        return [m["password"]] if m and m["password"] else []
    found = [parsed.password] if parsed.password else []
    for key, value in parsed.query.items():
        if "password" in key.lower():
            found.extend([value] if isinstance(value, str) else list(value))
    return [str(s) for s in found if s]


def describe(exc: BaseException, url: str | URL) -> str:
    """One line about a database error: the driver's message without SQL, parameters or secrets."""
    orig: BaseException = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    # first line only: later lines carry SQL, parameters (DETAIL: Key (...)=(...)) or documentation links
    lines = [line.strip() for line in str(orig).splitlines() if line.strip()]
    message = lines[0] if lines else type(orig).__name__
    for secret in _secrets_of(url):
        message = message.replace(secret, "***")
    return f"{type(orig).__name__}: {message}"


@contextmanager
def translate(action: str, url: str | URL) -> Iterator[None]:
    """Turn SQLAlchemy and driver errors inside the block into ``StoreError`` (redacted)."""
    try:
        yield
    except StoreError:
        raise
    except (SQLAlchemyError, ValueError) as exc:
        raise StoreError(f"{action} failed on {redact_url(url)}: {describe(exc, url)}") from exc


def _sqlite_file(url: URL) -> Path | None:
    database = url.database
    if (
        not database
        or database == ":memory:"
        or database.startswith("file:")
        or url.query.get("mode") == "memory"
    ):
        return None
    return Path(database).expanduser()


def _prepare_sqlite_file(path: Path) -> None:
    """Create the directory (0700) and an empty database file readable by its owner only (0600)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not path.exists():
        fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
        os.close(fd)


def _enable_wal(cursor: Any) -> None:
    """Switch the file to WAL once; the mode persists in the file, so later connections only read it.

    Changing the journal mode needs an exclusive lock and SQLite answers SQLITE_BUSY at once instead of
    waiting the busy timeout, so several processes opening a fresh store together retry here.
    """
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    delay = 0.005
    while True:
        mode = cursor.execute("PRAGMA journal_mode").fetchone()
        if mode is not None and str(mode[0]).lower() in ("wal", "memory"):
            return
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.2)


def _install_sqlite_hooks(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, connection_record: Any) -> None:
        # SQLAlchemy, not pysqlite, decides where transactions begin (needed for DDL and SAVEPOINT)
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA foreign_keys = ON")
            _enable_wal(cursor)
            cursor.execute("PRAGMA synchronous = NORMAL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # writers take the write lock up front: busy_timeout applies, no mid-transaction SQLITE_BUSY
        write = conn.get_execution_options().get("chargeguard_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def create_store_engine(url: str) -> tuple[Engine, URL]:
    """An Engine for ``url`` with chargeguard's settings; raises StoreError for unusable URLs."""
    with translate("opening the store", url):
        parsed = make_url(url)
        if parsed.drivername in ("postgresql", "postgres"):
            parsed = parsed.set(drivername="postgresql+psycopg")  # psycopg 3 is the driver chargeguard ships
        backend = parsed.get_backend_name()
        if backend == "sqlite":
            path = _sqlite_file(parsed)
            if path is not None:
                try:
                    _prepare_sqlite_file(path)
                except OSError as exc:
                    raise StoreError(
                        f"opening the store failed on {redact_url(parsed)}: {path.parent}: {exc.strerror}"
                    ) from exc
            engine = create_engine(parsed, json_serializer=json_dumps, json_deserializer=orjson.loads)
            _install_sqlite_hooks(engine)
        elif backend == "postgresql":
            connect_args: dict[str, Any] = {}
            if "connect_timeout" not in parsed.query:
                connect_args["connect_timeout"] = PG_CONNECT_TIMEOUT_S
            try:
                engine = create_engine(
                    parsed,
                    json_serializer=json_dumps,
                    json_deserializer=orjson.loads,
                    pool_pre_ping=True,
                    connect_args=connect_args,
                )
            except ImportError as exc:
                raise StoreError(
                    f"opening the store failed on {redact_url(parsed)}: driver {parsed.get_driver_name()!r} is not"
                    " installed (use postgresql+psycopg://...)"
                ) from exc
        else:
            raise StoreError(
                f"opening the store failed on {redact_url(parsed)}: unsupported database {backend!r}"
                " (use sqlite:///PATH or postgresql+psycopg://...)"
            )
        return engine, parsed
