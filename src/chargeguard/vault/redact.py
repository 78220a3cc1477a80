"""The redaction layer: removes driver tokens and secrets from URLs, free text and log records.

Two entry points do the work; everything else (the structlog processor, the stdlib logging filter,
payload redaction) applies them.

``redact_url(url)`` drops ``user:password@`` from the authority and replaces the value of
credential-looking query parameters (``password``, ``token``, ``sig``, ``X-Amz-Signature`` ...) with
``REDACTED``. It returns the safe URL and whether anything was removed, and never raises.

``redact_text(text)`` scans free text once, left to right, with one alternation of patterns. At every
position the *protected* shapes are tried first and copied through unchanged, then the shapes that are
replaced by a marker ``[redacted:<kind>]``:

Protected (never rewritten)
    our own pseudonyms (``tok<v>_`` + 14/15 base32 characters), UUIDs, RFC 3339 timestamps, the message
    id of an OCPP-J array (``[2, "<id>"``), values of id-like fields (``message_id=``, ``transactionId``,
    ``request_id``, ``trace_id`` ...), and hexadecimal runs of 21 characters or more (SHA-1 / SHA-256 /
    MD5 digests, key ids).
Replaced
    ``url``     URLs with credentials (user:password, credential query parameters), via ``redact_url``;
    ``auth``    ``Authorization: Basic|Bearer|Token|Digest <credential>`` and a bare ``Basic <base64>``;
    ``secret``  ``<name>=<value>`` / ``"<name>": "<value>"`` pairs for secret names (``password``,
                ``token``, ``AuthorizationKey``, ``BasicAuthPassword``, ``apnPassword``, ``simPin`` ...),
                and the value of a JSON object that names a secret configuration key
                (``{"key": "AuthorizationKey", "value": ...}``,
                ``{"variable": {"name": "BasicAuthPassword"}, "attributeValue": ...}``);
    ``token``   the value of token-carrying fields (``idTag``, ``parentIdTag``, ``idToken``,
                ``groupIdToken``, ``uid``, ``contract_id``, ``visual_number``, ``auth_id``, ``emaid`` ...),
                and the token uid in an OCPI tokens path (``/tokens/NL/TNM/<uid>``,
                ``/tokens/<uid>/authorize``);
    ``rfid``    RFID UIDs of 4, 7 or 10 bytes: 8/14/20 hexadecimal digits in one word, containing at least
                one digit and at least one letter A-F, or 2-digit groups joined by one repeated ``:`` /
                ``-`` (any digits) or space (at least one letter A-F);
    ``emaid``   eMAIDs (ISO 15118-2 Annex H and DIN SPEC 91286): country (2 letters), provider (3),
                instance (9; DIN: ``C`` + 8), optional check character; either with one repeated ``-`` /
                ``*`` separator, or unseparated in upper case with at least one digit after the country.

A field-named value that already is a pseudonym, or is empty/``null``/``None``, is left alone.

Limits (stated, not hidden): a token written as a plain decimal number, a hex UID whose digits are all
0-9 or all A-F without separators, or an OCPI uid of arbitrary shape that appears outside a named field or
a tokens path cannot be told apart from ordinary numbers and words, and is not caught. The other way
round, short git commit ids and serial numbers of 8/14/20 hex characters mixing letters and digits are
redacted as possible RFID UIDs, and 14/15-character upper-case codes with digits look like eMAIDs:
redaction errs towards removing. MAC addresses (6 bytes, ISO 15118 ``MacAddress`` tokens) are not in the
RFID shapes. Anything that must be caught for sure has to be pseudonymised field-aware at the edge (the
capture normaliser); this layer is the net behind it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

from chargeguard.vault.fields import (
    ID_FIELDS,
    PSEUDONYM_SHAPE,
    REDACTED,
    SECRET_FIELDS,
    SECRET_KEYS,
    TOKEN_FIELDS,
    marker,
)
from chargeguard.vault.urls import redact_url

__all__ = [
    "ID_FIELDS",
    "REDACTED",
    "SECRET_FIELDS",
    "SECRET_KEYS",
    "TOKEN_FIELDS",
    "RedactingFilter",
    "Sensitive",
    "find_sensitive",
    "marker",
    "redact_event_dict",
    "redact_text",
    "redact_url",
    "redact_value",
]


# --- free text

_NAME_END = r"(?![A-Za-z0-9_])"
_NAME_START = r"(?<![A-Za-z0-9_])"
_QUOTED_OR_BARE = (
    r"""(?:"(?P<{g}dq>[^"\\]*(?:\\.[^"\\]*)*)"|'(?P<{g}sq>[^'\\]*)'|(?P<{g}bare>[^\s&,;"'{{}}\[\]()<>]+))"""
)
_PAIR_SEP = r"""["']?\s*[:=]\s*"""


def _names(names: frozenset[str] | set[str]) -> str:
    return "|".join(sorted((re.escape(n) for n in names), key=len, reverse=True))


_SECRET_PAIR_NAMES = {n.lower() for n in SECRET_FIELDS} | {k.lower() for k in SECRET_KEYS}

_PATTERNS: list[tuple[str, str]] = [
    # protected shapes first: copied through unchanged
    ("p_pseudonym", _NAME_START + r"tok[1-9][0-9]?_[A-Za-z2-7]{14,15}" + _NAME_END),
    (
        "p_uuid",
        r"(?<![0-9A-Fa-f])[0-9A-Fa-f]{8}(?:-[0-9A-Fa-f]{4}){3}-[0-9A-Fa-f]{12}(?![0-9A-Fa-f])",
    ),
    ("p_time", r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d{1,9})?)?(?:Z|[+-]\d{2}:?\d{2})?"),
    ("p_msgid", r"""\[\s*[2-6]\s*,\s*"[^"\\]{0,64}\""""),
    (
        "p_idfield",
        _NAME_START
        + r"(?i:"
        + _names(ID_FIELDS)
        + r")"
        + _NAME_END
        + _PAIR_SEP
        + r"""["']?[\w.:-]{1,64}["']?""",
    ),
    ("p_hexrun", r"(?<![0-9A-Za-z])[0-9A-Fa-f]{21,}(?![0-9A-Za-z])"),
    # replaced shapes
    ("url", r"""[A-Za-z][A-Za-z0-9+.-]{0,15}://[^\s"'<>`]+"""),
    (
        "auth",
        r"(?i:(?P<auth_name>(?:proxy-)?authorization)"
        + _PAIR_SEP
        + r"""["']?(?P<auth_scheme>basic|bearer|token|digest)\s+)[^\s"',;]+"""
        + r"|\bBasic\s+[A-Za-z0-9+/]{8,}={0,2}",
    ),
    (
        "secret",
        _NAME_START
        + r"(?P<secret_name>(?i:"
        + _names(_SECRET_PAIR_NAMES)
        + r"))"
        + _NAME_END
        + r"(?P<secret_sep>"
        + _PAIR_SEP
        + r")"
        + _QUOTED_OR_BARE.format(g="secret_"),
    ),
    (
        "token",
        _NAME_START
        + r"(?P<token_name>(?i:"
        + _names(TOKEN_FIELDS)
        + r"))"
        + _NAME_END
        + r"(?P<token_sep>"
        + _PAIR_SEP
        + r")"
        + _QUOTED_OR_BARE.format(g="token_"),
    ),
    ("ocpi", r"(?P<ocpi_head>/tokens/(?:[A-Za-z]{2}/[A-Za-z0-9]{3}/)?)(?P<ocpi_uid>[^/?#\s\"'<>]{1,64})"),
    (
        "rfid_sep",
        r"(?<![0-9A-Za-z:\-])[0-9A-Fa-f]{2}(?P<rsep>[:\- ])[0-9A-Fa-f]{2}"
        r"(?:(?P=rsep)[0-9A-Fa-f]{2}){2,8}(?![0-9A-Za-z:\-])",
    ),
    ("rfid", r"(?<![0-9A-Za-z_])(?:[0-9A-Fa-f]{20}|[0-9A-Fa-f]{14}|[0-9A-Fa-f]{8})(?![0-9A-Za-z_])"),
    (
        "emaid",
        r"(?<![0-9A-Za-z_])[A-Za-z]{2}(?P<esep>[-*]?)[A-Za-z0-9]{3}(?P=esep)[A-Za-z0-9]{9}"
        r"(?:(?P=esep)[A-Za-z0-9])?(?![0-9A-Za-z_])",
    ),
]
_SCANNER = re.compile("|".join(f"(?P<{name}>{pattern})" for name, pattern in _PATTERNS))
_PSEUDONYM_SHAPE = PSEUDONYM_SHAPE
_UNREDACTED_VALUES = frozenset({"", "null", "none", "true", "false", REDACTED.lower()})
_HAS_DIGIT = re.compile(r"[0-9]")
_HAS_HEX_LETTER = re.compile(r"[A-Fa-f]")


