"""RFC 3339 timestamps: parsing the capture's ``ts`` and payload timestamps into aware UTC datetimes."""

from __future__ import annotations

from datetime import UTC, datetime


def parse_rfc3339(value: object) -> datetime | None:
    """An aware UTC datetime for an RFC 3339 date-time string, or None when it is not one.

    Rejects date-only strings, naive times and years beyond 9999 (``datetime`` cannot hold them, and a station
    claiming year 222222 is a finding, not a time).
    """
    if type(value) is not str or not 20 <= len(value) <= 40 or value[4] != "-" or value[10] not in "Tt ":
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    tz = parsed.tzinfo
    if tz is UTC:  # "...Z" and "+00:00" parse to UTC itself
        return parsed
    if tz is None:
        return None
    return parsed.astimezone(UTC)


def format_rfc3339(value: datetime) -> str:
    """Compact RFC 3339 in UTC with a ``Z`` and millisecond precision when needed."""
    value = value.astimezone(UTC)
    if value.microsecond:
        return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")
