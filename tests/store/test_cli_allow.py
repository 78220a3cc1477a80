"""``chargeguard allow add|list|remove`` end to end on a real SQLite store (and PostgreSQL via --db)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
import typer
from typer.testing import CliRunner, Result

from chargeguard.cli import allow
from chargeguard.store import Store

TOKEN = "tok1_abcdefghijklm23"
RAW = "04A2B3C4D5E6F7"

Invoke = Callable[..., Result]


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Invoke:
    monkeypatch.setenv("CHARGEGUARD_HOME", str(tmp_path / "home"))
    for name in ("CHARGEGUARD_DB_URL", "CHARGEGUARD_PSEUDONYM_KEY"):
        monkeypatch.delenv(name, raising=False)
    app = typer.Typer()
    allow.register(app)
    app.command("noop")(lambda: None)  # a second command keeps "allow" a sub-command group
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        return runner.invoke(app, list(args), env={"COLUMNS": "250"})

    return invoke


def add_args(*extra: str) -> list[str]:
    return [
        "allow",
        "add",
        "--kind",
        "token.concurrent_use",
        "--expires",
        "2030-12-31T00:00:00Z",
        "--reason",
        "fleet card",
        "--by",
        "alice",
        *extra,
    ]


def listed(run: Invoke, *extra: str) -> list[dict[str, object]]:
    result = run("allow", "list", "--json", *extra)
    assert result.exit_code == 0, result.output
    return [orjson.loads(line) for line in result.stdout.splitlines()]


def test_add_list_remove(run: Invoke, tmp_path: Path) -> None:
    result = run(*add_args("--token", TOKEN.upper()))
    assert result.exit_code == 0, result.output
    assert "added allow entry 1" in result.stdout
    result = run(
        "allow",
        "add",
        "--kind",
        "*",
        "--station",
        "CP-TEST",
        "--expires",
        "2030-01-01T01:00:00+01:00",
        "--reason",
        "test station",
        "--by",
        "bob",
    )
    assert result.exit_code == 0, result.output
    first, second = listed(run)
    assert (first["id"], first["kind"], first["subject"], first["value"]) == (
        1,
        "token.concurrent_use",
        "token",
        TOKEN,
    )
    assert (first["expires"], first["reason"], first["added_by"]) == (
        "2030-12-31T00:00:00Z",
        "fleet card",
        "alice",
    )
    assert (second["subject"], second["value"], second["expires"]) == (
        "station",
        "CP-TEST",
        "2030-01-01T00:00:00Z",
    )

    result = run("allow", "remove", "1", "--by", "carol")
    assert result.exit_code == 0, result.output
    assert [e["id"] for e in listed(run)] == [2]
    trail = listed(run, "--all")
    assert (trail[0]["removed_by"], trail[0]["removed_at"] is not None) == ("carol", True)

    table = run("allow", "list", "--all")
    assert table.exit_code == 0 and "removed by carol" in table.stdout
    # the entries are in the default store, where a scan will read them
    with Store.open(f"sqlite:///{tmp_path / 'home' / 'chargeguard.db'}") as store:
        assert [e.value for e in store.allow_entries()] == ["CP-TEST"]


def test_raw_tokens_are_refused_and_never_echoed(run: Invoke, tmp_path: Path) -> None:
    result = run(*add_args("--token", RAW))
    assert result.exit_code == 2
    assert "pseudonym" in result.output
    assert RAW not in result.output
    assert listed(run, "--all") == []
    for path in (tmp_path / "home").glob("chargeguard.db*"):
        assert RAW.encode() not in path.read_bytes()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (add_args(), "exactly one of --token or --station"),
        (add_args("--token", TOKEN, "--station", "CP-1"), "exactly one of --token or --station"),
        (
            [
                *add_args("--station", "CP-1")[:4],
                "--expires",
                "2030-12-31T00:00:00",
                *add_args()[6:],
                "--station",
                "X",
            ],
            "time zone",
        ),
        (
            [
                *add_args("--station", "CP-1")[:4],
                "--expires",
                "next tuesday",
                *add_args()[6:],
                "--station",
                "X",
            ],
            "RFC 3339",
        ),
        (
            [
                "allow",
                "add",
                "--kind",
                "Bad Kind",
                "--station",
                "X",
                "--expires",
                "2030-01-01T00:00:00Z",
                "--reason",
                "r",
                "--by",
                "b",
            ],
            "not a detection kind",
        ),
        (["allow", "remove", "42", "--by", "carol"], "does not exist"),
        (["allow", "remove", "notanumber", "--by", "carol"], ""),
        (["allow", "remove", "1"], ""),
    ],
)
def test_usage_errors_exit_2(run: Invoke, args: list[str], message: str) -> None:
    result = run(*args)
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split())


def test_removing_twice_says_who_removed_it(run: Invoke) -> None:
    assert run(*add_args("--station", "CP-1")).exit_code == 0
    assert run("allow", "remove", "1", "--by", "carol").exit_code == 0
    again = run("allow", "remove", "1", "--by", "dave")
    assert again.exit_code == 2
    assert "already removed by carol" in again.output


def test_an_unreachable_database_exits_1_without_the_password(run: Invoke) -> None:
    result = run("allow", "list", "--db", "postgresql+psycopg://u:hunter2@127.0.0.1:1/cg")
    assert result.exit_code == 1
    assert "hunter2" not in result.output
    assert "u:***@127.0.0.1" in result.output


@pytest.mark.postgres
def test_allow_entries_on_postgresql(run: Invoke, pg_url: str) -> None:
    assert run(*add_args("--token", TOKEN, "--db", pg_url)).exit_code == 0
    assert [e["value"] for e in listed(run, "--db", pg_url)] == [TOKEN]


def test_the_main_app_has_the_allow_commands() -> None:
    from chargeguard.cli import app

    result = CliRunner().invoke(app, ["allow", "--help"])
    assert result.exit_code == 0
    assert all(word in result.output for word in ("add", "list", "remove"))
