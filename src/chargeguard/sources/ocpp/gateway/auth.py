"""Station authentication: scrypt password hashes, OCPP password rules, pre-hash rate limits, lockout, cache.

Order of checks for one HTTP Basic upgrade request (cheapest first, so a flood never reaches the slow hash):

1. lockout of (address, identity) after repeated failures, with exponential back-off;
2. per-address handshake token bucket;
3. credential cache: a (identity, password) pair verified in the last ``credential_cache_s`` seconds passes
   without hashing (the cache holds an HMAC of the password under a per-process key, never the password);
4. global hashing budget (token bucket): when exhausted the station is told to come back later (HTTP 503);
5. the scrypt verification itself (constant-time compare).

Password lengths (the OCPP security profiles): OCPP 1.6 AuthorizationKey is 16-20 bytes written as 32-40
hexadecimal characters; OCPP 2.0.1 / 2.1 BasicAuthPassword is a passwordString of 16-40 characters.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from chargeguard.errors import ConfigError

Clock = Callable[[], float]

_SCRYPT_DEFAULT_N = 2**14
_SCRYPT_R = 8
_SCRYPT_P = 1
_HEX_RE = re.compile(r"^[0-9a-fA-F]*$")
_MAX_KEYS = 100_000


def password_problem(version: str, password: str) -> str | None:
    """Why ``password`` is not a valid station password for OCPP ``version``, or None when it is."""
    if version == "1.6":
        if not 32 <= len(password) <= 40 or len(password) % 2 or not _HEX_RE.match(password):
            return "an OCPP 1.6 AuthorizationKey is 16-20 bytes written as 32-40 hexadecimal characters"
        return None
    if not 16 <= len(password) <= 40:
        return f"an OCPP {version} BasicAuthPassword is 16-40 characters"
    return None


def hash_password(password: str, *, n: int = _SCRYPT_DEFAULT_N) -> str:
    """A salted scrypt hash in the form ``scrypt$n$r$p$salt$hash`` (base64 without padding)."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=_SCRYPT_R, p=_SCRYPT_P, dklen=32)
    return f"scrypt${n}${_SCRYPT_R}${_SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


@dataclass(frozen=True, slots=True)
class PasswordHash:
    """A parsed scrypt hash; never holds the password."""

    n: int
    r: int
    p: int
    salt: bytes
    digest: bytes

    @classmethod
    def parse(cls, encoded: str) -> PasswordHash:
        parts = encoded.split("$")
        try:
            if len(parts) != 6 or parts[0] != "scrypt":
                raise ValueError("not scrypt$n$r$p$salt$hash")
            n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
            salt, digest = _unb64(parts[4]), _unb64(parts[5])
        except (ValueError, binascii.Error) as exc:
            raise ConfigError(f"unusable password hash: {exc}") from exc
        if n < 2**10 or n & (n - 1) or not 1 <= r <= 32 or not 1 <= p <= 16 or len(salt) < 16 or not digest:
            raise ConfigError("unusable password hash: parameters out of range")
        return cls(n, r, p, salt, digest)

    def verify(self, password: str) -> bool:
        candidate = hashlib.scrypt(
            password.encode("utf-8"),
            salt=self.salt,
            n=self.n,
            r=self.r,
            p=self.p,
            dklen=len(self.digest),
            maxmem=256 * 1024 * 1024,
        )
        return hmac.compare_digest(candidate, self.digest)


class TokenBucket:
    """A token bucket on an injectable monotonic clock."""

    __slots__ = ("_burst", "_clock", "_last", "_rate", "_tokens")

    def __init__(self, rate_per_s: float, burst: float, clock: Clock = time.monotonic) -> None:
        self._rate = rate_per_s
        self._burst = burst
        self._clock = clock
        self._tokens = burst
        self._last = clock()

    def take(self, amount: float = 1.0) -> bool:
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._last) * self._rate)
        self._last = now
        if self._tokens >= amount:
            self._tokens -= amount
            return True
        return False


class KeyedBuckets:
    """Token buckets per key (an address, a station), bounded in number (least recently used evicted)."""

    def __init__(self, rate_per_s: float, burst: float, clock: Clock, max_keys: int = _MAX_KEYS) -> None:
        self._rate, self._burst, self._clock, self._max = rate_per_s, burst, clock, max_keys
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def bucket(self, key: str) -> TokenBucket:
        """The bucket of ``key`` (created full on first use)."""
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(self._rate, self._burst, self._clock)
            if len(self._buckets) > self._max:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        return bucket

    def take(self, key: str, amount: float = 1.0) -> bool:
        return self.bucket(key).take(amount)


@dataclass(slots=True)
class _Failures:
    count: int
    locked_until: float


