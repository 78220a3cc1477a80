"""Capture reading: every kind of bad input is counted with file:line and reading goes on."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chargeguard.errors import CaptureError
from chargeguard.sources.capture import (
    BadLine,
    ConnectionRecord,
    FrameRecord,
    parse_line,
    parse_ts,
    read_capture,
)

GOOD = {
    "ts": "2026-03-01T08:00:00.123Z",
    "station": "CP-1",
    "ocpp": "1.6",
    "from": "station",
    "frame": [2, "1", "Heartbeat", {}],
}


def _write(path: Path, lines: list[bytes]) -> str:
    path.write_bytes(b"\n".join(lines) + b"\n")
    return str(path)


def test_reads_frames_and_connection_lines(tmp_path: Path) -> None:
    conn = {
        "ts": "2026-03-01T08:00:00+01:00",
        "station": "CP-1",
        "event": "connect",
        "remote": "203.0.113.7:1",
        "security_profile": 2,
    }
    items = list(read_capture(_write(tmp_path / "c.jsonl", [orjson.dumps(GOOD), orjson.dumps(conn)])))
    assert isinstance(items[0], FrameRecord) and items[0].frame == [2, "1", "Heartbeat", {}]
    assert isinstance(items[1], ConnectionRecord) and items[1].ts.hour == 7  # offset converted to UTC


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"{not json", "not_json"),
        (b"\xff\xfe garbage", "bad_encoding"),
        (b"[1, 2, 3]", "bad_shape"),
        (orjson.dumps({**GOOD, "ts": "222222-01-01T00:00:00Z"}), "bad_ts"),
        (orjson.dumps({**GOOD, "ts": "2026-03-01T08:00:00"}), "bad_ts"),
        (orjson.dumps({**GOOD, "station": 17}), "bad_station"),
        (orjson.dumps({**GOOD, "station": "x" * 49}), "bad_station"),
        (orjson.dumps({**GOOD, "ocpp": "3.0"}), "bad_ocpp"),
        (orjson.dumps({**GOOD, "from": "moon"}), "bad_from"),
        (
            orjson.dumps({"ts": GOOD["ts"], "station": "CP-1", "event": "connect", "security_profile": 9}),
            "bad_shape",
        ),
    ],
)
def test_bad_lines_are_reported_with_file_and_line(tmp_path: Path, line: bytes, reason: str) -> None:
    path = _write(tmp_path / "c.jsonl", [orjson.dumps(GOOD), line, orjson.dumps(GOOD)])
    items = list(read_capture(path))
    assert len(items) == 3
    bad = items[1]
    assert isinstance(bad, BadLine) and bad.reason == reason
    assert bad.source == f"{path}:2"
    assert isinstance(items[2], FrameRecord)  # reading went on


def test_oversize_line_is_skipped_in_bounded_memory(tmp_path: Path) -> None:
    huge = orjson.dumps(
        {**GOOD, "frame": [2, "1", "DataTransfer", {"vendorId": "x", "data": "A" * 3_000_000}]}
    )
    path = _write(tmp_path / "c.jsonl", [huge, orjson.dumps(GOOD)])
    items = list(read_capture(path, max_line_bytes=1_000_000))
    assert isinstance(items[0], BadLine) and items[0].reason == "oversize"
    assert isinstance(items[1], FrameRecord) and items[1].source.endswith(":2")


def test_truncated_gzip_keeps_what_was_read(tmp_path: Path) -> None:
    body = gzip.compress(
        b"\n".join(orjson.dumps({**GOOD, "frame": [2, str(i), "Heartbeat", {}]}) for i in range(2000))
    )
    path = tmp_path / "c.jsonl.gz"
    path.write_bytes(body[: len(body) // 2])
    items = list(read_capture(str(path)))
    frames = [i for i in items if isinstance(i, FrameRecord)]
    assert 0 < len(frames) < 2000
    assert isinstance(items[-1], BadLine) and items[-1].reason == "truncated"


def test_missing_file_is_a_capture_error(tmp_path: Path) -> None:
    with pytest.raises(CaptureError, match="does not exist"):
        list(read_capture(str(tmp_path / "nope.jsonl")))


@given(st.binary(max_size=300))
@settings(max_examples=500, deadline=None)
def test_line_parser_never_raises_on_arbitrary_bytes(data: bytes) -> None:
    item = parse_line(data, "fuzz:1")
    assert isinstance(item, FrameRecord | ConnectionRecord | BadLine)


@given(
    st.dictionaries(
        st.sampled_from(
            ["ts", "station", "ocpp", "from", "frame", "event", "remote", "security_profile", "detail"]
        ),
        st.none()
        | st.integers(-(2**63), 2**63 - 1)
        | st.text(max_size=30)
        | st.lists(st.integers(0, 9), max_size=3)
        | st.dictionaries(st.text(max_size=5), st.integers(0, 9), max_size=2),
    )
)
@settings(max_examples=500, deadline=None)
def test_line_parser_never_raises_on_capture_shaped_objects(obj: dict[str, object]) -> None:
    item = parse_line(orjson.dumps(obj), "fuzz:1")
    assert isinstance(item, FrameRecord | ConnectionRecord | BadLine)


@pytest.mark.parametrize(
    "text",
    [
        "2026-03-01T08:00:00.123Z",
        "2026-03-01T08:00:59.999999Z",
        "2026-03-01t08:00:00Z",
        "2026-03-01 23:59:59.5+00:00",
        "2026-03-01T08:00:00.123+05:30",
        "1969-12-31T23:59:59.999Z",
        "9999-12-31T23:59:59.999999Z",
    ],
)
def test_record_epoch_equals_timestamp_of_its_time(text: str) -> None:
    line = orjson.dumps({**GOOD, "ts": text})
    first = parse_line(line, "t:1")
    again = parse_line(line, "t:2")  # the second parse of the minute comes from the cache
    assert isinstance(first, FrameRecord) and isinstance(again, FrameRecord)
    assert first.t == first.ts.timestamp() and again.t == first.t


@given(st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(9999, 1, 1), timezones=st.just(UTC)))
@settings(max_examples=300, deadline=None)
def test_epoch_matches_timestamp_bit_for_bit(moment: datetime) -> None:
    text = moment.isoformat().replace("+00:00", "Z")
    parsed = parse_ts(text)
    assert parsed is not None
    assert parsed[0] == moment and parsed[1] == moment.timestamp()
