"""Pseudonyms: unchanged format (against a reference implementation of the foundation's algorithm), properties."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from chargeguard.vault.pseudonyms import PSEUDONYM_LENGTH, Pseudonymiser, normalise_token

KEYS = {1: b"a" * 32, 12: b"b" * 40}


def reference(key: bytes, version: int, raw: str, decimal_uids: bool = False) -> str:
    """The foundation's original, straightforward implementation; the optimised one must agree bit for bit."""
    text = raw.strip().upper()
    if re.match(r"^[0-9A-F]{2}(?:[:\- ][0-9A-F]{2})+$", text):
        text = re.sub(r"[:\- ]", "", text)
    if decimal_uids and text.isascii() and text.isdigit() and len(text) <= 30:
        as_hex = format(int(text), "X")
        text = as_hex.rjust(max(8, len(as_hex) + (len(as_hex) % 2)), "0")
    digest = hmac.new(key, text.encode("utf-8"), hashlib.sha256).digest()
    prefix = f"tok{version}_"
    body = base64.b32encode(digest).decode("ascii").lower()[: PSEUDONYM_LENGTH - len(prefix) - 2]
    check_key = hashlib.sha256(b"chargeguard-check:" + key).digest()
    check = (
        base64.b32encode(hmac.new(check_key, body.encode("ascii"), hashlib.sha256).digest()).decode().lower()
    )
    return prefix + body + check[:2]


TOKENS = st.one_of(
    st.text(max_size=40),
    st.binary(min_size=4, max_size=10).map(lambda b: b.hex()),
    st.binary(min_size=4, max_size=10).map(lambda b: ":".join(f"{x:02X}" for x in b)),
    st.integers(min_value=0, max_value=10**15).map(str),
)


@given(TOKENS, st.booleans())
@settings(max_examples=400, deadline=None)
def test_pseudonyms_match_the_reference_algorithm(raw: str, decimal_uids: bool) -> None:
    for version in KEYS:
        p = Pseudonymiser(KEYS, version, decimal_uids=decimal_uids)
        expected = reference(KEYS[version], version, raw, decimal_uids)
        if p.is_pseudonym(raw):
            continue
        assert p(raw) == expected
        assert p.hash_under(version, raw) == expected


@given(TOKENS)
@settings(max_examples=300, deadline=None)
def test_pseudonym_properties(raw: str) -> None:
    p = Pseudonymiser(KEYS, 1)
    value = p(raw)
    assert len(value) == PSEUDONYM_LENGTH and value.startswith("tok1_")
    assert p.version_of(value) == 1 and p.version_of(value.upper()) == 1
    assert p(value) == value and p(value.upper()) == value  # recognised on input, case-insensitive


def test_normalisation_joins_spellings_but_never_truncates() -> None:
    p = Pseudonymiser(KEYS, 1, decimal_uids=True)
    assert p("04:a2:b3:c4") == p("04A2B3C4") == p(" 04-A2-B3-C4 ") == p("04 a2 b3 c4")
    assert p("04A2B3C4") != p("04A2B3C4D5E6F7")
    assert normalise_token(str(0x04AA9BC4), decimal_uids=True) == "04AA9BC4"
    assert p(str(0x04AA9BC4)) == p("04aa9bc4")


def test_forged_or_foreign_pseudonyms_are_hashed_not_passed() -> None:
    p = Pseudonymiser(KEYS, 1)
    genuine = p("04A2B3C4")
    forged = genuine[:-2] + ("aa" if genuine[-2:] != "aa" else "bb")
    assert p.version_of(forged) is None and p(forged) != forged
    other = Pseudonymiser({1: b"z" * 32}, 1)("04A2B3C4")
    assert p.version_of(other) is None


@given(st.text(max_size=40), st.booleans())
@settings(max_examples=300, deadline=None)
def test_pseudonymise_never_raises(raw: str, decimal_uids: bool) -> None:
    value = Pseudonymiser(KEYS, 1, decimal_uids=decimal_uids)(raw)
    assert len(value) == PSEUDONYM_LENGTH


def test_non_ascii_digits_are_not_read_as_decimal_uids() -> None:
    assert normalise_token("²³", decimal_uids=True) == "²³"


@given(st.binary(min_size=0, max_size=200), st.binary(max_size=300), st.sampled_from([b"", b"layer:"]))
@settings(max_examples=300, deadline=None)
def test_precomputed_hmac_states_equal_hmac_new(key: bytes, msg: bytes, prefix: bytes) -> None:
    from chargeguard.vault.pseudonyms import _KeyedSha256

    assert _KeyedSha256(key, prefix).mac(msg) == hmac.new(key, prefix + msg, hashlib.sha256).digest()


def reference_layer(key: bytes, version: int, pseudonym: str) -> str:
    """The foundation's layer: HMAC(key, "layer:" + pseudonym) formatted as a version-``version`` pseudonym."""
    digest = hmac.new(key, b"layer:" + pseudonym.encode("ascii"), hashlib.sha256).digest()
    prefix = f"tok{version}_"
    body = base64.b32encode(digest).decode("ascii").lower()[: PSEUDONYM_LENGTH - len(prefix) - 2]
    check_key = hashlib.sha256(b"chargeguard-check:" + key).digest()
    check = base64.b32encode(hmac.new(check_key, body.encode("ascii"), hashlib.sha256).digest()).decode()
    return prefix + body + check[:2].lower()


LAYERED = {1: b"a" * 32, 2: b"c" * 32, 12: b"b" * 40}


@given(TOKENS)
@settings(max_examples=200, deadline=None)
def test_layered_pseudonyms_match_the_reference_through_every_layer(raw: str) -> None:
    p = Pseudonymiser(LAYERED, 12, layers={12: 2, 2: 1})
    if p.is_pseudonym(raw):
        return
    one = reference(LAYERED[1], 1, raw)
    two = reference_layer(LAYERED[2], 2, one)
    twelve = reference_layer(LAYERED[12], 12, two)
    assert p(raw) == p.hash_under(12, raw) == twelve
    assert p.hash_under(2, raw) == two and p.hash_under(1, raw) == one
    assert p.upgrade(one) == p.upgrade(two.upper()) == twelve
    assert p.version_of(twelve) == 12 and p(one) == twelve
