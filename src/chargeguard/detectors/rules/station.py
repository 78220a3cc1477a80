"""Rule detectors for station.* kinds: access, identity, configuration and station-reported signals."""

from __future__ import annotations

from typing import Any

from chargeguard.detectors.base import Detector
from chargeguard.detectors.rules.station_access import AuthFailure
from chargeguard.detectors.rules.station_config import SecurityDowngrade
from chargeguard.detectors.rules.station_connections import DuplicateConnection
from chargeguard.detectors.rules.station_identity import FirmwareDowngrade, IdentityChange
from chargeguard.detectors.rules.station_signals import ClockSkew, SecurityEvent

__all__ = [
    "DETECTORS",
    "AuthFailure",
    "ClockSkew",
    "DuplicateConnection",
    "FirmwareDowngrade",
    "IdentityChange",
    "SecurityDowngrade",
    "SecurityEvent",
]

DETECTORS: tuple[type[Detector[Any]], ...] = (
    AuthFailure,
    DuplicateConnection,
    IdentityChange,
    FirmwareDowngrade,
    SecurityDowngrade,
    SecurityEvent,
    ClockSkew,
)
