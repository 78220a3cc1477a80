"""Text both databases can hold: NUL characters and lone surrogates become U+FFFD before anything is written.

Station identities, summaries and evidence carry attacker-controlled text. PostgreSQL refuses NUL in text and
JSONB, and neither driver can encode a lone surrogate; one such string must not fail a whole batch of alerts.
"""

from __future__ import annotations

from typing import Any

import orjson

REPLACEMENT = "\ufffd"


def clean_text(value: str | None) -> str | None:
    """``value`` with NULs and unencodable characters replaced (the common case costs two C-speed scans)."""
    if value is None:
        return None
    if "\x00" in value:
        value = value.replace("\x00", REPLACEMENT)
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            value = "".join(REPLACEMENT if 0xD800 <= ord(c) <= 0xDFFF else c for c in value)
    return value


def clean_json(value: Any) -> Any:
    """A copy of a JSON-like value with every string (keys included) cleaned."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        return {clean_json(k) if isinstance(k, str) else k: clean_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean_json(v) for v in value]
    return value


def json_dumps(value: Any) -> str:
    """JSON text for the database: orjson (non-JSON values as text), cleaned only when it has to be."""
    try:
        text = orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS).decode("utf-8")
    except orjson.JSONEncodeError:
        return orjson.dumps(clean_json(value), default=str, option=orjson.OPT_NON_STR_KEYS).decode("utf-8")
    if "\\u0000" in text:
        return orjson.dumps(clean_json(value), default=str, option=orjson.OPT_NON_STR_KEYS).decode("utf-8")
    return text
