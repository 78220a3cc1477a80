"""Capture reading: every kind of bad input is counted with file:line and reading goes on."""

from __future__ import annotations

import gzip
import json
import tempfile
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
    record_from_obj,
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
    again = parse_line(line, "t:2")
    assert isinstance(first, FrameRecord) and isinstance(again, FrameRecord)
    assert first.t == first.ts.timestamp() and again.t == first.t


@given(st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(9999, 1, 1), timezones=st.just(UTC)))
@settings(max_examples=300, deadline=None)
def test_epoch_matches_timestamp_bit_for_bit(moment: datetime) -> None:
    text = moment.isoformat().replace("+00:00", "Z")
    parsed = parse_ts(text)
    assert parsed is not None
    assert parsed[0] == moment and parsed[1] == moment.timestamp()


# Lines the reader's typed fast path must read exactly as the general path (orjson + record_from_obj) does:
# well-formed frame lines, and lines it must hand over because they break one of its rules.
_EDGE_LINES = [
    orjson.dumps(GOOD),
    orjson.dumps({**GOOD, "ts": "2026-03-01T08:00:00.123+05:30"}),  # an offset: converted to UTC
    orjson.dumps({**GOOD, "ts": "2026-03-01t08:00:00.5z"}),
    orjson.dumps({**GOOD, "ts": "2026-03-01 08:00:00Z"}),
    orjson.dumps({**GOOD, "ts": "2026-03-01T08:00:59.9999999Z"}),  # rounded into the next minute
    orjson.dumps({**GOOD, "ts": "2026-03-01T08:00:00"}),  # naive
    orjson.dumps({**GOOD, "ts": "2026-02-30T08:00:00Z"}),
    orjson.dumps({**GOOD, "ts": "222222-01-01T00:00:00Z"}),
    orjson.dumps({**GOOD, "ts": 1772352000}),
    orjson.dumps({**GOOD, "station": "é" * 48}),
    orjson.dumps({**GOOD, "station": "é" * 49}),
    orjson.dumps({**GOOD, "station": ""}),
    orjson.dumps({**GOOD, "ocpp": "1.5"}),
    orjson.dumps({**GOOD, "from": "cloud"}),
    orjson.dumps({**GOOD, "frame": None}),
    orjson.dumps({**GOOD, "frame": "text"}),
    orjson.dumps({**GOOD, "extra": {"a": [1, 2]}}),  # an extra field: the general path reads it
    orjson.dumps({k: v for k, v in GOOD.items() if k != "from"}),
    b'{"ts":"2026-03-01T08:00:00Z","station":"CP-1","ocpp":"1.6","from":"station",'
    b'"frame":[2,"1","MeterValues",{"transactionId":18446744073709551616}]}',  # beyond 64 bits: orjson's float
    b'{"ts":"2026-03-01T08:00:00Z","station":"CP-1","ocpp":"1.6","from":"station","frame":[2,"1e400",1e400]}',
    b'{"ts":"2026-03-01T08:00:00Z","station":"CP-1","ocpp":"1.6","from":"station","frame":[2,"\\ud800"]}',
    b'{"ts":"2026-03-01T08:00:00Z","station":"CP-1","ocpp":"1.6","from":"station","frame":[2,"\xff"]}',
    b'{"ts":"2026-03-01T08:00:00Z","station":"CP-1","ocpp":"1.6","from":"station","frame":[2,"\\ud800"]}',
    b'{"ts":"2026-03-01T08:00:00Z","station":"CP-1","ts":"2027-03-01T08:00:00Z","ocpp":"1.6","from":"station",'
    b'"frame":[3,"1",{}]}',  # a repeated key: the last one counts, in both
    b'{"ts":"2026-03-01T08:00:00Z","station":"CP-1","ocpp":"1.6","from":"station","frame":[3,"1",{}]} x',
    b"\xef\xbb\xbf" + orjson.dumps(GOOD),
]


def _general(line: bytes, source: str) -> FrameRecord | ConnectionRecord | BadLine:
    """The general path on one line as the reader holds it (with its newline, counted in ``size``)."""
    line += b"\n"
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        return parse_line(line, source)
    return record_from_obj(obj, source, len(line))


def _assert_read_as_general_path(tmp_path: Path, lines: list[bytes]) -> None:
    path = _write(tmp_path / "edge.jsonl", lines)
    items = list(read_capture(path))
    expected = [_general(line, f"{path}:{n}") for n, line in enumerate(lines, 1)]
    assert repr(items) == repr(expected)  # repr: equal datetimes in other zones would compare equal


def test_fast_path_reads_every_line_as_the_general_path(tmp_path: Path) -> None:
    _assert_read_as_general_path(tmp_path, _EDGE_LINES)


_TS_TEXT = st.sampled_from(
    [
        "2026-03-01T08:00:00Z",
        "2026-03-01T08:00:00.1234567Z",
        "2026-03-01T23:59:59.9999999-01:30",
        "2026-03-01t08:00:00z",
        "2026-03-01T08:00:00+0100",
        "2026-03-01T08:00:00",
        "2024-02-29T00:00:00Z",
        "2023-02-29T00:00:00Z",
        "2026-03-01T24:00:00Z",
    ]
) | st.text(max_size=30)


@given(
    st.fixed_dictionaries(
        {
            "ts": _TS_TEXT | st.integers(),
            "station": st.text(max_size=50),
            "ocpp": st.sampled_from(["1.6", "2.0.1", "2.1", "1.5"]) | st.integers(0, 3),
            "from": st.sampled_from(["station", "csms", "cs"]),
            "frame": st.none()
            | st.lists(
                st.integers(-(2**70), 2**70) | st.text(max_size=8) | st.floats(allow_nan=False), max_size=4
            ),
        },
        optional={"event": st.sampled_from(["connect", "x"]), "remote": st.text(max_size=5)},
    )
)
@settings(max_examples=300, deadline=None)
def test_fast_path_agrees_with_the_general_path_on_generated_lines(obj: dict[str, object]) -> None:
    line = json.dumps(obj).encode()  # the standard library writes integers beyond 64 bits too
    with tempfile.TemporaryDirectory() as folder:
        path = _write(Path(folder) / "one.jsonl", [line])
        (item,) = list(read_capture(path))
        assert repr(item) == repr(_general(line, f"{path}:1"))