class Lockout:
    """Failed authentications per (address, identity); after ``after`` failures, locked with doubling back-off.

    Keyed on the pair so that an attacker failing from its own address never locks the real station out.
    """

    def __init__(
        self, after: int, base_s: float, max_s: float, clock: Clock, max_keys: int = _MAX_KEYS
    ) -> None:
        self._after, self._base, self._max_s, self._clock, self._max_keys = (
            after,
            base_s,
            max_s,
            clock,
            max_keys,
        )
        self._state: OrderedDict[tuple[str, str], _Failures] = OrderedDict()

    def locked_for(self, address: str, identity: str) -> float:
        """Seconds the pair is still locked out (0 when not locked)."""
        entry = self._state.get((address, identity))
        if entry is None:
            return 0.0
        return max(0.0, entry.locked_until - self._clock())

    def failure(self, address: str, identity: str) -> float:
        """Record a failure; returns the lockout now in force in seconds (0 while under the threshold)."""
        key = (address, identity)
        entry = self._state.pop(key, None) or _Failures(0, 0.0)
        entry.count += 1
        self._state[key] = entry
        if len(self._state) > self._max_keys:
            self._state.popitem(last=False)
        if entry.count < self._after:
            return 0.0
        duration: float = min(self._max_s, self._base * 2.0 ** (entry.count - self._after))
        entry.locked_until = self._clock() + duration
        return duration

    def success(self, address: str, identity: str) -> None:
        self._state.pop((address, identity), None)


class AuthOutcome(Enum):
    """Result of a basic-auth check; the HTTP status the upgrade is refused with lives in ``status``."""

    OK = ("ok", 0)
    LOCKED = ("locked", 429)
    RATE_LIMITED = ("rate_limited", 429)
    BUSY = ("hash_budget_exhausted", 503)
    BAD_CREDENTIALS = ("bad_credentials", 401)

    @property
    def reason(self) -> str:
        return str(self.value[0])

    @property
    def status(self) -> int:
        return int(self.value[1])


class PasswordAuthenticator:
    """Verifies station passwords with every protection of the module docstring."""

    def __init__(
        self,
        *,
        handshakes_per_s: float,
        handshake_burst: float,
        hashes_per_s: float,
        cache_s: float,
        lockout: Lockout,
        clock: Clock = time.monotonic,
    ) -> None:
        self._clock = clock
        self._address_buckets = KeyedBuckets(handshakes_per_s, handshake_burst, clock)
        self._hash_budget = TokenBucket(hashes_per_s, max(1.0, hashes_per_s), clock)
        self._cache_s = cache_s
        self._cache: OrderedDict[tuple[str, bytes], float] = OrderedDict()
        self._cache_key = secrets.token_bytes(32)
        self._hashes: dict[str, PasswordHash] = {}
        self.lockout = lockout
        self.hash_count = 0

    def set_hash(self, identity: str, encoded: str) -> None:
        """Install (or replace, after a rotation) the stored hash for a station; drops cached credentials."""
        self._hashes[identity] = PasswordHash.parse(encoded)
        for key in [k for k in self._cache if k[0] == identity]:
            del self._cache[key]

    def learn_password(self, identity: str, password: str) -> str:
        """A password rotation the CSMS completed: hash it now and return the hash; the raw value is not kept."""
        encoded = hash_password(password)
        self.set_hash(identity, encoded)
        return encoded

    def _fingerprint(self, password: str) -> bytes:
        return hmac.new(self._cache_key, password.encode("utf-8"), hashlib.sha256).digest()

    def admit(self, address: str, identity: str) -> AuthOutcome:
        """The cheap checks every upgrade passes first (lockout, per-address rate), whatever its profile."""
        if self.lockout.locked_for(address, identity) > 0:
            return AuthOutcome.LOCKED
        if not self._address_buckets.take(address):
            return AuthOutcome.RATE_LIMITED
        return AuthOutcome.OK

    def check(self, address: str, identity: str, password: str) -> AuthOutcome:
        """Every check of the module docstring, in order."""
        admitted = self.admit(address, identity)
        return admitted if admitted is not AuthOutcome.OK else self.verify(address, identity, password)

    def verify(self, address: str, identity: str, password: str) -> AuthOutcome:
        """Cache, hashing budget and the scrypt verification (call after :meth:`admit`)."""
        key = (identity, self._fingerprint(password))
        expires = self._cache.get(key)
        now = self._clock()
        if expires is not None and expires > now:
            return AuthOutcome.OK
        stored = self._hashes.get(identity)
        if stored is None:
            self.lockout.failure(address, identity)
            return AuthOutcome.BAD_CREDENTIALS
        if not self._hash_budget.take():
            return AuthOutcome.BUSY
        self.hash_count += 1
        if not stored.verify(password):
            self.lockout.failure(address, identity)
            return AuthOutcome.BAD_CREDENTIALS
        self.lockout.success(address, identity)
        if self._cache_s > 0:
            self._cache[key] = now + self._cache_s
            self._cache.move_to_end(key)
            if len(self._cache) > _MAX_KEYS:
                self._cache.popitem(last=False)
        return AuthOutcome.OK


def parse_basic_auth(header: str | None) -> tuple[str, str] | None:
    """(username, password) from an ``Authorization: Basic`` header, or None when absent or malformed."""
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value:
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    username, sep, password = decoded.partition(":")
    return (username, password) if sep else None
