"""The detector contract.

A detector declares ``info`` (the stable kind names it emits, a title, its default severity and spec references),
the event types it ``consumes``, a frozen ``Config`` dataclass of documented thresholds, and implements
``process(event) -> Iterable[Finding]``. Windowed detectors may also emit from ``finish(ts)`` at end of stream.

Detectors are pure: no I/O, no wall clock (only event time), deterministic for a given event order, and all per-key
state lives in ``BoundedState``. They may read the static ``DetectorContext`` (station inventory, limits).
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Generic, TypeVar

from chargeguard.errors import ConfigError
from chargeguard.events import Event, Finding, Severity
from chargeguard.inventory import Inventory


@dataclass(frozen=True, slots=True)
class DetectorInfo:
    """What a detector is, for the catalogue and for the contract suite."""

    name: str
    kinds: tuple[str, ...]
    title: str
    severity: Severity
    references: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds applied to every detector's keyed state."""

    max_keys: int = 200_000
    ttl_s: float = 7 * 86_400.0


@dataclass(frozen=True, slots=True)
class DetectorContext:
    """Read-only facts a detector may consult."""

    inventory: Inventory = field(default_factory=Inventory)
    limits: Limits = field(default_factory=Limits)


@dataclass(frozen=True, slots=True)
class NoConfig:
    """For detectors without thresholds."""


C = TypeVar("C")


class Detector(ABC, Generic[C]):
    """Base class of every detector; see the module docstring for the contract."""

    info: ClassVar[DetectorInfo]
    consumes: ClassVar[tuple[type[Any], ...]]
    Config: ClassVar[type[Any]] = NoConfig

    def __init__(self, config: C, context: DetectorContext) -> None:
        self.config = config
        self.context = context

    @abstractmethod
    def process(self, event: Event) -> Iterable[Finding]:
        """Consume one event; return the findings it completes (usually none)."""

    def finish(self, ts: datetime) -> Iterable[Finding]:
        """End of stream at event time ``ts``: emit what windows still hold. Default: nothing."""
        return ()

    def state_size(self) -> int:
        """Number of keys held across this detector's state (the contract suite checks it stays bounded)."""
        return 0

    def finding(
        self,
        kind: str,
        *,
        ts: datetime,
        incident: str,
        summary: str,
        severity: Severity | None = None,
        confidence: float = 0.9,
        station: str | None = None,
        stations: Iterable[str] = (),
        transactions: Iterable[str] = (),
        token_ref: str | None = None,
        evidence: Mapping[str, Any] | None = None,
    ) -> Finding:
        """Build a Finding of one of this detector's declared kinds."""
        if kind not in self.info.kinds:
            raise ConfigError(f"detector {self.info.name} emitted undeclared kind {kind}")
        all_stations = tuple(dict.fromkeys([*([station] if station else []), *stations]))
        return Finding(
            kind=kind,
            severity=self.info.severity if severity is None else severity,
            confidence=confidence,
            ts=ts,
            incident=incident,
            summary=summary,
            station=station,
            stations=all_stations,
            transactions=tuple(dict.fromkeys(transactions)),
            token_ref=token_ref,
            evidence=evidence or {},
        )


def build_config(config_type: type[C], overrides: Mapping[str, Any] | None, *, detector: str) -> C:
    """Instantiate a detector's Config dataclass, applying overrides and refusing unknown or mistyped fields."""
    if not overrides:
        return config_type()
    if not dataclasses.is_dataclass(config_type):
        raise ConfigError(f"detector {detector} takes no settings")
    known = {f.name: f for f in dataclasses.fields(config_type)}
    unknown = sorted(set(overrides) - set(known))
    if unknown:
        raise ConfigError(f"detector {detector}: unknown setting(s) {', '.join(unknown)}")
    defaults = config_type()
    values: dict[str, Any] = {}
    for name, value in overrides.items():
        default = getattr(defaults, name)
        if isinstance(default, bool) and not isinstance(value, bool):
            raise ConfigError(f"detector {detector}: {name} must be true or false")
        if isinstance(default, int | float) and not isinstance(default, bool):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(f"detector {detector}: {name} must be a number")
            value = type(default)(value)
        if isinstance(default, tuple | frozenset):
            if not isinstance(value, list | tuple):
                raise ConfigError(f"detector {detector}: {name} must be a list")
            value = type(default)(value)
        values[name] = value
    return config_type(**values)
