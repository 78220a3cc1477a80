"""Rule detectors (station); filled in by the detector work."""

from __future__ import annotations

from typing import Any

from chargeguard.detectors.base import Detector

DETECTORS: tuple[type[Detector[Any]], ...] = ()
