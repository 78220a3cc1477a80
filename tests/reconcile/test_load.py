"""Loading partner files: both reading paths agree, positions stay exact, bad records are named, no raw token."""

from __future__ import annotations

import random
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest

import chargeguard.reconcile.load as load_module
from chargeguard.errors import InputError
from chargeguard.reconcile.generate import _cdr
from chargeguard.reconcile.load import LoadOptions, connect, lines_at, load
from chargeguard.reconcile.match import Reconciliation, reconcile
from chargeguard.vault.pseudonyms import Pseudonymiser

P = Pseudonymiser({1: b"l" * 32}, 1)


def cdr(i: int, **changes: Any) -> dict[str, Any]:
    record: dict[str, Any] = _cdr(i, random.Random(i), 10)
    record["cdr_token"]["uid"] = f"RAWCARD{i:07d}"
    for path, value in changes.items():
        *parents, leaf = path.split("__")
        target = record
        for name in parents:
            target = target[name]
        if value is _DROP:
            del target[leaf]
        else:
            target[leaf] = value
    return record


_DROP = object()

# every record below but the good ones is a bad record with the reason next to it
CASES: list[tuple[dict[str, Any] | bytes, str | None]] = [
    (cdr(0), None),
    (cdr(1, start_date_time="2026-03-01T10:00:00+02:00", end_date_time="2026-03-01T09:30:00Z"), None),
    (cdr(2, total_energy="12.5", total_cost__excl_vat="4.875"), None),
    (
        cdr(3, credit=True, total_cost__excl_vat=-4.0, total_energy=-2.5),
        None,
    ),  # a credit reverses its original
    (cdr(4, country_code="nl", party_id="abc"), None),  # upper-cased into the key
    (b'{"id": "BROKEN", "country_code": "NL"', "not a JSON object"),
    (b"[1, 2]", "not a JSON object"),
    (b'"just text"', "not a JSON object"),
    (orjson.dumps(cdr(5)) + b" " + orjson.dumps(cdr(6)), "not a JSON object"),  # two objects on one line
    (cdr(7, id=_DROP), "missing country_code, party_id or id"),
    (cdr(8, country_code="NLD"), "country_code must have 2 and party_id 3 characters"),
    (cdr(9, cdr_token="not an object"), "missing cdr_token uid, country_code or party_id"),
    (cdr(10, cdr_token__uid=""), "token uid empty or with a unit separator"),
    (cdr(11, cdr_location__evse_uid=None), "missing EVSE uid"),
    (cdr(12, start_date_time="yesterday"), "missing or unreadable start_date_time"),
    (cdr(13, start_date_time=1772400000), "missing or unreadable start_date_time"),
    (cdr(14, total_energy="lots"), "missing or non-numeric energy"),
    (cdr(15, total_energy=True), "missing or non-numeric energy"),
    (cdr(16, total_energy=-0.5), "negative energy"),
    (cdr(17, total_energy=5000), "absurd energy (over 1000 kWh)"),
    (cdr(25, credit=True, total_energy=-5000), "absurd energy (over 1000 kWh)"),
    (cdr(18, total_cost=_DROP), "missing or non-numeric total_cost.excl_vat"),
    (cdr(19, total_cost__excl_vat=-3.0), "negative cost on a CDR that is not a credit"),
    (cdr(20, total_cost__excl_vat=250_000), "absurd cost (over 100000)"),
    (cdr(21, currency="eur"), "currency is not ISO 4217"),
    (cdr(22, currency="EURO"), "currency is not ISO 4217"),
    (cdr(23, end_date_time="2026-02-01T00:00:00Z"), "ends before it starts"),
    (cdr(0, total_energy=1.0), "duplicate id (first seen at {unit} 1)"),
    (cdr(4, country_code="NL", party_id="ABC", total_energy=1.0), "duplicate id (first seen at {unit} 5)"),
    (
        cdr(24, country_code="DE", party_id="ALL", id="CDR000000000"),
        None,
    ),  # same id, other party: not a duplicate
]


def _jsonl(records: Sequence[dict[str, Any] | bytes]) -> bytes:
    return b"\n".join(r if isinstance(r, bytes) else orjson.dumps(r) for r in records) + b"\n"


def _errors(r: Reconciliation) -> list[tuple[int, str, str]]:
    """(position, id, reason) of every bad record of the CPO file, position as a number."""
    return sorted(
        (int(pos.split()[1]), ident, reason) for side, _, pos, ident, reason in r.errors() if side == "cpo"
    )


def _records(r: Reconciliation) -> list[tuple[Any, ...]]:
    return r.con.execute("SELECT * EXCLUDE (idx) FROM cpo ORDER BY idx").fetchall()


@pytest.fixture(scope="module")
def fast(tmp_path_factory: pytest.TempPathFactory) -> Reconciliation:
    path = tmp_path_factory.mktemp("fast") / "cpo.jsonl"
    path.write_bytes(_jsonl([r for r, _ in CASES]))
    return reconcile(path, path, P)


