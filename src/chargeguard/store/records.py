"""What the store returns besides events and alerts (allow records, stations, scan runs); row conversion.

Conversions between domain objects and table rows live here so the Store module stays about transactions.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import RowMapping

from chargeguard.allowlist import AllowEntry
from chargeguard.errors import ConfigError
from chargeguard.events import Alert, ConnectionEvent, Severity, StationBooted, TransactionEnded
from chargeguard.vault.pseudonyms import PSEUDONYM_LENGTH

# the shape of a token pseudonym (the check characters need the key, which the store never has)
_PSEUDONYM_SHAPE = re.compile(r"^tok([1-9][0-9]?)_[a-z2-7]+$", re.IGNORECASE)
_KIND_SHAPE = re.compile(r"^(\*|[a-z][a-z0-9_]*\.(\*|[a-z][a-z0-9_]*))$")
MAX_NAME_LEN = 128
MAX_VALUE_LEN = 255


def pseudonym_version(value: str | None) -> int | None:
    """The key version a pseudonym-shaped value names, or None when it does not look like a pseudonym."""
    if value is None or len(value) != PSEUDONYM_LENGTH:
        return None
    m = _PSEUDONYM_SHAPE.match(value)
    return int(m.group(1)) if m else None


def key_versions_in(values: Iterable[str | None]) -> set[int]:
    found: set[int] = set()
    for value in values:
        version = pseudonym_version(value)
        if version is not None:
            found.add(version)
    return found


@dataclass(frozen=True, slots=True)
class AllowRecord:
    """An allow entry as stored, with its id and removal trail."""

    id: int
    entry: AllowEntry
    removed_at: datetime | None = None
    removed_by: str | None = None

    @property
    def active(self) -> bool:
        return self.removed_at is None


@dataclass(frozen=True, slots=True)
class StationRecord:
    """What the store knows about a station's identity (from BootNotification) and connections."""

    station: str
    ocpp: str | None
    vendor: str | None
    model: str | None
    serial: str | None
    firmware: str | None
    security_profile: int | None
    first_seen: datetime
    last_seen: datetime
    last_boot: datetime | None


@dataclass(frozen=True, slots=True)
class ScanRun:
    """One ``chargeguard scan`` run: what it read, how much, and a digest of the settings it ran with."""

    id: int
    started_at: datetime
    finished_at: datetime | None
    inputs: tuple[str, ...]
    frames: int
    bad_lines: int
    transactions: int
    alerts: int
    settings_digest: str


def check_allow_entry(entry: AllowEntry) -> None:
    """Refuse entries the store must not keep; messages never repeat a token-subject value (it may be raw)."""
    if not _KIND_SHAPE.match(entry.kind) or len(entry.kind) > 64:
        raise ConfigError(f"allow entry kind {entry.kind!r} is not a detection kind, 'family.*' or '*'")
    if entry.subject not in ("token", "station"):
        raise ConfigError(f"allow entry subject must be 'token' or 'station', not {entry.subject!r}")
    if entry.subject == "token" and pseudonym_version(entry.value) is None:
        raise ConfigError(
            "allow entry for a token must name its pseudonym (tok<version>_..., 20 characters); "
            "raw tokens are never stored"
        )
    if entry.subject == "station" and not 0 < len(entry.value.strip()) <= MAX_VALUE_LEN:
        raise ConfigError(f"allow entry station must be 1..{MAX_VALUE_LEN} characters")
    for name, value in (("expires", entry.expires), ("added_at", entry.added_at)):
        if value is not None and (value.tzinfo is None or value.utcoffset() is None):
            raise ConfigError(f"allow entry {name} must be an aware UTC datetime")
    if not entry.reason.strip():
        raise ConfigError("allow entry needs a reason")
    if not 0 < len(entry.added_by.strip()) <= MAX_NAME_LEN:
        raise ConfigError(f"allow entry needs who added it (1..{MAX_NAME_LEN} characters)")


def alert_row(alert: Alert, now: datetime) -> dict[str, Any]:
    return {
        "id": alert.id,
        "kind": alert.kind,
        "severity": int(alert.severity),
        "confidence": float(alert.confidence),
        "ts": alert.ts,
        "last_ts": alert.last_ts,
        "status": alert.status,
        "count": alert.count,
        "station": alert.station,
        "token_ref": alert.token_ref,
        "summary": alert.summary,
        "evidence": dict(alert.evidence),
        "updated_at": now,
    }


def alert_from_row(row: RowMapping, stations: Sequence[str], transactions: Sequence[str]) -> Alert:
    return Alert(
        id=row["id"],
        kind=row["kind"],
        severity=Severity(row["severity"]),
        confidence=row["confidence"],
        ts=row["ts"],
        station=row["station"],
        stations=tuple(stations),
        transactions=tuple(transactions),
        token_ref=row["token_ref"],
        summary=row["summary"],
        evidence=row["evidence"],
        last_ts=row["last_ts"],
        status=row["status"],
        count=row["count"],
    )


