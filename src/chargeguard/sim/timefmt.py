"""Fast RFC 3339 formatting of epoch seconds (UTC, millisecond precision) for generated capture lines."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from chargeguard.errors import InputError

_CACHE_LIMIT = 8192  # seconds; lines come in time order, so a small cache hits almost always
_second_cache: dict[int, str] = {}


def _prefix(sec: int) -> str:
    """``YYYY-MM-DDTHH:MM:SS`` of whole epoch second ``sec`` (cached: lines come in time order)."""
    text = _second_cache.get(sec)
    if text is None:
        if len(_second_cache) >= _CACHE_LIMIT:
            _second_cache.clear()
        text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
        _second_cache[sec] = text
    return text


def format_ts(t: float) -> str:
    """``t`` (epoch seconds) as ``YYYY-MM-DDTHH:MM:SS.mmmZ`` (milliseconds, rounded half up)."""
    ms = int(t * 1000.0 + 0.5) if t >= 0 else -int(-t * 1000.0 + 0.5)
    sec = ms // 1000
    return f"{_prefix(sec)}.{ms - sec * 1000:03d}Z"


def format_ts_s(t: float) -> str:
    """``t`` as ``YYYY-MM-DDTHH:MM:SSZ`` (whole seconds, the way many stations write payload timestamps)."""
    return f"{_prefix(int(t // 1))}Z"


def epoch(moment: datetime) -> float:
    """Epoch seconds of an aware datetime (naive ones are refused: the simulator only speaks UTC)."""
    if moment.tzinfo is None:
        raise InputError("naive datetime: the simulator needs aware UTC datetimes")
    return moment.timestamp()


def from_epoch(t: float) -> datetime:
    """The aware UTC datetime of epoch seconds ``t``."""
    return datetime.fromtimestamp(t, tz=UTC)