def test_every_record_is_kept_or_named_with_its_reason(fast: Reconciliation) -> None:
    expected = [
        (i + 1, reason.format(unit="line")) for i, (_, reason) in enumerate(CASES) if reason is not None
    ]
    assert [(pos, reason) for pos, _, reason in _errors(fast)] == expected
    good = sum(1 for _, reason in CASES if reason is None)
    # nothing else lost: every line is a record or a named error
    assert fast.counts["cpo_records"] == good
    assert fast.counts["cpo_records"] + fast.counts["errors_cpo"] == len(CASES)
    assert (fast.counts["emsp_records"], fast.counts["errors_emsp"]) == (
        good,
        len(CASES) - good,
    )  # same rules
    ids = {pos: ident for pos, ident, _ in _errors(fast)}
    assert ids[9 + 1] is None  # no id to name
    assert ids[len(CASES) - 1] == "NL*ABC*CDR000000004"
    keys = [row[0] for row in _records(fast)]
    assert keys == [
        "NL*ABC*CDR000000000", "BE*BEC*CDR000000001", "DE*ALL*CDR000000002", "NL*ABC*CDR000000003",
        "NL*ABC*CDR000000004", "DE*ALL*CDR000000000",
    ]  # fmt: skip


def test_values_are_typed_in_utc(fast: Reconciliation) -> None:
    rows = fast.con.execute(
        "SELECT key, strftime(start_ts, '%Y-%m-%dT%H:%M:%S'), energy, cost, credit FROM cpo ORDER BY idx"
    ).fetchall()
    by_key = {r[0]: r[1:] for r in rows}
    assert by_key["BE*BEC*CDR000000001"][0] == "2026-03-01T08:00:00"  # +02:00 read as an instant
    assert by_key["DE*ALL*CDR000000002"][1:3] == (12.5, Decimal("4.875"))  # numbers given as strings
    assert by_key["NL*ABC*CDR000000003"][1:] == (-2.5, -4, True)  # a credit may be negative


@pytest.mark.parametrize("shape", ["array", "blank line", "whitespace line", "object over lines"])
def test_slow_path_agrees_with_the_fast_path(shape: str, fast: Reconciliation, tmp_path: Path) -> None:
    records = [r for r, _ in CASES]
    if shape == "array":  # an array cannot hold the broken records: they are left out
        kept = [(i, r) for i, r in enumerate(records) if not isinstance(r, bytes)]
        path = tmp_path / "cpo.json"
        path.write_bytes(b"[" + b",\n".join(orjson.dumps(r) for _, r in kept) + b"]")
        r = reconcile(path, path, P)
        expected = [
            (kept.index((i, rec)) + 1, ident, reason.replace("line", "record").split(" (first")[0])
            for i, rec in enumerate(records)
            for pos, ident, reason in _errors(fast)
            if pos == i + 1 and not isinstance(rec, bytes)
        ]
        assert [(p, i, reason.split(" (first")[0]) for p, i, reason in _errors(r)] == expected
        assert _records(r) == _records(fast)
        return
    extra = {
        "blank line": b"\n",
        "whitespace line": b"   \n",
        "object over lines": b'{"id": "X",\n "country_code": "NL"}\n',
    }[shape]
    path = tmp_path / "cpo.jsonl"
    path.write_bytes(extra + _jsonl(records))
    r = reconcile(path, path, P)
    shift = extra.count(b"\n")
    errors = _errors(r)
    if shape == "object over lines":
        assert errors[:2] == [(1, None, "not a JSON object"), (2, None, "not a JSON object")]
        errors = errors[2:]
    assert [(p - shift, i, reason.replace(f"line {shift + 1})", "line 1)").replace(f"line {shift + 5})", "line 5)"))
            for p, i, reason in errors] == _errors(fast)  # fmt: skip
    assert _records(r) == _records(fast)


