"""In-memory OCPI object repositories: what this platform publishes (sender side) and what partners pushed to it."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

from chargeguard.sources.ocpi.models import Cdr, Location, Session, Tariff, Token, utc

ModuleName = Literal["locations", "sessions", "cdrs", "tariffs", "tokens"]
KIND_OF: dict[str, Literal["location", "session", "cdr", "tariff", "token"]] = {
    "locations": "location",
    "sessions": "session",
    "cdrs": "cdr",
    "tariffs": "tariff",
    "tokens": "token",
}
Key = tuple[str, str, str]


def key_of(obj: Cdr | Session | Tariff | Location | Token) -> Key:
    """(country_code, party_id, id) upper-cased: OCPI ids are CiStrings, unique per party only."""
    ident = obj.uid if isinstance(obj, Token) else obj.id
    return (obj.country_code.upper(), obj.party_id.upper(), ident.upper())


class ObjectRepository:
    """OCPI objects per module, keyed by party and id, bounded in size; thread-safe.

    Received tokens are stored under their pseudonymised uid (the edge pseudonymises before storing).
    """

    def __init__(self, *, max_objects: int = 1_000_000) -> None:
        self._max = max_objects
        self._lock = threading.Lock()
        self._objects: dict[str, dict[Key, Any]] = {m: {} for m in KIND_OF}
        self._by_id: dict[str, dict[str, Key]] = {m: {} for m in KIND_OF}  # id -> first key (any party)

    def put(self, module: str, obj: Any) -> bool:
        """Store (replace) an object; returns True when it was new. Refuses new objects beyond the bound."""
        key = key_of(obj)
        with self._lock:
            table = self._objects[module]
            new = key not in table
            if new and sum(len(t) for t in self._objects.values()) >= self._max:
                raise OverflowError(f"repository is full ({self._max} objects)")
            table[key] = obj
            self._by_id[module].setdefault(key[2], key)
            return new

    def get(self, module: str, country_code: str, party_id: str, ident: str) -> Any:
        with self._lock:
            return self._objects[module].get((country_code.upper(), party_id.upper(), ident.upper()))

    def find(self, module: str, ident: str) -> Any:
        """The first object of a module with this id, any party (the CPO sender's GET by id)."""
        with self._lock:
            key = self._by_id[module].get(ident.upper())
            return None if key is None else self._objects[module].get(key)

    def objects(self, module: str) -> list[Any]:
        """Every object of a module (a snapshot)."""
        with self._lock:
            return list(self._objects[module].values())

    def delete(self, module: str, key: Key) -> None:
        with self._lock:
            self._objects[module].pop(key, None)
            if self._by_id[module].get(key[2]) == key:
                del self._by_id[module][key[2]]
                for other in self._objects[module]:  # another party's object with the same id, if any
                    if other[2] == key[2]:
                        self._by_id[module][key[2]] = other
                        break

    def count(self, module: str) -> int:
        with self._lock:
            return len(self._objects[module])

    def page(
        self,
        module: str,
        *,
        offset: int,
        limit: int,
        date_from: datetime | None = None,
        date_to: datetime | None = None,
    ) -> tuple[Sequence[Any], int]:
        """One page ordered by (last_updated, key), and the total matching the filter (X-Total-Count).

        date_from is inclusive and date_to exclusive (mod_*.asciidoc "Get Objects" filters).
        """
        with self._lock:
            items = list(self._objects[module].items())
        rows = []
        for key, obj in items:
            updated = utc(obj.last_updated)
            if date_from is not None and updated < date_from:
                continue
            if date_to is not None and updated >= date_to:
                continue
            rows.append((updated, key, obj))
        rows.sort(key=lambda r: (r[0], r[1]))
        return [r[2] for r in rows[offset : offset + limit]], len(rows)
