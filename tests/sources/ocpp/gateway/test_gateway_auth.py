"""Password hashes, OCPP password rules, token buckets, lockout and the pre-hash protections (no sockets)."""

from __future__ import annotations

import base64

import pytest

from chargeguard.errors import ConfigError
from chargeguard.sources.ocpp.gateway.auth import (
    AuthOutcome,
    KeyedBuckets,
    Lockout,
    PasswordAuthenticator,
    PasswordHash,
    TokenBucket,
    hash_password,
    parse_basic_auth,
    password_problem,
)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("version", "password", "ok"),
    [
        ("1.6", "ab" * 16, True),  # 16 bytes
        ("1.6", "ab" * 20, True),  # 20 bytes
        ("1.6", "ab" * 15, False),
        ("1.6", "ab" * 21, False),
        ("1.6", "ab" * 16 + "a", False),  # odd number of hex digits
        ("1.6", "zz" * 16, False),
        ("2.0.1", "x" * 16, True),
        ("2.0.1", "x" * 40, True),
        ("2.0.1", "x" * 15, False),
        ("2.1", "x" * 41, False),
    ],
)
def test_password_lengths_per_version(version: str, password: str, ok: bool) -> None:
    assert (password_problem(version, password) is None) is ok


def test_hash_is_salted_and_verifies() -> None:
    first, second = hash_password("s3cret-password-1", n=2**10), hash_password("s3cret-password-1", n=2**10)
    assert first != second
    assert "s3cret" not in first
    parsed = PasswordHash.parse(first)
    assert parsed.verify("s3cret-password-1")
    assert not parsed.verify("s3cret-password-2")


@pytest.mark.parametrize(
    "encoded",
    ["", "bcrypt$1$2$3$4$5", "scrypt$1000$8$1$AAAAAAAAAAAAAAAAAAAAAA$AAAA", "scrypt$1024$8$1$!!$AAAA",
     "scrypt$1024$8$1$AAAA$AAAA"],
)  # fmt: skip
def test_unusable_hashes_are_config_errors(encoded: str) -> None:
    with pytest.raises(ConfigError):
        PasswordHash.parse(encoded)


def test_token_bucket_refills_on_the_clock() -> None:
    clock = Clock()
    bucket = TokenBucket(rate_per_s=2, burst=2, clock=clock)
    assert [bucket.take() for _ in range(3)] == [True, True, False]
    clock.now += 0.5
    assert [bucket.take() for _ in range(2)] == [True, False]


def test_keyed_buckets_are_bounded() -> None:
    clock = Clock()
    buckets = KeyedBuckets(1, 1, clock, max_keys=10)
    for i in range(100):
        buckets.take(f"10.0.0.{i}")
    assert len(buckets._buckets) == 10


def test_lockout_doubles_and_caps_and_is_per_pair() -> None:
    clock = Clock()
    lockout = Lockout(after=2, base_s=10, max_s=25, clock=clock)
    assert lockout.failure("1.2.3.4", "CP-1") == 0
    assert lockout.failure("1.2.3.4", "CP-1") == 10
    assert lockout.locked_for("1.2.3.4", "CP-1") == 10
    assert lockout.locked_for("5.6.7.8", "CP-1") == 0  # the real station's address is not locked out
    assert lockout.failure("1.2.3.4", "CP-1") == 20
    assert lockout.failure("1.2.3.4", "CP-1") == 25
    clock.now += 25
    assert lockout.locked_for("1.2.3.4", "CP-1") == 0
    lockout.success("1.2.3.4", "CP-1")
    assert lockout.failure("1.2.3.4", "CP-1") == 0


def _authenticator(clock: Clock, **overrides: float) -> PasswordAuthenticator:
    params = {"handshakes_per_s": 100.0, "handshake_burst": 100.0, "hashes_per_s": 100.0, "cache_s": 60.0}
    params.update(overrides)
    auth = PasswordAuthenticator(lockout=Lockout(3, 30, 300, clock), clock=clock, **params)  # type: ignore[arg-type]
    auth.set_hash("CP-1", hash_password("a-valid-password-1", n=2**10))
    return auth


def test_authenticator_caches_verified_credentials_for_a_while() -> None:
    clock = Clock()
    auth = _authenticator(clock)
    assert all(auth.check("1.1.1.1", "CP-1", "a-valid-password-1") is AuthOutcome.OK for _ in range(5))
    assert auth.hash_count == 1
    assert auth.check("1.1.1.1", "CP-1", "a-wrong-password-1") is AuthOutcome.BAD_CREDENTIALS
    assert auth.hash_count == 2
    clock.now += 61
    assert auth.check("1.1.1.1", "CP-1", "a-valid-password-1") is AuthOutcome.OK
    assert auth.hash_count == 3


def test_unknown_stations_and_locked_pairs_never_hash() -> None:
    clock = Clock()
    auth = _authenticator(clock)
    assert auth.check("1.1.1.1", "CP-404", "whatever-password") is AuthOutcome.BAD_CREDENTIALS
    for _ in range(3):
        auth.check("6.6.6.6", "CP-1", "a-wrong-password-1")
    hashes = auth.hash_count
    assert auth.check("6.6.6.6", "CP-1", "a-valid-password-1") is AuthOutcome.LOCKED
    assert auth.hash_count == hashes
    assert auth.check("1.1.1.1", "CP-1", "a-valid-password-1") is AuthOutcome.OK


def test_hash_budget_and_address_rate() -> None:
    clock = Clock()
    auth = _authenticator(clock, hashes_per_s=1.0, handshake_burst=3.0, handshakes_per_s=1.0)
    assert auth.check("1.1.1.1", "CP-1", "guess-number-0001") is AuthOutcome.BAD_CREDENTIALS
    assert auth.check("1.1.1.1", "CP-1", "guess-number-0002") is AuthOutcome.BUSY
    assert auth.check("1.1.1.1", "CP-1", "guess-number-0003") is AuthOutcome.BUSY
    assert auth.check("1.1.1.1", "CP-1", "guess-number-0004") is AuthOutcome.RATE_LIMITED
    assert auth.hash_count == 1


def test_learned_rotation_replaces_the_hash_and_drops_the_cache() -> None:
    clock = Clock()
    auth = _authenticator(clock)
    assert auth.check("1.1.1.1", "CP-1", "a-valid-password-1") is AuthOutcome.OK
    auth.learn_password("CP-1", "the-rotated-password")
    assert auth.check("1.1.1.1", "CP-1", "a-valid-password-1") is AuthOutcome.BAD_CREDENTIALS
    assert auth.check("1.1.1.1", "CP-1", "the-rotated-password") is AuthOutcome.OK


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("Basic " + base64.b64encode(b"CP-1:pa:ss").decode(), ("CP-1", "pa:ss")),
        ("basic " + base64.b64encode(b"CP-1:").decode(), ("CP-1", "")),
        ("Basic " + base64.b64encode(b"no-colon").decode(), None),
        ("Bearer abc", None),
        ("Basic !!!", None),
        ("Basic " + base64.b64encode(b"\xff\xfe:x").decode(), None),
        (None, None),
    ],
)
def test_parse_basic_auth(header: str | None, expected: tuple[str, str] | None) -> None:
    assert parse_basic_auth(header) == expected