def test_positions_stay_exact_in_a_file_read_in_parallel(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # many read_json buffers (small maximum object size) and row groups: rowid must still be the line
    monkeypatch.setattr(load_module, "_MAX_LINE", 1 << 20)
    compact = {k: v for k, v in cdr(0).items() if k in ("country_code", "party_id", "start_date_time", "currency",
                                                          "end_date_time", "total_energy", "total_cost")}  # fmt: skip
    compact.update(id="C%09d", cdr_token={"uid": "RAWCARD0000001", "country_code": "DE", "party_id": "TNM"},
                   cdr_location={"evse_uid": "E1"})  # fmt: skip
    template = orjson.dumps(compact)
    n = 200_000
    bad = {1_234: b"{broken", 150_001: b"[]", n - 1: orjson.dumps(cdr(1, total_energy=-1))}
    path = tmp_path / "big.jsonl"
    with path.open("wb") as fh:
        for i in range(n):
            fh.write(bad.get(i, template % i))
            fh.write(b"\n")
    con = connect()
    load(con, "cpo", path, "cdr", P)
    errors = con.execute("SELECT position, reason FROM errors ORDER BY position").fetchall()
    assert errors == [
        ("line 1235", "not a JSON object"),
        ("line 150002", "not a JSON object"),
        (f"line {n}", "negative energy"),
    ]
    sample = con.execute("SELECT idx, key FROM cpo WHERE idx IN (0, 122880, 150000, ?)", [n - 2]).fetchall()
    assert sorted(sample) == [(i, f"NL*ABC*C{i:09d}") for i in (0, 122_880, 150_000, n - 2)]


def test_no_raw_token_survives_in_the_database(fast: Reconciliation) -> None:
    raw = {f"RAWCARD{i:07d}" for i in range(30)}
    tables = fast.con.execute("SELECT table_name FROM duckdb_tables()").fetchall()
    assert {t for (t,) in tables} == {"cpo", "emsp", "errors", "pairs", "disputes", "unmatched"}
    for (table,) in tables:
        text = str(fast.con.execute(f"SELECT * FROM {table}").fetchall())
        assert not any(uid in text for uid in raw), table
    assert "tok1_" in str(fast.con.execute("SELECT token_ref FROM cpo").fetchall())


def test_invalid_utf8_is_a_bad_line_or_a_clear_error_without_content(tmp_path: Path) -> None:
    line = b'{"cdr_token": {"uid": "RAWCARD9999999"}, "x": "\xff\xfe"}'
    path = tmp_path / "cpo.jsonl"
    path.write_bytes(_jsonl([cdr(0), line, cdr(1)]))
    r = reconcile(path, path, P)  # fast path: that line alone is bad
    assert [(p, reason) for p, _, reason in _errors(r)] == [(2, "not a JSON object")]
    assert r.counts["cpo_records"] == 2
    path.write_bytes(b"\n" + _jsonl([cdr(0), line, cdr(1)]))  # slow path: DuckDB refuses the file
    with pytest.raises(InputError) as caught:
        reconcile(path, path, P, load_options=LoadOptions())
    assert "RAWCARD" not in str(caught.value) and str(path) in str(caught.value)


def test_lines_at_matches_a_plain_split(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    rng = random.Random(5)
    path = tmp_path / "lines.txt"
    for _ in range(200):
        lines = [b"x" * rng.randrange(0, 9) + (str(i).encode() if rng.random() < 0.7 else b"") for i in range(
            rng.randrange(0, 60))]  # fmt: skip
        data = b"\n".join(lines) + (b"\n" if rng.random() < 0.5 else b"")
        path.write_bytes(data)
        monkeypatch.setattr(load_module, "_CHUNK", rng.randrange(1, 40))
        wanted = rng.sample(range(len(lines) + 2), k=min(len(lines) + 2, rng.randrange(0, 8)))
        split = data.split(b"\n")
        if data.endswith(b"\n") or not data:
            split.pop()
        expected = {i: split[i] for i in wanted if i < len(split)}
        assert lines_at(path, wanted) == expected
        assert load_module._scan(path, wanted, count=True) == (len(split), expected)


def test_currency_conflicts_are_disputes_naming_the_record_and_never_summed(tmp_path: Path) -> None:
    cpo_records = [cdr(1, total_cost__excl_vat=10.0), cdr(2, total_cost__excl_vat=7.0),
                   cdr(3, currency="USD", total_cost__excl_vat=5.0)]  # fmt: skip
    emsp_records = [cdr(1, currency="USD", total_cost__excl_vat=10.0), cdr(2, total_cost__excl_vat=7.0),
                    cdr(9, id="CDR000000002")]  # fmt: skip
    cpo, emsp = tmp_path / "cpo.jsonl", tmp_path / "emsp.jsonl"
    cpo.write_bytes(_jsonl(cpo_records))
    emsp.write_bytes(_jsonl(emsp_records))
    r = reconcile(cpo, emsp, P)
    disputes = r.disputes()
    assert [(d["cpo_key"], d["emsp_key"], d["reasons"], d["stake"], d["currency"]) for d in disputes] == [
        ("BE*BEC*CDR000000001", "BE*BEC*CDR000000001", "currency", Decimal("10"), "EUR")
    ]
    # ids are unique per party only: the eMSP's NL*ABC*CDR000000002 is not the CPO's DE*ALL*CDR000000002
    assert r.errors() == []
    assert [u["key"] for u in r.unmatched("emsp")] == ["NL*ABC*CDR000000002"]
    assert [(u["key"], u["currency"]) for u in r.unmatched("cpo")] == [("NL*ABC*CDR000000003", "USD")]
    totals = {(c, scope): (n, a) for c, scope, _, n, a in r.stakes}
    assert totals[("EUR", "total")] == (2, Decimal("10") + Decimal(str(cdr(9)["total_cost"]["excl_vat"])))
    assert totals[("USD", "total")] == (1, Decimal("5"))
