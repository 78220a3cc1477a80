"""tokens scan (files, gzip, CSV, SQLite incl. free pages) and pseudonymise (captures, CSV) - library level."""

from __future__ import annotations

import gzip
import sqlite3
from pathlib import Path

import orjson
import pytest

from chargeguard.errors import InputError
from chargeguard.vault.filescan import Finding, mask, scan_paths
from chargeguard.vault.pseudonyms import Pseudonymiser
from chargeguard.vault.share import pseudonymise_capture, pseudonymise_csv

P = Pseudonymiser({1: b"s" * 32}, 1)
CARD, EMAID, SECRET = "04A2B3C4D5E6F7", "DE-8EO-C12345678-X", "00112233445566778899"


def _capture_lines() -> list[dict[str, object]]:
    return [
        {
            "ts": "2026-03-01T08:00:00Z",
            "station": "CP-1",
            "ocpp": "1.6",
            "from": "station",
            "frame": [2, "a1b2c3d4", "Authorize", {"idTag": CARD}],
        },
        {
            "ts": "2026-03-01T08:00:01Z",
            "station": "CP-1",
            "ocpp": "2.0.1",
            "from": "station",
            "frame": [
                2,
                "550e8400-e29b-41d4-a716-446655440000",
                "TransactionEvent",
                {
                    "idToken": {"idToken": EMAID, "type": "eMAID"},
                    "transactionInfo": {"transactionId": "0badc0de"},
                },
            ],
        },
        {
            "ts": "2026-03-01T08:00:02Z",
            "station": "CP-1",
            "ocpp": "1.6",
            "from": "csms",
            "frame": [2, "9", "ChangeConfiguration", {"key": "AuthorizationKey", "value": SECRET}],
        },
        {
            "ts": "2026-03-01T08:00:03Z",
            "station": "CP-1",
            "ocpp": "1.6",
            "from": "station",
            "frame": [4, "10", "GenericError", "unknown card 04:a2:b3:c4", {"uid": "AnyUid77"}],
        },
        {
            "ts": "2026-03-01T08:00:04Z",
            "station": "CP-1",
            "event": "connect",
            "remote": "203.0.113.7:1",
            "detail": {},
        },
    ]


def _write_capture(path: Path, lines: list[dict[str, object]], extra: bytes = b"") -> None:
    data = b"".join(orjson.dumps(line) + b"\n" for line in lines) + extra
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)


def _all_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


def test_mask_never_shows_more_than_four_characters() -> None:
    assert mask(CARD) == "04**********F7"
    assert mask("ABCDEFG") == "<7 chars>"


def test_scan_finds_tokens_in_gzip_capture_without_printing_them(tmp_path: Path) -> None:
    path = tmp_path / "cap.jsonl.gz"
    _write_capture(path, _capture_lines(), b"raw log line idTag=04FFEEDDCCBBAA\n")
    findings = list(scan_paths([tmp_path]))
    where = {(f.location, f.field, f.kind) for f in findings}
    assert ("line 1", "idTag", "field") in where
    assert ("line 2", "idToken", "field") in where
    assert ("line 3", "value", "secret") in where
    assert ("line 4", None, "rfid") in where
    assert ("line 4", "uid", "field") in where
    assert ("line 6", "idTag", "token") in where
    assert len(findings) == 6  # message ids, UUIDs, transaction ids are not findings
    rendered = repr(findings)
    for raw in (CARD, EMAID, SECRET, "AnyUid77", "04FFEEDDCCBBAA", "04:a2:b3:c4"):
        assert raw not in rendered
    line1 = next(f for f in findings if f.location == "line 1")
    text = _all_bytes(path).decode().splitlines()[0]
    assert text[line1.offset : line1.offset + len(CARD)] == CARD


