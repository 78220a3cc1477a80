"""Explicit detector registration: the built-in tuple plus the ``chargeguard.detectors`` entry-point group.

A duplicate detector name or a kind claimed by two detectors fails loudly (except the kinds in ``SHARED_KINDS``:
one behaviour seen from two sources); nothing registers itself at import time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from importlib.metadata import entry_points
from typing import Any

from chargeguard.detectors.base import Detector, DetectorContext, build_config
from chargeguard.detectors.rules import billing, commands, metering, protocol, station, tokens
from chargeguard.errors import ConfigError

ENTRY_POINT_GROUP = "chargeguard.detectors"
SHARED_KINDS = frozenset(
    {"token.unauthorized_charging"}
)  # OCPP (authorization.py) and OCPI (billing_tokens.py)

BUILTIN: tuple[type[Detector[Any]], ...] = (
    *tokens.DETECTORS,
    *metering.DETECTORS,
    *station.DETECTORS,
    *protocol.DETECTORS,
    *commands.DETECTORS,
    *billing.DETECTORS,
)


def _plugins() -> tuple[type[Detector[Any]], ...]:
    found: list[type[Detector[Any]]] = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        obj = ep.load()
        if not (isinstance(obj, type) and issubclass(obj, Detector)):
            raise ConfigError(f"entry point {ep.name} in {ENTRY_POINT_GROUP} is not a Detector class")
        found.append(obj)
    return tuple(found)


def detector_classes(*, include_plugins: bool = True) -> tuple[type[Detector[Any]], ...]:
    """Every registered detector class, checked for duplicate names and kinds."""
    classes = BUILTIN + (_plugins() if include_plugins else ())
    names: dict[str, str] = {}
    kinds: dict[str, str] = {}
    for cls in classes:
        info = cls.info
        if info.name in names:
            raise ConfigError(f"detector name {info.name} registered twice")
        names[info.name] = cls.__qualname__
        for kind in info.kinds:
            if kind in kinds and kind not in SHARED_KINDS:
                raise ConfigError(f"kind {kind} claimed by both {kinds[kind]} and {info.name}")
            kinds[kind] = info.name
    return classes


def build_detectors(
    context: DetectorContext,
    *,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    disabled: Iterable[str] = (),
    classes: tuple[type[Detector[Any]], ...] | None = None,
) -> list[Detector[Any]]:
    """Instantiate detectors with their settings; ``overrides`` maps detector name to threshold overrides."""
    overrides = overrides or {}
    chosen = detector_classes() if classes is None else classes
    known = {cls.info.name for cls in chosen}
    unknown = sorted((set(overrides) | set(disabled)) - known)
    if unknown:
        raise ConfigError(f"unknown detector(s) in settings: {', '.join(unknown)}")
    skip = set(disabled)
    return [
        cls(build_config(cls.Config, overrides.get(cls.info.name), detector=cls.info.name), context)
        for cls in chosen
        if cls.info.name not in skip
    ]


def all_kinds() -> tuple[str, ...]:
    """Every kind a registered detector can emit, sorted."""
    return tuple(sorted({kind for cls in detector_classes() for kind in cls.info.kinds}))
