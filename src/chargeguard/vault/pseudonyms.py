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
_SHA256_BLOCK = 64
_IPAD = bytes(b ^ 0x36 for b in range(256))
_OPAD = bytes(b ^ 0x5C for b in range(256))
_LAYER_TAG = b"layer:"


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


class _KeyedSha256:
    """HMAC-SHA256 (RFC 2104) under one key from precomputed inner and outer SHA-256 states.

    ``mac(msg)`` equals ``hmac.new(key, msg, sha256).digest()`` (tested); it saves the key schedule and the
    Python-level ``hmac.HMAC`` wrapper: two C-level state copies, one update each, per call. ``prefix`` is fed
    into the inner state once at construction (the layer tag), so it costs nothing per call.
    """

    __slots__ = ("_inner", "_outer")

    def __init__(self, key: bytes, prefix: bytes = b"") -> None:
        if len(key) > _SHA256_BLOCK:
            key = hashlib.sha256(key).digest()
        key = key.ljust(_SHA256_BLOCK, b"\0")
        self._inner = hashlib.sha256(key.translate(_IPAD))
        self._outer = hashlib.sha256(key.translate(_OPAD))
        if prefix:
            self._inner.update(prefix)

    @property
    def states(self) -> tuple[hashlib._Hash, hashlib._Hash]:
        """The precomputed (inner, outer) states, for a caller that inlines ``mac`` on a hot path."""
        return self._inner, self._outer

    def mac(self, msg: bytes) -> bytes:
        inner = self._inner.copy()
        inner.update(msg)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()


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


class _Version:
    """Everything one key version needs per call, precomputed: its MACs, prefix and body length."""

    __slots__ = ("body", "body_len", "check", "layer", "prefix", "version")

    def __init__(self, version: int, secret: bytes) -> None:
        self.version = version
        self.body = _KeyedSha256(secret)
        self.layer = _KeyedSha256(secret, _LAYER_TAG)
        self.check = _KeyedSha256(hashlib.sha256(b"chargeguard-check:" + secret).digest())
        self.prefix = f"tok{version}_"
        self.body_len = PSEUDONYM_LENGTH - len(self.prefix) - 2

    def format(self, digest: bytes) -> str:
        """The pseudonym whose body is taken from ``digest``: prefix, body, two check characters."""
        body = _b32_13(digest)[: self.body_len]
        return self.prefix + body + _B32_PAIRS[_check_bits(self.check.mac(body.encode("ascii")))]


def _check_bits(digest: bytes) -> int:
    """The first 10 bits of ``digest``: the index of its two base32 check characters."""
    return (digest[0] << 2) | (digest[1] >> 6)


