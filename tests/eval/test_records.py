"""Reading truth and alert files: good lines become records, bad lines become errors naming file:line."""

from __future__ import annotations

import gzip
from pathlib import Path

import orjson
import pytest

from chargeguard.errors import CaptureError
from chargeguard.eval.kinds import CATALOGUE
from chargeguard.eval.records import load_alerts, load_truth, parse_time

GOOD_TRUTH = {
    "kind": "meter.rollback",
    "stations": ["CP-1"],
    "transactions": ["7"],
    "start": "2026-03-01T08:00:00Z",
    "end": "2026-03-01T09:00:00+01:00",
    "detectable_at": "2026-03-01T08:00:30Z",
    "note": "slow rollback",
    "also_acceptable": ["meter.inconsistent"],
}


def write_lines(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def test_truth_good_and_bad_lines(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "truth.jsonl",
        [
            orjson.dumps(GOOD_TRUTH),
            b"{not json",
            orjson.dumps({**GOOD_TRUTH, "kind": "meter.backwards"}),
            orjson.dumps({**GOOD_TRUTH, "start": "2026-03-01T08:00:00"}),
            b"",
            orjson.dumps([1, 2]),
            orjson.dumps({**GOOD_TRUTH, "also_acceptable": ["nope.kind"]}),
            orjson.dumps({**GOOD_TRUTH, "subtle": True, "end": None, "detectable_at": None}),
        ],
    )
    loaded = load_truth(path, kinds=CATALOGUE)
    assert loaded.bad_lines == 5
    messages = [str(e) for e in loaded.errors]
    assert messages[0] == f"{path}:2: not JSON"
    assert messages[1].startswith(f"{path}:3: unknown kind 'meter.backwards'")
    assert messages[2] == f"{path}:4: field start has no time zone (write Z or an offset)"
    assert messages[3] == f"{path}:6: not a JSON object"
    assert messages[4].startswith(f"{path}:7: unknown kind 'nope.kind'")
    first, last = loaded.records
    assert first.line == 1 and first.kind == "meter.rollback" and first.accepts("meter.inconsistent")
    assert first.end.isoformat() == "2026-03-01T09:00:00+01:00"
    assert last.subtle and last.end == last.start == last.detectable_at and last.line == 8


def test_alerts_gzip_and_station_folded_into_stations(tmp_path: Path) -> None:
    path = tmp_path / "alerts.jsonl.gz"
    line = {
        "id": "a1",
        "kind": "meter.rollback",
        "severity": "high",
        "ts": "2026-03-01T08:05:00Z",
        "station": "CP-1",
        "stations": ["CP-2"],
        "transactions": [7],
        "token_ref": None,
        "summary": "x",
        "evidence": {},
    }
    with gzip.open(path, "wb") as fh:
        fh.write(orjson.dumps(line) + b"\n" + orjson.dumps({**line, "ts": 5}) + b"\n")
    loaded = load_alerts(path, kinds=CATALOGUE)
    assert loaded.bad_lines == 1 and "must be an RFC 3339 string" in str(loaded.errors[0])
    (rec,) = loaded.records
    assert rec.stations == {"CP-1", "CP-2"} and rec.transactions == {"7"}


def test_missing_file_is_a_capture_error(tmp_path: Path) -> None:
    with pytest.raises(CaptureError, match="does not exist"):
        load_truth(tmp_path / "nope.jsonl", kinds=CATALOGUE)


def test_parse_time_refuses_naive_and_garbage() -> None:
    assert parse_time("2026-03-01T08:00:00.123Z", name="ts").tzinfo is not None
    for bad in ("2026-03-01 08:00", "yesterday", ""):
        with pytest.raises(ValueError, match="field ts"):
            parse_time(bad, name="ts")
