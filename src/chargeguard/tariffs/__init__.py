"""The OCPI 2.2.1 tariff engine: recompute a CDR's cost from its charging periods and tariffs, explain differences."""

from chargeguard.tariffs.engine import CostBreakdown, Line, TariffOptions, compute_cost
from chargeguard.tariffs.explain import Discrepancy, explain_difference

__all__ = [
    "CostBreakdown",
    "Discrepancy",
    "Line",
    "TariffOptions",
    "compute_cost",
    "explain_difference",
]
