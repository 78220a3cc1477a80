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


_B32_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"
# every 10-bit / 15-bit value as its two / three base32 characters (RFC 4648, lower case): table lookups
# encode a digest several times faster than base64.b32encode, which matters on the per-frame hot path
_B32_PAIRS = tuple(_B32_ALPHABET[i >> 5] + _B32_ALPHABET[i & 31] for i in range(1 << 10))
_B32_TRIPLES = tuple(_B32_ALPHABET[i >> 10] + _B32_PAIRS[i & 1023] for i in range(1 << 15))
_SEPARATORS = re.compile(r"[:\- ]")


def _b32_13(digest: bytes) -> str:
    """The first 13 characters of lower-case RFC 4648 base32 of ``digest`` (4 table lookups of 15 bits + 1)."""
    n = int.from_bytes(digest[:9], "big")
    t = _B32_TRIPLES
    return (
        t[n >> 57]
        + t[(n >> 42) & 32767]
        + t[(n >> 27) & 32767]
        + t[(n >> 12) & 32767]
        + _B32_ALPHABET[(n >> 7) & 31]
    )


def _b32_2(digest: bytes) -> str:
    """The first 2 base32 characters of ``digest``."""
    return _B32_PAIRS[(digest[0] << 2) | (digest[1] >> 6)]


