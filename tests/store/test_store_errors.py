"""Error translation: every database failure becomes a StoreError naming the redacted URL, never a password."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from chargeguard.errors import StoreError
from chargeguard.events import Alert, Severity
from chargeguard.store import Store, default_url, redact_url
from chargeguard.testing import at

SECRET = "s3cr3t-Pa55"


def closed_port() -> int:
    """A local TCP port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            f"postgresql+psycopg://alice:{SECRET}@db.example:5432/cg",
            "postgresql+psycopg://alice:***@db.example:5432/cg",
        ),
        ("sqlite:////var/lib/cg.db", "sqlite:////var/lib/cg.db"),
        (f"postgresql://bob:{SECRET}@[::1:bad/cg", "postgresql://bob:***@[::1:bad/cg"),
        (f"postgresql+psycopg://h/cg?password={SECRET}&sslmode=require", None),
    ],
)
def test_redact_url(url: str, expected: str | None) -> None:
    redacted = redact_url(url)
    assert SECRET not in redacted
    if expected is not None:
        assert redacted == expected


def test_unreachable_server_is_a_store_error_without_the_password() -> None:
    url = f"postgresql+psycopg://chargeguard:{SECRET}@127.0.0.1:{closed_port()}/nowhere"
    with pytest.raises(StoreError) as info:
        Store.open(url)
    message = str(info.value)
    assert SECRET not in message
    assert "chargeguard:***@127.0.0.1" in message
    assert "opening the store failed" in message
    assert "OperationalError" in message


@pytest.mark.parametrize(
    "url",
    [
        "not a url at all",
        f"mysql://root:{SECRET}@localhost/cg",
        f"nosuchdb+driver://root:{SECRET}@localhost/cg",
        f"postgresql+asyncpg://root:{SECRET}@localhost/cg",
        "",
    ],
)
def test_unusable_urls_are_store_errors(url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CHARGEGUARD_HOME", str(tmp_path))  # "" means the default location
    if url == "":
        with Store.open(url) as opened:  # falls back to the default SQLite file
            assert opened.url == f"sqlite:///{tmp_path / 'chargeguard.db'}"
        return
    with pytest.raises(StoreError) as info:
        Store.open(url)
    assert SECRET not in str(info.value)


def test_sqlite_in_a_place_that_cannot_be_created(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError, match="opening the store failed"):
        Store.open(f"sqlite:///{blocker / 'sub' / 'cg.db'}")


def test_sqlite_file_that_is_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "garbage.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="not a database"):
        Store.open(f"sqlite:///{path}")


@pytest.mark.postgres
def test_wrong_password_is_a_store_error_without_the_password(pg_base: str) -> None:
    base = make_url(pg_base)
    url = base.set(password=SECRET).render_as_string(hide_password=False)
    with pytest.raises(StoreError) as info:
        Store.open(url)
    assert SECRET not in str(info.value)
    assert "authentication failed" in str(info.value)


def test_default_url_follows_chargeguard_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CHARGEGUARD_HOME", str(tmp_path / "home"))
    assert default_url() == f"sqlite:///{tmp_path / 'home' / 'chargeguard.db'}"
    monkeypatch.delenv("CHARGEGUARD_HOME")
    assert default_url() == f"sqlite:///{Path('~/.local/share/chargeguard').expanduser() / 'chargeguard.db'}"


@pytest.mark.postgres
def test_the_store_url_property_hides_the_password(pg_url: str) -> None:
    with Store.open(pg_url) as opened:
        parsed = make_url(pg_url)
        assert parsed.password
        assert opened.url.startswith(f"postgresql+psycopg://{parsed.username}:***@{parsed.host}:")


def test_constraint_violations_do_not_repeat_row_values(store: Store) -> None:
    token = "tok1_qqqqqqqqqqqqq23"
    bad = Alert(
        id="al_bad",
        kind="token.concurrent_use",
        severity=Severity.HIGH,
        confidence=1.5,
        ts=at(0),
        station="CP-1",
        stations=("CP-1",),
        transactions=(),
        token_ref=token,
        summary="s",
        evidence={"secretish": "value-xyz"},
    )
    with pytest.raises(StoreError, match="saving to the store failed") as info:
        store.save_alerts([bad])
    message = str(info.value)
    assert "check constraint" in message.lower()
    assert token not in message and "value-xyz" not in message
    assert store.alerts() == []


@pytest.mark.postgres
def test_a_plain_postgresql_url_uses_psycopg(pg_url: str) -> None:
    plain = make_url(pg_url).set(drivername="postgresql").render_as_string(hide_password=False)
    with Store.open(plain) as opened:
        assert opened.dialect == "postgresql"
        assert opened.url.startswith("postgresql+psycopg://")