def _field_value(m: re.Match[str], group: str) -> tuple[str, int, int]:
    for suffix in ("dq", "sq", "bare"):
        value = m.group(f"{group}_{suffix}")
        if value is not None:
            return value, m.start(f"{group}_{suffix}"), m.end(f"{group}_{suffix}")
    return "", m.end(), m.end()  # pragma: no cover - the pattern always captures one of the three


def _replace_value(m: re.Match[str], group: str, kind: str) -> str:
    value, start, end = _field_value(m, group)
    if value.lower() in _UNREDACTED_VALUES or _PSEUDONYM_SHAPE.match(value) or value.startswith("[redacted:"):
        return m.group(0)
    whole = m.group(0)
    offset = m.start()
    return whole[: start - offset] + marker(kind) + whole[end - offset :]


def _is_rfid(text: str) -> bool:
    return bool(_HAS_DIGIT.search(text) and _HAS_HEX_LETTER.search(text))


def _is_emaid(text: str, separated: bool) -> bool:
    if separated:
        return True
    return text.isupper() and bool(_HAS_DIGIT.search(text[2:]))


def _substitute(m: re.Match[str]) -> str:
    kind = m.lastgroup
    whole = m.group(0)
    if kind is None or kind.startswith("p_"):
        return whole
    if kind == "url":
        safe, _found = redact_url(whole)
        # an OCPI tokens path inside the URL still names a token uid
        return _OCPI_ONLY.sub(lambda o: o.group("head") + marker("token"), safe)
    if kind == "auth":
        scheme = m.group("auth_scheme")
        if scheme is None:
            return "Basic " + marker("auth")
        return whole[: m.end("auth_scheme") - m.start()] + " " + marker("auth")
    if kind == "secret":
        return _replace_value(m, "secret", "secret")
    if kind == "token":
        return _replace_value(m, "token", "token")
    if kind == "ocpi":
        uid = m.group("ocpi_uid")
        if _PSEUDONYM_SHAPE.match(uid) or uid.startswith("[redacted:"):
            return whole
        return m.group("ocpi_head") + marker("token")
    if kind == "rfid_sep":
        if m.group("rsep") == " " and not _HAS_HEX_LETTER.search(whole):
            return whole
        groups = whole.count(m.group("rsep")) + 1
        return marker("rfid") if groups in (4, 7, 10) else whole
    if kind == "rfid":
        return marker("rfid") if _is_rfid(whole) else whole
    if kind == "emaid":
        return marker("emaid") if _is_emaid(whole, bool(m.group("esep"))) else whole
    return whole  # pragma: no cover - every named group is handled above