def test_scan_csv_by_header_and_heuristics(tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    path.write_text(f"session,card_uid,kwh,note\n1,{CARD},12.5,ok\n2,{P(CARD)},1.0,card 04:AA:BB:CC\n")
    findings = list(scan_paths([path]))
    assert [(f.location, f.field, f.kind) for f in findings] == [
        ("line 2", "card_uid", "column"),
        ("line 3", "note", "rfid"),
    ]


def test_scan_sqlite_rows_and_deleted_rows_in_free_space(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    con = sqlite3.connect(path)
    con.execute("PRAGMA secure_delete = OFF")  # some builds zero deleted cells; the default build does not
    with con:
        con.execute("CREATE TABLE auth (id INTEGER PRIMARY KEY, note TEXT, id_tag TEXT)")
        con.execute("INSERT INTO auth (id_tag, note) VALUES (?, ?)", (CARD, "fine"))
        con.execute("INSERT INTO auth (id_tag, note) VALUES (?, ?)", (P(CARD), f"contract {EMAID}"))
        con.execute("INSERT INTO auth (id_tag, note) VALUES (?, ?)", ("04FFEEDDCCBBAA", "deleted later"))
        con.execute("DELETE FROM auth WHERE note = 'deleted later'")
    assert b"04FFEEDDCCBBAA" in path.read_bytes()  # the deleted row's bytes are still in the file
    con.close()
    findings = list(scan_paths([path]))
    assert [(f.location, f.field, f.kind) for f in findings] == [
        ("table auth.id_tag rowid 1", "id_tag", "column"),
        ("table auth.note rowid 2", None, "emaid"),
        ("free space", None, "rfid"),
    ]
    assert findings[-1].masked == "04**********AA"


def test_scan_reports_unreadable_and_truncated_files(tmp_path: Path) -> None:
    first = orjson.dumps(_capture_lines()[0]) + b"\n"
    good = gzip.compress(first + b"".join(b'{"n": %d, "ts": "%d"}\n' % (i, i * 7919) for i in range(20000)))
    (tmp_path / "cut.jsonl.gz").write_bytes(good[: len(good) // 2])
    findings = list(scan_paths([tmp_path / "cut.jsonl.gz", tmp_path / "missing"]))
    kinds = [f.kind for f in findings]
    assert "field" in kinds and kinds.count("unreadable") == 2


def test_pseudonymise_capture_keeps_structure_and_linkage(tmp_path: Path) -> None:
    src, dst = tmp_path / "cap.jsonl", tmp_path / "shared.jsonl.gz"
    lines = _capture_lines()
    _write_capture(src, lines, b"garbage idTag=04FFEEDDCCBBAA\n")
    report = pseudonymise_capture(src, dst, P)
    assert (report.lines, report.frames, report.connection_lines, report.not_json) == (6, 4, 1, 1)
    assert report.values_pseudonymised == 3
    out = _all_bytes(dst).decode().splitlines()
    first, second, third, fourth, fifth = (orjson.loads(x) for x in out[:5])
    assert first["frame"] == [2, "a1b2c3d4", "Authorize", {"idTag": P(CARD)}]
    assert {k: first[k] for k in ("ts", "station", "ocpp", "from")} == {
        k: lines[0][k] for k in ("ts", "station", "ocpp", "from")
    }
    assert second["frame"][1] == "550e8400-e29b-41d4-a716-446655440000"
    assert second["frame"][3]["idToken"] == {"idToken": P(EMAID), "type": "eMAID"}
    assert second["frame"][3]["transactionInfo"] == {"transactionId": "0badc0de"}
    assert third["frame"][3] == {"key": "AuthorizationKey", "value": "[redacted:secret]"}
    assert fourth["frame"][3] == "unknown card [redacted:rfid]" and fourth["frame"][4] == {
        "uid": P("AnyUid77")
    }
    assert fifth == lines[4]
    assert out[5] == "garbage idTag=[redacted:token]"
    assert list(scan_paths([dst])) == []
    assert (dst.stat().st_mode & 0o777) == 0o600
    assert pseudonymise_capture(dst, tmp_path / "again.jsonl", P).values_pseudonymised == 0  # idempotent
    assert _all_bytes(tmp_path / "again.jsonl") == _all_bytes(dst)


def test_pseudonymise_refuses_to_overwrite(tmp_path: Path) -> None:
    src, dst = tmp_path / "cap.jsonl", tmp_path / "out.jsonl"
    _write_capture(src, _capture_lines())
    dst.write_text("precious")
    with pytest.raises(InputError, match="refusing to overwrite"):
        pseudonymise_capture(src, dst, P)
    assert dst.read_text() == "precious"


def test_pseudonymise_csv(tmp_path: Path) -> None:
    src, dst = tmp_path / "export.csv.gz", tmp_path / "shared.csv"
    src.write_bytes(gzip.compress(f"session,Card_UID,note\n1,{CARD},card 04:AA:BB:CC\n2,,x\n".encode()))
    report = pseudonymise_csv(src, dst, P, ["card_uid"])
    assert report.values_pseudonymised == 1
    assert dst.read_text().splitlines() == [
        "session,Card_UID,note",
        f"1,{P(CARD)},card [redacted:rfid]",
        "2,,x",
    ]
    with pytest.raises(InputError, match="no column"):
        pseudonymise_csv(src, tmp_path / "b.csv", P, ["rfid"])
    with pytest.raises(InputError, match="at least one column"):
        pseudonymise_csv(src, tmp_path / "c.csv", P, [])


def test_finding_dict_has_no_value_field() -> None:
    finding = Finding("f", "line 1", 0, "idTag", "field", "04**F7")
    assert set(finding.as_dict()) == {"path", "location", "offset", "field", "kind", "masked"}