def normalise_token(raw: str, *, decimal_uids: bool = False) -> str:
    """Return the canonical spelling of a token; never shortens the identifier."""
    text = raw.strip().upper()
    if not text.isalnum() and _HEX_WITH_SEPARATORS.match(text):
        text = _SEPARATORS.sub("", text)
    if decimal_uids and text.isascii() and text.isdigit() and len(text) <= 30:
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

    Thread-safe (no mutable state after construction) and allocation-light: the hot path is one normalisation,
    one one-shot HMAC-SHA256 for the body and one for the check characters. No cache: a cache of raw tokens
    would be exactly the thing this module must not keep.

    Layered keys (``layers={2: 1}``: version 2 is layered over version 1) implement rotation without raw
    tokens: a version-2 pseudonym is ``layer_2(pseudonym under 1)``, where ``layer_v(p)`` is
    HMAC-SHA256(key v, "layer:" + p) formatted as a version-v pseudonym. A stored version-1 pseudonym is
    moved to version 2 by :meth:`upgrade` (no raw token needed), and a new raw token gets the same result
    through both layers. See ``chargeguard.vault.rotation`` for what an operator gains and loses.
    """

    __slots__ = (
        "_body_len",
        "_body_macs",
        "_check_macs",
        "_current",
        "_current_check",
        "_current_mac",
        "_decimal_uids",
        "_keys",
        "_layers",
        "_prefix",
        "_upgrade_paths",
    )

    def __init__(
        self,
        keys: Mapping[int, bytes],
        current: int,
        *,
        decimal_uids: bool = False,
        layers: Mapping[int, int] | None = None,
    ) -> None:
        if current not in keys:
            raise KeyMaterialError(f"current pseudonym key version {current} is not among the loaded keys")
        self._keys = {v: PseudonymKey(v, s) for v, s in keys.items()}
        # keyed HMAC states, copied per use: saves the two key-setup compressions of every HMAC call
        self._body_macs = {v: hmac.new(s, digestmod="sha256") for v, s in keys.items()}
        self._check_macs = {
            v: hmac.new(hashlib.sha256(b"chargeguard-check:" + s).digest(), digestmod="sha256")
            for v, s in keys.items()
        }
        self._current_mac = self._body_macs[current]
        self._current_check = self._check_macs[current]
        self._current = current
        self._decimal_uids = decimal_uids
        self._prefix = f"tok{current}_"
        self._body_len = PSEUDONYM_LENGTH - len(self._prefix) - 2
        if layers is None:  # a KeyVersions dict from chargeguard.vault.keys carries the key file's layers
            layers = getattr(keys, "layers", None)
        self._layers = dict(layers or {})
        for outer, inner in self._layers.items():
            if outer not in self._keys or inner not in self._keys:
                raise KeyMaterialError(f"key layer {outer} over {inner} names a version that is not loaded")
            if inner >= outer:
                raise KeyMaterialError(
                    f"key layer {outer} over {inner}: a layer must sit on an older version"
                )
        # for every version on the current key's chain: the layers to apply to reach the current version
        self._upgrade_paths: dict[int, tuple[int, ...]] = {}
        chain = [current]
        while chain[-1] in self._layers:
            chain.append(self._layers[chain[-1]])
        for i, version in enumerate(chain):
            self._upgrade_paths[version] = tuple(reversed(chain[:i]))

    @property
    def current_version(self) -> int:
        return self._current

    @property
    def versions(self) -> frozenset[int]:
        """Every loaded key version."""
        return frozenset(self._keys)

    @property
    def layers(self) -> Mapping[int, int]:
        """Layered versions: outer version -> the version it is layered over."""
        return dict(self._layers)

    def _check(self, version: int, body: str) -> str:
        mac = self._check_macs[version].copy()
        mac.update(body.encode("ascii"))
        return _b32_2(mac.digest())

    def _format(self, version: int, digest: bytes) -> str:
        prefix = f"tok{version}_"
        body = _b32_13(digest)[: PSEUDONYM_LENGTH - len(prefix) - 2]
        return prefix + body + self._check(version, body)

    def _mac(self, version: int) -> hmac.HMAC:
        try:
            return self._body_macs[version].copy()
        except KeyError:
            raise KeyMaterialError(f"pseudonym key version {version} is not loaded") from None

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

    def layer(self, version: int, pseudonym: str) -> str:
        """Apply key layer ``version`` to a pseudonym of the version it is layered over."""
        inner = self._layers.get(version)
        if inner is None:
            raise KeyMaterialError(f"key version {version} is not a layer; pseudonyms cannot be moved to it")
        if self.version_of(pseudonym) != inner:
            raise KeyMaterialError(f"key layer {version} applies to version {inner} pseudonyms only")
        return self._layer(version, pseudonym)

    def _layer(self, version: int, pseudonym: str) -> str:
        mac = self._mac(version)
        mac.update(b"layer:" + pseudonym.lower().encode("ascii"))
        return self._format(version, mac.digest())

    def hash_under(self, version: int, raw: str) -> str:
        """Pseudonym of ``raw`` under a given key version (through its layers, if it is layered)."""
        inner = self._layers.get(version)
        if inner is not None:  # the inner pseudonym is ours by construction: no need to verify it
            return self._layer(version, self.hash_under(inner, raw))
        normalised = normalise_token(raw, decimal_uids=self._decimal_uids)
        mac = self._mac(version)
        mac.update(normalised.encode("utf-8"))
        return self._format(version, mac.digest())

    def upgrade(self, pseudonym: str) -> str | None:
        """The current-version pseudonym for a valid pseudonym of a version on the current key's layer chain.

        Returns the (lower-cased) input when it already is current, and None when it cannot be moved without
        the raw token (unknown version, or a version the current key is not layered over).
        """
        version = self.version_of(pseudonym)
        if version is None:
            return None
        path = self._upgrade_paths.get(version)
        if path is None:
            return None
        value = pseudonym.lower()
        for outer in path:
            value = self.layer(outer, value)
        return value

    def pseudonymise(self, raw: str) -> str:
        """Pseudonym of a raw token under the current key.

        A valid pseudonym passes through (lower-cased): moved to the current version when the current key is
        layered over its version, unchanged otherwise (it stays accepted for lookups until rotation ends).
        """
        if len(raw) == PSEUDONYM_LENGTH:
            version = self.version_of(raw)
            if version is not None:
                if version == self._current:
                    return raw.lower()
                return self.upgrade(raw) or raw.lower()
        if self._current in self._layers:
            return self.hash_under(self._current, raw)
        # the hot path, inlined: one normalisation, two HMACs from precomputed states, two table encodings
        text = raw.strip().upper()
        if not text.isalnum() or self._decimal_uids:
            text = normalise_token(text, decimal_uids=self._decimal_uids)
        mac = self._current_mac.copy()
        mac.update(text.encode("utf-8"))
        body = _b32_13(mac.digest())[: self._body_len]
        check = self._current_check.copy()
        check.update(body.encode("ascii"))
        return self._prefix + body + _b32_2(check.digest())

    __call__ = pseudonymise
