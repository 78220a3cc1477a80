"""The holdout incident set (placeholder until written)."""

from __future__ import annotations

from chargeguard.sim.injection import IncidentSpec

CATALOGUE: tuple[IncidentSpec, ...] = ()
