"""RFC 3339 timestamps: parsing the capture's ``ts`` and payload timestamps into aware UTC datetimes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import msgspec

ZonedDateTime = Annotated[datetime, msgspec.Meta(tz=True)]
"""An RFC 3339 date-time with its zone, as msgspec parses it: the one parser of every timestamp a scan reads
(capture ``ts`` decoded with the line, payload times through ``parse_rfc3339``), so both read the same text alike."""


def parse_rfc3339(value: object) -> datetime | None:
    """An aware UTC datetime for an RFC 3339 date-time string, or None when it is not one.

    msgspec's parser (C): ``T``/``t`` or a space between date and time, ``Z``/``z`` or ``+hh:mm``/``-hh:mm``
    (mandatory: naive times are refused), a valid calendar date, fractions rounded to microseconds. Date-only
    strings, ISO 8601 variants outside RFC 3339 (``+0100``, week dates) and years beyond 9999 are refused
    (``datetime`` cannot hold them, and a station claiming year 222222 is a finding, not a time).
    """
    if type(value) is not str:
        return None
    try:
        parsed: datetime = msgspec.convert(value, ZonedDateTime)
    except msgspec.ValidationError:
        return None
    return as_utc(parsed)


def as_utc(value: datetime) -> datetime:
    """An aware datetime in UTC (itself when it already is: "...Z" and "+00:00" parse to UTC itself)."""
    return value if value.tzinfo is UTC else value.astimezone(UTC)


def format_rfc3339(value: datetime) -> str:
    """Compact RFC 3339 in UTC with a ``Z`` and millisecond precision when needed."""
    value = value.astimezone(UTC)
    if value.microsecond:
        return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")
