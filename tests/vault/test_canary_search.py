"""Canary forms find a token in every encoding, at any position; search_tree reads gzip, even truncated."""

from __future__ import annotations

import base64
import gzip
from pathlib import Path
from urllib.parse import quote

from hypothesis import given, settings
from hypothesis import strategies as st

from chargeguard.vault.canary import canary_forms, search_tree

CANARY = "04C0FFEE15BAD1"


def _found(blob: bytes, token: str = CANARY) -> bool:
    return any(form in blob for form in canary_forms(token))


@given(st.binary(max_size=20), st.binary(max_size=20))
@settings(max_examples=200, deadline=None)
def test_base64_of_any_surrounding_text_reveals_the_token(prefix: bytes, suffix: bytes) -> None:
    payload = prefix + CANARY.encode() + suffix
    assert _found(base64.b64encode(payload))
    assert _found(base64.urlsafe_b64encode(payload))


def test_every_encoding_is_found_and_unrelated_text_is_not() -> None:
    lowered = CANARY.lower()
    for blob in (
        CANARY.encode(),
        lowered.encode(),
        ":".join(CANARY[i : i + 2] for i in range(0, 14, 2)).encode(),
        CANARY.encode().hex().encode(),
        CANARY.encode("utf-16-le"),
        quote(CANARY, safe="").encode(),
        "".join(f"%{b:02X}" for b in CANARY.encode()).encode(),
        "".join(f"\\u{ord(c):04x}" for c in CANARY).encode(),
    ):
        assert _found(b"xx" + blob + b"yy"), blob
    assert not _found(b"04C0FFEE15BAD2 and tok1_abcdefghijklmno and a1b2c3d4")


def test_partly_escaped_json_and_url_text_is_searched_unescaped(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text('{"x": "\\u00304C\\u0030FFEE15BAD1"}')
    (tmp_path / "b.log").write_text("GET /?t=04C0%46FEE15BAD1 200")
    report = search_tree([tmp_path], [CANARY])
    assert sorted((Path(h.path).name, h.member) for h in report.hits) == [
        ("a.json", "raw+json-unescaped"),
        ("b.log", "raw+url-decoded"),
    ]


def test_search_tree_reports_bytes_and_hits_in_gzip_even_truncated(tmp_path: Path) -> None:
    (tmp_path / "clean.log").write_text("nothing to see\n")
    data = gzip.compress(b"x" * 1000 + CANARY.encode() + b"\n" + bytes(range(256)) * 400)
    (tmp_path / "rotated.jsonl.gz").write_bytes(data[: len(data) - 200])  # truncated
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "app.log").write_bytes(base64.b64encode(b"header " + CANARY.encode() + b" tail"))
    report = search_tree([tmp_path], [CANARY, "DE-8EO-C12345678-X"])
    assert report.files == 3 and report.bytes_searched > len(data)
    assert sorted((Path(h.path).name, h.member, h.canary) for h in report.hits) == [
        ("app.log", "raw", 0),
        ("rotated.jsonl.gz", "gzip", 0),
    ]
