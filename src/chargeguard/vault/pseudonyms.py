"""Keyed, versioned pseudonyms for driver tokens (RFID UIDs, eMAIDs, OCPI token uids).

Format (fits an OCPP 1.6 idTag, CiString20, so pseudonymised captures stay schema-valid)::

    tok<v>_<body><check>        e.g. tok1_k3q7x2m9a4b5cde   (always 20 characters)

* ``<v>``: key version, decimal 1..99.
* ``<body>``: the first 13 (v<10) or 12 (v>=10) base32 characters (lowercase RFC 4648 alphabet) of
  HMAC-SHA256(key, normalised token) - 65 / 60 bits; collisions are negligible below ~10^8 distinct tokens.
* ``<check>``: 2 base32 characters of HMAC-SHA256(check key, body). A string is recognised as a
  pseudonym only when its check verifies under a known key, so a raw card number that happens to look like
  a pseudonym, or a forged one, is pseudonymised like any other token instead of being passed through.

Pseudonyms are compared case-insensitively (OCPP tokens are case-insensitive; stations may upper-case them).

Normalisation before hashing (never truncating: cards with different UID lengths are different cards):
strip surrounding white space; upper-case; for hexadecimal UIDs written with separators (``04:A2:B3``,
``04-a2-b3``, ``04 A2 B3``) drop the separators; optionally (``decimal_uids=True``) read all-digit tokens
as decimal UIDs and write them as hex (even number of digits, at least 8) so that the decimal and hex
spellings of one card meet.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass

from chargeguard.errors import KeyMaterialError

PSEUDONYM_LENGTH = 20
_PSEUDONYM_RE = re.compile(r"^tok([1-9][0-9]?)_([a-z2-7]{14,15})$", re.IGNORECASE)
_HEX_WITH_SEPARATORS = re.compile(r"^[0-9A-F]{2}(?:[:\- ][0-9A-F]{2})+$")
_MIN_KEY_BYTES = 32


def _b32(digest: bytes) -> str:
    return base64.b32encode(digest).decode("ascii").lower()


def normalise_token(raw: str, *, decimal_uids: bool = False) -> str:
    """Return the canonical spelling of a token; never shortens the identifier."""
    text = raw.strip().upper()
    if _HEX_WITH_SEPARATORS.match(text):
        text = re.sub(r"[:\- ]", "", text)
    if decimal_uids and text.isdigit() and len(text) <= 30:
        as_hex = format(int(text), "X")
        width = max(8, len(as_hex) + (len(as_hex) % 2))
        text = as_hex.rjust(width, "0")
    return text


@dataclass(frozen=True, slots=True)
class PseudonymKey:
    """One version of the pseudonym key. Key bytes are never printed."""

    version: int
    secret: bytes

    def __post_init__(self) -> None:
        if not 1 <= self.version <= 99:
            raise KeyMaterialError(f"pseudonym key version must be 1..99, got {self.version}")
        if len(self.secret) < _MIN_KEY_BYTES:
            raise KeyMaterialError(
                f"pseudonym key version {self.version} is shorter than {_MIN_KEY_BYTES} bytes"
            )

    def __repr__(self) -> str:
        return f"PseudonymKey(version={self.version}, secret=<{len(self.secret)} bytes>)"


class Pseudonymiser:
    """Turns raw tokens into pseudonyms under the current key; recognises pseudonyms of any known version.

    Thread-safe and allocation-light: the hot path is one HMAC plus a dict lookup (results are memoised in a
    bounded cache keyed by the *normalised token's digest*, so the cache never holds a raw token).
    """

    __slots__ = ("_body_len", "_check_keys", "_current", "_decimal_uids", "_keys", "_prefix")

    def __init__(self, keys: Mapping[int, bytes], current: int, *, decimal_uids: bool = False) -> None:
        if current not in keys:
            raise KeyMaterialError(f"current pseudonym key version {current} is not among the loaded keys")
        self._keys = {v: PseudonymKey(v, s) for v, s in keys.items()}
        self._check_keys = {v: hashlib.sha256(b"chargeguard-check:" + s).digest() for v, s in keys.items()}
        self._current = current
        self._decimal_uids = decimal_uids
        self._prefix = f"tok{current}_"
        self._body_len = PSEUDONYM_LENGTH - len(self._prefix) - 2

    @property
    def current_version(self) -> int:
        return self._current

    def _check(self, version: int, body: str) -> str:
        digest = hmac.new(self._check_keys[version], body.encode("ascii"), hashlib.sha256).digest()
        return _b32(digest)[:2]

    def version_of(self, value: str) -> int | None:
        """The key version of a valid pseudonym, or None when ``value`` is not one of ours."""
        if len(value) != PSEUDONYM_LENGTH:
            return None
        m = _PSEUDONYM_RE.match(value)
        if m is None:
            return None
        version = int(m.group(1))
        if version not in self._keys:
            return None
        tail = m.group(2).lower()
        body, check = tail[:-2], tail[-2:]
        if len(body) != PSEUDONYM_LENGTH - len(f"tok{version}_") - 2:
            return None
        return version if hmac.compare_digest(self._check(version, body), check) else None

    def is_pseudonym(self, value: str) -> bool:
        return self.version_of(value) is not None

    def hash_under(self, version: int, raw: str) -> str:
        """Pseudonym of ``raw`` under a given key version (used by rotation)."""
        key = self._keys[version]
        normalised = normalise_token(raw, decimal_uids=self._decimal_uids)
        digest = hmac.new(key.secret, normalised.encode("utf-8"), hashlib.sha256).digest()
        prefix = f"tok{version}_"
        body = _b32(digest)[: PSEUDONYM_LENGTH - len(prefix) - 2]
        return prefix + body + self._check(version, body)

    def pseudonymise(self, raw: str) -> str:
        """Pseudonym of a raw token; a valid pseudonym passes through unchanged (lower-cased)."""
        if len(raw) == PSEUDONYM_LENGTH and self.version_of(raw) is not None:
            return raw.lower()
        return self.hash_under(self._current, raw)

    __call__ = pseudonymise
