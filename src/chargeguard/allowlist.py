"""Operator allow-lists: findings the operator has declared legitimate, each with an expiry, a reason and an author.

An entry suppresses findings of ``kind`` (or of every kind with ``"*"``, or of a family with ``"token.*"``) whose
``subject`` matches: a token pseudonym (``token``) or a station identity (``station``). Entries expire in event time,
so replaying old captures gives the same answer as live. Entries live in the store (see store/), added by a named
person.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from chargeguard.events import Finding

Subject = Literal["token", "station"]


@dataclass(frozen=True, slots=True)
class AllowEntry:
    kind: str
    subject: Subject
    value: str
    expires: datetime
    reason: str
    added_by: str
    added_at: datetime | None = None

    def matches_kind(self, kind: str) -> bool:
        if self.kind in ("*", kind):
            return True
        return self.kind.endswith(".*") and kind.startswith(self.kind[:-1])


class AllowList:
    """Fast lookup of allow entries by subject value."""

    def __init__(self, entries: Iterable[AllowEntry] = ()) -> None:
        self._by_value: dict[tuple[Subject, str], list[AllowEntry]] = {}
        for entry in entries:
            self._by_value.setdefault((entry.subject, entry.value.lower()), []).append(entry)

    def __len__(self) -> int:
        return sum(len(v) for v in self._by_value.values())

    def allows(self, finding: Finding) -> AllowEntry | None:
        """The entry that suppresses ``finding``, or None."""
        if not self._by_value:
            return None
        candidates: list[tuple[Subject, str]] = []
        if finding.token_ref:
            candidates.append(("token", finding.token_ref.lower()))
        for station in finding.stations or ((finding.station,) if finding.station else ()):
            candidates.append(("station", station.lower()))
        for key in candidates:
            for entry in self._by_value.get(key, ()):
                if entry.matches_kind(finding.kind) and finding.ts < entry.expires:
                    return entry
        return None