_OCPI_ONLY = re.compile(
    r"(?P<head>/tokens/(?:[A-Za-z]{2}/[A-Za-z0-9]{3}/)?)(?!tok[1-9][0-9]?_)(?P<uid>[^/?#\s\"'<>]{1,64})"
)

# objects (one nesting level) that name a secret configuration key: redact their value fields
_FLAT_OBJECT = re.compile(r"\{[^{}]*(?:\{[^{}]*\}[^{}]*)*\}")
_SECRET_KEY_NAMED = re.compile(
    r"""["'](?:key|name)["']\s*:\s*["'](?:""" + _names(set(SECRET_KEYS)) + r""")["']"""
)
_VALUE_FIELD = re.compile(
    r"""(["'](?:value|attributeValue)["']\s*:\s*)(?:"[^"\\]*(?:\\.[^"\\]*)*"|'[^']*'|[^,}\s]+)"""
)
_ANY_SECRET_KEY = re.compile(_names(set(SECRET_KEYS)))


def _redact_secret_objects(text: str) -> str:
    def one(m: re.Match[str]) -> str:
        obj = m.group(0)
        if not _SECRET_KEY_NAMED.search(obj):
            return obj
        return _VALUE_FIELD.sub(lambda v: v.group(1) + '"' + marker("secret") + '"', obj)

    return _FLAT_OBJECT.sub(one, text)


