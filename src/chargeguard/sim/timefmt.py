"""Fast RFC 3339 formatting of epoch seconds (UTC, millisecond precision) for generated capture lines."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from chargeguard.errors import InputError

_CACHE_LIMIT = 4096  # minutes; lines come in time order, so a small cache hits almost always
_minute_cache: dict[int, str] = {}
SECONDS_TABLE = tuple(f"{ms // 1000:02d}.{ms % 1000:03d}Z" for ms in range(60_000))  # "SS.mmmZ" per ms
_SECONDS = SECONDS_TABLE


def minute_prefix(minute: int) -> str:
    """``YYYY-MM-DDTHH:MM:`` of epoch minute ``minute`` (cached)."""
    return _minute_cache.get(minute) or _minute(minute)


def _minute(minute: int) -> str:
    """``YYYY-MM-DDTHH:MM:`` of epoch minute ``minute``."""
    if len(_minute_cache) >= _CACHE_LIMIT:
        _minute_cache.clear()
    text = time.strftime("%Y-%m-%dT%H:%M:", time.gmtime(minute * 60))
    _minute_cache[minute] = text
    return text


def format_ts(t: float) -> str:
    """``t`` (epoch seconds) as ``YYYY-MM-DDTHH:MM:SS.mmmZ`` (milliseconds, rounded half up)."""
    ms = int(t * 1000.0 + 0.5) if t >= 0 else -int(-t * 1000.0 + 0.5)
    minute, rest = divmod(ms, 60_000)
    return (_minute_cache.get(minute) or _minute(minute)) + _SECONDS[rest]


def format_ts_s(t: float) -> str:
    """``t`` as ``YYYY-MM-DDTHH:MM:SSZ`` (whole seconds, the way many stations write payload timestamps)."""
    minute, second = divmod(int(t // 1), 60)
    return f"{_minute_cache.get(minute) or _minute(minute)}{second:02d}Z"


def epoch(moment: datetime) -> float:
    """Epoch seconds of an aware datetime (naive ones are refused: the simulator only speaks UTC)."""
    if moment.tzinfo is None:
        raise InputError("naive datetime: the simulator needs aware UTC datetimes")
    return moment.timestamp()


def from_epoch(t: float) -> datetime:
    """The aware UTC datetime of epoch seconds ``t``."""
    return datetime.fromtimestamp(t, tz=UTC)
