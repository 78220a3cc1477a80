"""Firmware version parsing and ordering across vendor formats."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chargeguard.detectors.versions import compare_versions, downgrade_depth, parse_version


@pytest.mark.parametrize(
    ("older", "newer"),
    [
        ("1.9", "1.10"),
        ("1.2.3", "1.2.4"),
        ("v1.2.3", "v1.3.0"),
        ("v1.2.3", "1.2.4"),
        ("1.2.3-rc1", "1.2.3"),
        ("1.2.3-rc1", "1.2.3-rc2"),
        ("1.2.3-alpha", "1.2.3-beta.1"),
        ("1.2.3b2", "1.2.3rc1"),
        ("1.2.3.dev4", "1.2.3a1"),
        ("1.2.3", "1.2.3-post1"),
        ("FW_2023.04.1", "FW_2023.11.0"),
        ("FW_2023.04.1", "FW_2024.01"),
        ("4.12.0.999", "4.12.0.1234"),
        ("4.12.0", "4.12.0.1"),
        ("R2.1 build 345", "R2.1 build 346"),
        ("R2.1 build 999", "R2.2 build 1"),
        ("R2.1", "R2.1 build 2"),
        ("1.2.3+7", "1.2.3+12"),
        ("20230401", "20231215"),
        ("20230401", "2023.12.15"),
        ("Version 3.4", "version 3.10"),
        ("ACME-1.2", "acme_1.3"),
        ("1.02", "1.10"),
    ],
)
def test_orders_vendor_formats(older: str, newer: str) -> None:
    assert compare_versions(older, newer) == -1
    assert compare_versions(newer, older) == 1


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("1.2", "1.2.0"),
        ("v1.2.3", "1.2.3"),
        ("FW_1.2.3", "fw-1.2.3"),
        ("1.2.3", "1.2.3 "),
        ("R2.1 build 345", "r2.1 BUILD 345"),
        ("abc", "ABC"),
    ],
)
def test_equal_spellings(a: str, b: str) -> None:
    assert compare_versions(a, b) == 0


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("latest", "stable"),  # no digits
        ("abc", "1.2.3"),
        ("", "1.2"),
        (None, "1.2"),
        ("ABC-1.2", "XYZ-1.3"),  # different product lines
        ("2023.04.1", "3.1.0"),  # date scheme vs semantic scheme
        ("1.2.3-g1a2b3c", "1.2.4"),  # unknown vendor suffix vs none
        ("1.2.3-custom", "1.2.3-vendor"),
        ("9" * 40, "1.0"),  # absurd digit run
    ],
)
def test_incomparable(a: str | None, b: str | None) -> None:
    assert compare_versions(a, b) is None


def test_parse_reads_parts() -> None:
    v = parse_version("R2.1 build 345")
    assert v is not None
    assert (v.scheme, v.release, v.build, v.product) == ("semantic", (2, 1), 345, "")
    d = parse_version("FW_2023.04.1")
    assert d is not None
    assert (d.scheme, d.release) == ("date", (2023, 4, 1))
    compact = parse_version("20230401")
    assert compact is not None
    assert (compact.scheme, compact.release) == ("date", (2023, 4, 1))
    assert parse_version("x" * 200 + "1") is None
    assert parse_version("no version here") is None


def test_downgrade_depth() -> None:
    def depth(a: str, b: str) -> str:
        pa, pb = parse_version(a), parse_version(b)
        assert pa is not None and pb is not None
        return downgrade_depth(pa, pb)

    assert depth("1.2.3", "2.0.0") == "major"
    assert depth("1.2.3", "1.3.0") == "minor"
    assert depth("1.2.3", "1.2.4") == "patch"
    assert depth("4.12.0.999", "4.12.0.1234") == "patch"
    assert depth("R2.1 build 1", "R2.1 build 2") == "build"
    assert depth("2023.04", "2024.01") == "year"


_parts = st.lists(st.integers(0, 30).map(str), min_size=1, max_size=4)
_version_text = st.builds(
    lambda prefix, parts, sep, suffix: prefix + sep.join(parts) + suffix,
    st.sampled_from(["", "v", "V", "FW_", "R", "ACME-", "Version "]),
    _parts,
    st.sampled_from([".", "_"]),
    st.sampled_from(["", "-rc1", "-rc2", "b3", "-alpha", " build 7", " build 12", "+5", "-post1", "-custom"]),
) | st.text(max_size=12)


@given(_version_text, _version_text)
@settings(max_examples=150, deadline=None)
def test_comparison_is_antisymmetric(a: str, b: str) -> None:
    ab, ba = compare_versions(a, b), compare_versions(b, a)
    assert (ab is None) == (ba is None)
    if ab is not None and ba is not None:
        assert ab == -ba


@given(_version_text, _version_text, _version_text)
@settings(max_examples=150, deadline=None)
def test_comparison_is_transitive(a: str, b: str, c: str) -> None:
    ab, bc, ac = compare_versions(a, b), compare_versions(b, c), compare_versions(a, c)
    if ab is not None and bc is not None and ac is not None and ab == bc and ab != 0:
        assert ac == ab
