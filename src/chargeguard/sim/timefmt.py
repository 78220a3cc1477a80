"""Fast RFC 3339 formatting of epoch seconds (UTC, millisecond precision) for generated capture lines."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from chargeguard.errors import InputError

_minute_cache: dict[int, str] = {}


def format_ts(t: float) -> str:
    """``t`` (epoch seconds) as ``YYYY-MM-DDTHH:MM:SS.mmmZ``; minutes are cached so this stays cheap."""
    ms = int(t * 1000.0 + 0.5) if t >= 0 else -int(-t * 1000.0 + 0.5)
    sec, milli = divmod(ms, 1000)
    minute, s = divmod(sec, 60)
    prefix = _minute_cache.get(minute)
    if prefix is None:
        if len(_minute_cache) > 4096:
            _minute_cache.clear()
        prefix = time.strftime("%Y-%m-%dT%H:%M:", time.gmtime(minute * 60))
        _minute_cache[minute] = prefix
    return f"{prefix}{s:02d}.{milli:03d}Z"


def format_ts_s(t: float) -> str:
    """``t`` as ``YYYY-MM-DDTHH:MM:SSZ`` (whole seconds, the way many stations write payload timestamps)."""
    sec = int(t // 1)
    minute, s = divmod(sec, 60)
    prefix = _minute_cache.get(minute)
    if prefix is None:
        if len(_minute_cache) > 4096:
            _minute_cache.clear()
        prefix = time.strftime("%Y-%m-%dT%H:%M:", time.gmtime(minute * 60))
        _minute_cache[minute] = prefix
    return f"{prefix}{s:02d}Z"


def epoch(moment: datetime) -> float:
    """Epoch seconds of an aware datetime (naive ones are refused: the simulator only speaks UTC)."""
    if moment.tzinfo is None:
        raise InputError("naive datetime: the simulator needs aware UTC datetimes")
    return moment.timestamp()


def from_epoch(t: float) -> datetime:
    """The aware UTC datetime of epoch seconds ``t``."""
    return datetime.fromtimestamp(t, tz=UTC)
