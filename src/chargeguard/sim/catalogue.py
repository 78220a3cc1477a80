"""The incident sets selectable with ``--incidents``: tuning (sim.incidents), holdout (frozen), none."""

from __future__ import annotations

from chargeguard.errors import ConfigError
from chargeguard.sim.injection import IncidentSpec


def incident_set(name: str) -> tuple[IncidentSpec, ...]:
    """The variants of incident set ``name``."""
    if name == "none":
        return ()
    if name == "tuning":
        from chargeguard.sim.incidents import CATALOGUE as TUNING

        return TUNING
    if name == "holdout":
        from chargeguard.sim.incidents_holdout import CATALOGUE as HOLDOUT

        return HOLDOUT
    raise ConfigError(f"unknown incident set {name!r} (tuning, holdout or none)")
