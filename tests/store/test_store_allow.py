"""Allow entries in the store: add, list, remove with a trail, expiry, and refusal of raw tokens."""

from __future__ import annotations

from datetime import timedelta

import pytest

from chargeguard.allowlist import AllowEntry
from chargeguard.errors import ConfigError
from chargeguard.events import Finding, Severity
from chargeguard.store import AllowEntryNotFoundError, Store
from chargeguard.testing import at

TOKEN = "tok1_abcdefghijklm23"


def an_entry(**override: object) -> AllowEntry:
    values: dict[str, object] = {
        "kind": "token.concurrent_use",
        "subject": "token",
        "value": TOKEN,
        "expires": at(60 * 24),
        "reason": "fleet card shared by the night shift",
        "added_by": "alice",
        "added_at": at(0),
    }
    values.update(override)
    return AllowEntry(**values)  # type: ignore[arg-type]


def a_finding(ts_minutes: float, token: str | None = TOKEN, station: str = "CP-1") -> Finding:
    return Finding(
        kind="token.concurrent_use",
        severity=Severity.HIGH,
        confidence=0.9,
        ts=at(ts_minutes),
        incident="x",
        summary="s",
        station=station,
        token_ref=token,
    )


def test_add_and_read_back(store: Store) -> None:
    entry = an_entry()
    entry_id = store.add_allow(entry)
    assert store.allow_entries() == [entry]
    (record,) = store.allow_records()
    assert (record.id, record.entry, record.active, record.removed_by) == (entry_id, entry, True, None)


def test_token_values_are_kept_lower_case_and_stations_as_written(store: Store) -> None:
    store.add_allow(an_entry(value=TOKEN.upper()))
    store.add_allow(an_entry(subject="station", value=" CP-Depot-7 ", kind="*"))
    assert [e.value for e in store.allow_entries()] == [TOKEN, "CP-Depot-7"]


def test_added_at_defaults_to_now(store: Store) -> None:
    store.add_allow(an_entry(added_at=None))
    (entry,) = store.allow_entries()
    assert entry.added_at is not None and entry.added_at.tzinfo is not None


def test_remove_keeps_the_trail(store: Store) -> None:
    keep = store.add_allow(an_entry(value="tok1_bbbbbbbbbbbbb23"))
    gone = store.add_allow(an_entry())
    record = store.remove_allow(gone, "bob", at=at(30))
    assert (record.id, record.removed_by, record.removed_at, record.active) == (gone, "bob", at(30), False)
    assert [r.id for r in store.allow_records()] == [keep]
    assert [r.id for r in store.allow_records(include_removed=True)] == [keep, gone]
    with pytest.raises(AllowEntryNotFoundError, match="already removed by bob"):
        store.remove_allow(gone, "carol")
    with pytest.raises(AllowEntryNotFoundError, match="does not exist"):
        store.remove_allow(9999, "carol")
    with pytest.raises(ConfigError, match="who removes it"):
        store.remove_allow(keep, "  ")


def test_active_at_answers_what_was_in_force(store: Store) -> None:
    first = store.add_allow(an_entry(added_at=at(0), expires=at(100)))
    second = store.add_allow(an_entry(added_at=at(50), expires=at(200), value="tok1_bbbbbbbbbbbbb23"))
    store.remove_allow(second, "bob", at=at(150))
    ids = lambda t: [r.id for r in store.allow_records(active_at=t)]  # noqa: E731
    assert ids(at(-1)) == []
    assert ids(at(10)) == [first]
    assert ids(at(60)) == [first, second]
    assert ids(at(100)) == [second]  # expiry is exclusive
    assert ids(at(150)) == []  # removed
    assert len(store.allow_entries(active_at=at(60))) == 2


def test_allowlist_applies_expiry_in_event_time(store: Store) -> None:
    store.add_allow(an_entry(expires=at(60)))
    store.add_allow(an_entry(subject="station", value="CP-TEST", kind="token.*", expires=at(60)))
    removed = store.add_allow(an_entry(value="tok1_ccccccccccccc23"))
    store.remove_allow(removed, "bob")
    allow = store.allowlist()
    assert len(allow) == 2
    assert allow.allows(a_finding(59)) is not None
    assert allow.allows(a_finding(61)) is None
    assert allow.allows(a_finding(10, token=None, station="cp-test")) is not None
    assert allow.allows(a_finding(10, token="tok1_ccccccccccccc23", station="CP-2")) is None


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"value": "04A2B3C4D5E6F7"}, "must name its pseudonym"),
        ({"value": "tok1_abcdefghijklm2"}, "must name its pseudonym"),
        ({"kind": "Token Concurrent"}, "not a detection kind"),
        ({"kind": "token"}, "not a detection kind"),
        ({"subject": "card"}, "subject must be"),
        ({"subject": "station", "value": " "}, "station must be"),
        ({"reason": " "}, "needs a reason"),
        ({"added_by": ""}, "who added it"),
        ({"expires": at(0).replace(tzinfo=None)}, "aware UTC"),
    ],
)
def test_unusable_entries_are_refused(store: Store, override: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        store.add_allow(an_entry(**override))
    assert "04A2B3C4D5E6F7" not in str(info.value)  # a raw token is never repeated back
    assert store.allow_records(include_removed=True) == []


def test_family_and_wildcard_kinds_are_accepted(store: Store) -> None:
    store.add_allow(an_entry(kind="token.*"))
    store.add_allow(an_entry(kind="*", expires=at(0) + timedelta(days=365)))
    assert [e.kind for e in store.allow_entries()] == ["token.*", "*"]
    assert store.pseudonym_key_versions() == frozenset({1})
