"""Firmware version parsing and ordering tolerant of vendor formats (used by station.firmware_downgrade).

Charge-station firmware versions are free text (CiString50 in BootNotification): ``v1.2.3``, ``1.2.3-rc1``,
``FW_2023.04.1``, ``4.12.0.1234``, ``R2.1 build 345``, ``20230401``. ``parse_version`` reads such a string
into a ``FirmwareVersion``; ``compare_versions`` orders two of them or says they cannot be ordered.

Rules, in order:

1. The *numeric core* is the first run of digit groups joined by ``.``, ``_`` or ``-`` (``2023.04.1``); groups
   compare as integers, so ``1.10`` > ``1.9``; missing trailing groups count as 0 (``1.2`` == ``1.2.0``).
2. The text before the core, lower-cased with separators removed and the common version prefixes (``v``,
   ``r``, ``rev``, ``ver``, ``version``, ``fw``, ``firmware``, ``release``) dropped, is the *product tag*.
   Versions with different product tags (``ABC-1.2`` vs ``XYZ-1.3``) are different lines and are not ordered.
3. Date-based cores (a first group that is a plausible year 1990..2099, or an 8-digit ``YYYYMMDD``) form
   their own *scheme*; a date-based version is never ordered against a semantic one (a vendor that changes
   scheme is not a downgrade).
4. After the core: a pre-release marker (``dev`` < ``alpha``/``a`` < ``beta``/``b`` < ``rc``/``pre``/``cr``)
   sorts before the release, optionally numbered (``rc2`` > ``rc1``); ``build``/``bld``/``b.``/``+`` followed
   by digits is a build number, compared last; ``post``/``p``/``patch``/``hotfix`` numbered suffixes sort
   after the release.
5. Any other trailing text is a *vendor suffix*: versions that differ only in vendor suffix are not ordered.

Strings without any digit are unparseable: ``parse_version`` returns None and only equality can be checked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_CORE_RE = re.compile(r"\d+(?:[._-]\d+)*")
_PREFIX_WORDS_RE = re.compile(r"(?:firmware|version|release|rev|ver|fw|v|r)$")
_SPLIT_RE = re.compile(r"[._-]")
_STAGES = {
    "dev": 0,
    "snapshot": 0,
    "alpha": 1,
    "a": 1,
    "beta": 2,
    "b": 2,
    "pre": 3,
    "rc": 3,
    "cr": 3,
    "post": 5,
    "p": 5,
    "patch": 5,
    "hotfix": 5,
    "hf": 5,
}
_RELEASE = 4
_SUFFIX_RE = re.compile(
    r"""^
    (?:[\s._-]*(?P<stage>dev|snapshot|alpha|beta|pre|rc|cr|post|patch|hotfix|hf|a|b|p)(?![a-z])[\s._-]*(?P<stage_n>\d+)?)?
    (?:[\s._+-]*(?:build|bld|b|\+)[\s._#:-]*(?P<build>\d+))?
    [\s]*$""",
    re.VERBOSE,
)
_MAX_LEN = 100


@dataclass(frozen=True, slots=True)
class FirmwareVersion:
    """A parsed firmware version; ``key`` orders versions within one (scheme, product, suffix) line."""

    text: str
    scheme: str  # "semantic" or "date"
    product: str
    release: tuple[int, ...]
    stage: int
    stage_number: int
    build: int
    suffix: str

    @property
    def line(self) -> tuple[str, str, str]:
        """Versions are ordered only within one line."""
        return (self.scheme, self.product, self.suffix)

    def key(self, width: int) -> tuple[int, ...]:
        padded = self.release + (0,) * (width - len(self.release))
        return (*padded, self.stage, self.stage_number, self.build)


def _product_tag(prefix: str) -> str:
    tag = re.sub(r"[^a-z0-9]", "", prefix.lower())
    return _PREFIX_WORDS_RE.sub("", tag)


def _date_core(groups: list[int], raw_groups: list[str]) -> tuple[str, list[int]]:
    first = raw_groups[0]
    if len(first) == 8 and 1990 <= groups[0] // 10_000 <= 2099:
        year, rest = divmod(groups[0], 10_000)
        month, day = divmod(rest, 100)
        if 1 <= month <= 12 and 1 <= day <= 31:
            return "date", [year, month, day, *groups[1:]]
    if len(first) == 4 and 1990 <= groups[0] <= 2099 and len(groups) >= 2:
        return "date", groups
    return "semantic", groups


def parse_version(text: str | None) -> FirmwareVersion | None:
    """Parse a vendor firmware string; None when it holds no version number or is absurdly long."""
    if text is None:
        return None
    stripped = text.strip()
    if not stripped or len(stripped) > _MAX_LEN:
        return None
    match = _CORE_RE.search(stripped)
    if match is None:
        return None
    raw_groups = [g for g in _SPLIT_RE.split(match.group(0)) if g]
    if any(len(g) > 12 for g in raw_groups):
        return None
    groups = [int(g) for g in raw_groups]
    scheme, release = _date_core(groups, raw_groups)
    while len(release) > 1 and release[-1] == 0:
        release.pop()
    product = _product_tag(stripped[: match.start()])
    rest = stripped[match.end() :].lower()
    stage, stage_number, build, suffix = _RELEASE, 0, 0, ""
    parsed = _SUFFIX_RE.match(rest)
    if parsed is None:
        suffix = re.sub(r"[^a-z0-9]", "", rest)
    else:
        if parsed.group("stage"):
            stage = _STAGES[parsed.group("stage")]
            stage_number = int(parsed.group("stage_n") or 0)
        if parsed.group("build"):
            build = int(parsed.group("build"))
    return FirmwareVersion(
        text=stripped,
        scheme=scheme,
        product=product,
        release=tuple(release),
        stage=stage,
        stage_number=stage_number,
        build=build,
        suffix=suffix,
    )


def compare_parsed(a: FirmwareVersion, b: FirmwareVersion) -> int | None:
    """-1, 0 or 1 as ``a`` is older than, equal to or newer than ``b``; None when they are not comparable."""
    if a.line != b.line:
        return None
    width = max(len(a.release), len(b.release))
    ka, kb = a.key(width), b.key(width)
    return (ka > kb) - (ka < kb)


def compare_versions(a: str | None, b: str | None) -> int | None:
    """Order two firmware strings; 0 for equal text, None when either is unparseable or they are not
    comparable."""
    if a is not None and b is not None and a.strip().lower() == b.strip().lower():
        return 0
    pa, pb = parse_version(a), parse_version(b)
    if pa is None or pb is None:
        return None
    return compare_parsed(pa, pb)


def downgrade_depth(older: FirmwareVersion, newer: FirmwareVersion) -> str:
    """Which part differs first between two comparable versions: major, minor, patch or build."""
    width = max(len(older.release), len(newer.release))
    a = older.release + (0,) * (width - len(older.release))
    b = newer.release + (0,) * (width - len(newer.release))
    names = ("major", "minor", "patch") if older.scheme == "semantic" else ("year", "month", "patch")
    for index, (x, y) in enumerate(zip(a, b, strict=True)):
        if x != y:
            return names[index] if index < len(names) else "patch"
    return "build"