def transaction_row(ev: TransactionEnded) -> dict[str, Any]:
    return {
        "station": ev.station,
        "transaction_id": ev.transaction_id,
        "connector": ev.connector,
        "ocpp": ev.ocpp,
        "token_ref": ev.token_ref,
        "stop_token_ref": ev.stop_token_ref,
        "started_at": ev.started_at,
        "ended_at": ev.at,
        "ended_ts": ev.ts,
        "energy_wh": ev.energy_wh,
        "meter_start_wh": ev.meter_start_wh,
        "meter_stop_wh": ev.meter_stop_wh,
        "reason": ev.reason,
        "samples": ev.samples,
        "first_sample_wh": ev.first_sample_wh,
        "last_sample_wh": ev.last_sample_wh,
        "max_power_w": ev.max_power_w,
        "charging_seen": ev.charging_seen,
        "queued": ev.queued,
        "auth_status": ev.auth_status,
    }


def transaction_from_row(row: RowMapping) -> TransactionEnded:
    return TransactionEnded(
        ts=row["ended_ts"],
        at=row["ended_at"],
        station=row["station"],
        ocpp=row["ocpp"],
        transaction_id=row["transaction_id"],
        connector=row["connector"],
        token_ref=row["token_ref"],
        stop_token_ref=row["stop_token_ref"],
        started_at=row["started_at"],
        meter_start_wh=row["meter_start_wh"],
        meter_stop_wh=row["meter_stop_wh"],
        reason=row["reason"],
        samples=row["samples"],
        first_sample_wh=row["first_sample_wh"],
        last_sample_wh=row["last_sample_wh"],
        max_power_w=row["max_power_w"],
        charging_seen=bool(row["charging_seen"]),
        queued=bool(row["queued"]),
        auth_status=row["auth_status"],
    )


def allow_record_from_row(row: RowMapping) -> AllowRecord:
    entry = AllowEntry(
        kind=row["kind"],
        subject=row["subject"],
        value=row["value"],
        expires=row["expires"],
        reason=row["reason"],
        added_by=row["added_by"],
        added_at=row["added_at"],
    )
    return AllowRecord(id=row["id"], entry=entry, removed_at=row["removed_at"], removed_by=row["removed_by"])


def station_from_row(row: RowMapping) -> StationRecord:
    return StationRecord(
        station=row["station"],
        ocpp=row["ocpp"],
        vendor=row["vendor"],
        model=row["model"],
        serial=row["serial"],
        firmware=row["firmware"],
        security_profile=row["security_profile"],
        first_seen=row["first_seen"],
        last_seen=row["last_seen"],
        last_boot=row["last_boot"],
    )


def scan_run_from_row(row: RowMapping) -> ScanRun:
    return ScanRun(
        id=row["id"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        inputs=tuple(row["inputs"]),
        frames=row["frames"],
        bad_lines=row["bad_lines"],
        transactions=row["transactions"],
        alerts=row["alerts"],
        settings_digest=row["settings_digest"],
    )


def transaction_rows(ends: Iterable[TransactionEnded]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Rows split by conflict target (started / start unknown), de-duplicated inside the batch (last wins)."""
    started: dict[tuple[Any, ...], dict[str, Any]] = {}
    unstarted: dict[tuple[Any, ...], dict[str, Any]] = {}
    for ev in ends:
        row = transaction_row(ev)
        if ev.started_at is None:
            unstarted[(ev.station, ev.transaction_id, ev.at)] = row
        else:
            started[(ev.station, ev.transaction_id, ev.started_at)] = row
    return list(started.values()), list(unstarted.values())


def sighting_rows(events: Iterable[StationBooted | ConnectionEvent]) -> list[dict[str, Any]]:
    """One row per station, folding the batch's sightings the way the database upsert folds them."""
    merged: dict[str, dict[str, Any]] = {}
    for ev in events:
        row: dict[str, Any] = dict.fromkeys(("ocpp", "vendor", "model", "serial", "firmware", "last_boot"))
        row.update(station=ev.station, first_seen=ev.ts, last_seen=ev.ts, security_profile=None)
        if isinstance(ev, StationBooted):
            row.update(ocpp=ev.ocpp, vendor=ev.vendor, model=ev.model, serial=ev.serial, firmware=ev.firmware)
            row["last_boot"] = ev.ts
        elif ev.event == "connect" and ev.security_profile is not None:
            row["security_profile"] = ev.security_profile
        merged[ev.station] = _merge_sighting(merged.get(ev.station), row)
    return list(merged.values())


def _merge_sighting(old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    """Fold two sightings of one station inside a batch the way the database upsert folds them."""
    if old is None:
        return new
    merged = dict(old)
    merged["first_seen"] = min(old["first_seen"], new["first_seen"])
    merged["last_seen"] = max(old["last_seen"], new["last_seen"])
    if new["last_boot"] is not None and (old["last_boot"] is None or new["last_boot"] >= old["last_boot"]):
        for name in ("ocpp", "vendor", "model", "serial", "firmware", "last_boot"):
            merged[name] = new[name]
    if new["security_profile"] is not None and new["last_seen"] >= old["last_seen"]:
        merged["security_profile"] = new["security_profile"]
    return merged