# every replaced shape needs one of these (a digit, a pair or path separator, a separated eMAID, Basic auth)
_CANDIDATE = re.compile(r"[0-9:=/*\-]|Basic")


def redact_text(text: str) -> str:
    """Replace token-like strings and secrets in free text with ``[redacted:<kind>]``; never raises."""
    if not text or not _CANDIDATE.search(text):
        return text
    try:
        if _ANY_SECRET_KEY.search(text):
            text = _redact_secret_objects(text)
        return _SCANNER.sub(_substitute, text)
    except (RecursionError, MemoryError, re.error):  # pragma: no cover - defensive: logging must go on
        return marker("unredactable")


@dataclass(frozen=True, slots=True)
class Sensitive:
    """One token or secret found in free text: its kind, the field that named it (if any) and its span."""

    kind: str
    start: int
    end: int
    field: str | None = None


def _value_span(m: re.Match[str], kind: str) -> tuple[int, int, str | None]:
    if kind in ("token", "secret"):
        _value, start, end = _field_value(m, kind)
        return start, end, m.group(f"{kind}_name")
    if kind == "ocpi":
        return m.start("ocpi_uid"), m.end("ocpi_uid"), "ocpi_path"
    if kind == "auth" and m.group("auth_scheme") is not None:
        return m.end("auth_scheme") + 1, m.end(), m.group("auth_name")
    return m.start(), m.end(), None


_KIND_NAMES = {"rfid_sep": "rfid"}


def find_sensitive(text: str) -> list[Sensitive]:
    """Where ``redact_text`` would redact something, without changing the text (for scanners and reports).

    Spans cover the sensitive value only (not the field name). Secret configuration values inside JSON objects
    (``{"key": "AuthorizationKey", "value": ...}``) are reported as kind ``secret``.
    """
    found: list[Sensitive] = []
    if not text:
        return found
    if _ANY_SECRET_KEY.search(text):
        for obj in _FLAT_OBJECT.finditer(text):
            if _SECRET_KEY_NAMED.search(obj.group(0)):
                for value in _VALUE_FIELD.finditer(obj.group(0)):
                    start = obj.start() + value.end(1)
                    end = obj.start() + value.end()
                    if text[start:end][:1] in ("'", '"'):
                        start, end = start + 1, end - 1
                    if end > start and not text[start:end].startswith("[redacted:"):
                        found.append(Sensitive("secret", start, end, "value"))
    for m in _SCANNER.finditer(text):
        kind = m.lastgroup
        if kind is None or kind.startswith("p_"):
            continue
        if _substitute(m) == m.group(0):
            continue
        start, end, field = _value_span(m, kind)
        if any(f.start <= start < f.end for f in found):
            continue
        found.append(Sensitive(_KIND_NAMES.get(kind, kind), start, end, field))
    found.sort(key=lambda f: f.start)
    return found


