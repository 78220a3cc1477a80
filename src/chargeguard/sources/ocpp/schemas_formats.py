"""The value formats the OCPP JSON schemas name (RFC 3339 date-time, RFC 3986 URI) and decimal ``multipleOf``.

Each format is one anchored regular expression, shared by the fast (msgspec) and the exact validator so the
two cannot drift apart:

* ``date-time``: RFC 3339 ``date-time`` (section 5.6) as ``jsonschema``'s format checker reads it
  (``T``/``Z`` in either case, any number of fraction digits, a zone ``Z`` or ``+hh:mm``/``-hh:mm`` is
  mandatory, no leap second), with the calendar encoded in the expression itself: day of month, 29 February
  only in leap years, year 0000 refused. Years beyond 9999 cannot match (exactly four digits). Unlike
  ``rfc3339_validator`` (which ends its expression with ``$``), a trailing newline is refused.
* ``uri``: RFC 3986 section 3 ``URI`` (scheme, hier-part, query, fragment; IPv6 and IPvFuture literals), the
  rule ``rfc3987.parse(..., rule="URI")`` applies for ``jsonschema``, again without accepting a trailing
  newline.

``multipleOf`` is decided on the decimal value of the number as written (the shortest ``repr`` of a float),
as the ``ocpp`` package does by parsing such payloads with ``decimal.Decimal``: 16.1 is a multiple of 0.1
although the binary float quotient 16.1 / 0.1 is 161.00000000000003.
"""

from __future__ import annotations

import decimal
import math
import re

_DAY_31 = r"(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])"
_DAY_30 = r"(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)"
_DAY_FEB = r"02-(?:0[1-9]|1[0-9]|2[0-8])"
_LEAP_YEAR = r"(?:[0-9]{2}(?:0[48]|[2468][048]|[13579][26])|(?:[02468][048]|[13579][26])00)"
_DATE = rf"(?:(?!0000)[0-9]{{4}}-(?:{_DAY_31}|{_DAY_30}|{_DAY_FEB})|{_LEAP_YEAR}-02-29)"
_TIME = r"(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]+)?"
_ZONE = r"(?:[Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"

DATE_TIME_PATTERN = rf"\A{_DATE}[Tt]{_TIME}{_ZONE}\Z"
"""RFC 3339 date-time with a mandatory zone and a valid calendar date (see the module docstring)."""

_UNRESERVED = r"A-Za-z0-9\-._~"
_SUB_DELIMS = r"!$&'()*+,;="
_PCT = r"%[0-9A-Fa-f]{2}"
_PCHAR = rf"(?:[{_UNRESERVED}{_SUB_DELIMS}:@]|{_PCT})"
_DEC_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9][0-9]|[0-9])"
_IPV4 = rf"{_DEC_OCTET}(?:\.{_DEC_OCTET}){{3}}"
_H16 = r"[0-9A-Fa-f]{1,4}"
_LS32 = rf"(?:{_H16}:{_H16}|{_IPV4})"
_IPV6 = (
    "(?:"
    + "|".join(
        (
            rf"(?:{_H16}:){{6}}{_LS32}",
            rf"::(?:{_H16}:){{5}}{_LS32}",
            rf"(?:{_H16})?::(?:{_H16}:){{4}}{_LS32}",
            rf"(?:(?:{_H16}:){{0,1}}{_H16})?::(?:{_H16}:){{3}}{_LS32}",
            rf"(?:(?:{_H16}:){{0,2}}{_H16})?::(?:{_H16}:){{2}}{_LS32}",
            rf"(?:(?:{_H16}:){{0,3}}{_H16})?::{_H16}:{_LS32}",
            rf"(?:(?:{_H16}:){{0,4}}{_H16})?::{_LS32}",
            rf"(?:(?:{_H16}:){{0,5}}{_H16})?::{_H16}",
            rf"(?:(?:{_H16}:){{0,6}}{_H16})?::",
        )
    )
    + ")"
)
_IPVFUTURE = rf"[Vv][0-9A-Fa-f]+\.[{_UNRESERVED}{_SUB_DELIMS}:]+"
_HOST = rf"(?:\[(?:{_IPV6}|{_IPVFUTURE})\]|(?:[{_UNRESERVED}{_SUB_DELIMS}]|{_PCT})*)"
_USERINFO = rf"(?:[{_UNRESERVED}{_SUB_DELIMS}:]|{_PCT})*"
_AUTHORITY = rf"(?:{_USERINFO}@)?{_HOST}(?::[0-9]*)?"
_SEGMENT = rf"{_PCHAR}*"
_SEGMENT_NZ = rf"{_PCHAR}+"
_HIER_PART = (
    rf"(?://{_AUTHORITY}(?:/{_SEGMENT})*"  # "//" authority path-abempty
    rf"|/(?:{_SEGMENT_NZ}(?:/{_SEGMENT})*)?"  # path-absolute
    rf"|{_SEGMENT_NZ}(?:/{_SEGMENT})*"  # path-rootless
    r"|)"  # path-empty
)
_QUERY = rf"(?:{_PCHAR}|[/?])*"

URI_PATTERN = rf"\A[A-Za-z][A-Za-z0-9+\-.]*:{_HIER_PART}(?:\?{_QUERY})?(?:#{_QUERY})?\Z"
"""RFC 3986 ``URI`` (an absolute URI, optionally with a fragment)."""

FORMAT_PATTERNS: dict[str, str] = {"date-time": DATE_TIME_PATTERN, "uri": URI_PATTERN}
"""The formats the OCPP schemas use; any other format name is an annotation, as in JSON Schema."""

_FORMAT_RE = {name: re.compile(pattern) for name, pattern in FORMAT_PATTERNS.items()}
_DECIMAL = decimal.Context(prec=64, traps=[])


def matches_format(name: str, value: str) -> bool:
    """Whether ``value`` is a valid instance of the format ``name`` (unknown formats always match)."""
    compiled = _FORMAT_RE.get(name)
    return compiled is None or compiled.match(value) is not None


def is_multiple_of(value: int | float, divisor: int | float) -> bool:
    """Whether the decimal value of ``value`` (as written in JSON) is an integer multiple of ``divisor``."""
    if isinstance(value, float) and not math.isfinite(value):
        return False
    try:
        quotient = _DECIMAL.divide(decimal.Decimal(repr(value)), decimal.Decimal(repr(divisor)))
    except (decimal.DecimalException, ValueError):
        return False
    return quotient.is_finite() and quotient == quotient.to_integral_value(context=_DECIMAL)