class Pseudonymiser:
    """Turns raw tokens into pseudonyms under the current key; recognises pseudonyms of any known version.

    Thread-safe (no mutable state after construction) and allocation-light: the hot path is one normalisation,
    one HMAC-SHA256 for the body and one for the check characters, each from precomputed inner/outer SHA-256
    states (``_KeyedSha256``), and table-driven base32. No cache: a cache keyed by raw tokens would keep
    exactly what this module must not keep (a memory dump would list every recent card).

    Layered keys (``layers={2: 1}``: version 2 is layered over version 1) implement rotation without raw
    tokens: a version-2 pseudonym is ``layer_2(pseudonym under 1)``, where ``layer_v(p)`` is
    HMAC-SHA256(key v, "layer:" + p) formatted as a version-v pseudonym. A stored version-1 pseudonym is
    moved to version 2 by :meth:`upgrade` (no raw token needed), and a new raw token gets the same result
    through both layers (four HMACs: body and check per layer; the "layer:" tag is absorbed into the
    precomputed inner state). See ``chargeguard.vault.rotation`` for what an operator gains and loses.
    """

    __slots__ = (
        "_current",
        "_decimal_uids",
        "_keys",
        "_layers",
        "_steps",
        "_upgrade_paths",
        "_versions",
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
        self._versions = {v: _Version(v, s) for v, s in keys.items()}
        self._current = self._versions[current]
        self._decimal_uids = decimal_uids
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
        self._upgrade_paths: dict[int, tuple[_Version, ...]] = {}
        chain = [current]
        while chain[-1] in self._layers:
            chain.append(self._layers[chain[-1]])
        for i, version in enumerate(chain):
            self._upgrade_paths[version] = tuple(self._versions[v] for v in reversed(chain[:i]))
        # how a raw token reaches the current version: the innermost key's body MAC, then each layer's MAC
        innermost = self._versions[chain[-1]]
        self._steps = tuple(
            (*mac.states, *v.check.states, v.prefix, v.body_len)
            for v, mac in [(innermost, innermost.body)]
            + [(v, v.layer) for v in self._upgrade_paths[chain[-1]]]
        )

    @property
    def current_version(self) -> int:
        return self._current.version

    @property
    def versions(self) -> frozenset[int]:
        """Every loaded key version."""
        return frozenset(self._keys)

    @property
    def layers(self) -> Mapping[int, int]:
        """Layered versions: outer version -> the version it is layered over."""
        return dict(self._layers)

    def _version(self, version: int) -> _Version:
        try:
            return self._versions[version]
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
        v = self._versions.get(version)
        if v is None:
            return None
        tail = m.group(2).lower()
        body, check = tail[:-2], tail[-2:]
        if len(body) != v.body_len:
            return None
        expected = _B32_PAIRS[_check_bits(v.check.mac(body.encode("ascii")))]
        return version if hmac.compare_digest(expected, check) else None

    def is_pseudonym(self, value: str) -> bool:
        return self.version_of(value) is not None

    def layer(self, version: int, pseudonym: str) -> str:
        """Apply key layer ``version`` to a pseudonym of the version it is layered over."""
        inner = self._layers.get(version)
        if inner is None:
            raise KeyMaterialError(f"key version {version} is not a layer; pseudonyms cannot be moved to it")
        if self.version_of(pseudonym) != inner:
            raise KeyMaterialError(f"key layer {version} applies to version {inner} pseudonyms only")
        v = self._versions[version]
        return v.format(v.layer.mac(pseudonym.lower().encode("ascii")))

    def _normalise(self, raw: str) -> bytes:
        text = raw.strip().upper()
        if not text.isalnum() or self._decimal_uids:
            text = normalise_token(text, decimal_uids=self._decimal_uids)
        return text.encode("utf-8")

    def hash_under(self, version: int, raw: str) -> str:
        """Pseudonym of ``raw`` under a given key version (through its layers, if it is layered)."""
        path: list[_Version] = [self._version(version)]
        while path[-1].version in self._layers:
            path.append(self._versions[self._layers[path[-1].version]])
        innermost = path.pop()
        value = innermost.format(innermost.body.mac(self._normalise(raw)))
        for v in reversed(path):  # each inner pseudonym is ours by construction: no need to verify it
            value = v.format(v.layer.mac(value.encode("ascii")))
        return value

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
        for v in path:  # verified above; every later value is ours by construction
            value = v.format(v.layer.mac(value.encode("ascii")))
        return value

    def pseudonymise(self, raw: str) -> str:
        """Pseudonym of a raw token under the current key.

        A valid pseudonym passes through (lower-cased): moved to the current version when the current key is
        layered over its version, unchanged otherwise (it stays accepted for lookups until rotation ends).
        """
        if len(raw) == PSEUDONYM_LENGTH:
            version = self.version_of(raw)
            if version is not None:
                if version == self._current.version:
                    return raw.lower()
                return self.upgrade(raw) or raw.lower()
        # the hot path, inlined: one normalisation, then per step (the innermost key, then each layer) two
        # HMACs from precomputed states and two table encodings; the intermediate pseudonym is never re-verified
        text = raw.strip().upper()
        if not text.isalnum() or self._decimal_uids:
            text = normalise_token(text, decimal_uids=self._decimal_uids)
        msg = text.encode("utf-8")
        value = ""
        for mac_inner, mac_outer, check_inner, check_outer, prefix, body_len in self._steps:
            h = mac_inner.copy()
            h.update(msg)
            o = mac_outer.copy()
            o.update(h.digest())
            body = _b32_13(o.digest())[:body_len]
            h = check_inner.copy()
            h.update(body.encode("ascii"))
            o = check_outer.copy()
            o.update(h.digest())
            d = o.digest()
            value = prefix + body + _B32_PAIRS[(d[0] << 2) | (d[1] >> 6)]
            msg = value.encode("ascii")
        return value

    __call__ = pseudonymise