# --- structured values and logging


def redact_value(value: Any, *, pseudonymise: Callable[[str], str] | None = None, _depth: int = 0) -> Any:
    """Redact a JSON-like value (dicts, lists, strings) recursively.

    Values of token fields are pseudonymised with ``pseudonymise`` when given (else replaced by a
    marker); values of secret fields, and the ``value``/``attributeValue`` of an object naming a secret
    configuration key, become a marker; every other string goes through ``redact_text``. Returns a new
    value; the input is not modified.
    """
    if _depth > 64:
        return marker("too_deep")
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        names_secret = any(
            isinstance(value.get(k), str) and value.get(k) in SECRET_KEYS for k in ("key", "name")
        ) or _names_secret_variable(value)
        out: dict[Any, Any] = {}
        for original_key, item in value.items():
            lower = original_key.lower() if isinstance(original_key, str) else ""
            # keys can carry tokens too (a dict of counts per card): they pass through the text redaction
            key = redact_text(original_key) if isinstance(original_key, str) else original_key
            if isinstance(item, str) and _PSEUDONYM_SHAPE.match(item):
                out[key] = item  # a pseudonym is safe whatever field carries it
            elif lower in SECRET_FIELDS or (names_secret and lower in ("value", "attributevalue")):
                out[key] = marker("secret") if item not in (None, "") else item
            elif lower in ID_FIELDS and isinstance(item, str | int):
                out[key] = item
            elif lower in TOKEN_FIELDS and isinstance(item, str):
                if _PSEUDONYM_SHAPE.match(item) or not item:
                    out[key] = item
                else:
                    out[key] = pseudonymise(item) if pseudonymise is not None else marker("token")
            else:
                out[key] = redact_value(item, pseudonymise=pseudonymise, _depth=_depth + 1)
        return out
    if isinstance(value, list | tuple):
        items = [redact_value(v, pseudonymise=pseudonymise, _depth=_depth + 1) for v in value]
        return items if isinstance(value, list) else tuple(items)
    return value


def _names_secret_variable(value: Mapping[Any, Any]) -> bool:
    variable = value.get("variable")
    return isinstance(variable, Mapping) and variable.get("name") in SECRET_KEYS


def redact_event_dict(
    _logger: object, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: redact every string value (nested too) and secret-named keys of the event."""
    for key in list(event_dict):
        item = event_dict[key]
        lower = key.lower()
        if isinstance(item, str) and _PSEUDONYM_SHAPE.match(item):
            continue
        if lower in SECRET_FIELDS and item not in (None, ""):
            event_dict[key] = marker("secret")
        elif lower in ID_FIELDS:
            continue
        elif lower in TOKEN_FIELDS and isinstance(item, str) and item and not _PSEUDONYM_SHAPE.match(item):
            event_dict[key] = marker("token")
        elif isinstance(item, str | Mapping | list | tuple):
            event_dict[key] = redact_value(item)
        elif isinstance(item, BaseException):
            event_dict[key] = redact_text(repr(item))
    return event_dict


_STANDARD_RECORD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
}


class RedactingFilter(logging.Filter):
    """stdlib logging filter: redacts the message, string extras, exception and stack text of a record.

    Attach it to handlers (``handler.addFilter(RedactingFilter())``) so every logger's records pass it.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # bad %-args: keep the template only
            message = str(record.msg)
        record.msg = redact_text(message)
        record.args = None
        for name, item in list(vars(record).items()):
            if name in _STANDARD_RECORD_ATTRS:
                continue
            if name.lower() in ID_FIELDS:
                continue
            if name.lower() in SECRET_FIELDS:
                setattr(record, name, marker("secret"))
            elif isinstance(item, str | Mapping | list | tuple):
                setattr(record, name, redact_value(item))
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        if record.stack_info:
            record.stack_info = redact_text(record.stack_info)
        return True
