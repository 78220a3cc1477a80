"""The store: alerts, transactions, stations, allow entries, scan runs in SQLite (default) or PostgreSQL."""

from __future__ import annotations

from chargeguard.store.allow import AllowEntryNotFoundError
from chargeguard.store.connect import default_url, redact_url
from chargeguard.store.records import AllowRecord, ScanRun, StationRecord
from chargeguard.store.store import Store

__all__ = [
    "AllowEntryNotFoundError",
    "AllowRecord",
    "ScanRun",
    "StationRecord",
    "Store",
    "default_url",
    "redact_url",
]
