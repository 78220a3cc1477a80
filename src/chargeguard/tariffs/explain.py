"""Explain why a CDR's billed cost differs from the tariff engine: component, periods, expected vs billed."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from chargeguard.sources.ocpi.models import Cdr, Price
from chargeguard.tariffs.engine import CostBreakdown, Line

_COMPONENT_FIELDS = (
    ("FLAT", "total_fixed_cost"),
    ("ENERGY", "total_energy_cost"),
    ("TIME", "total_time_cost"),
    ("PARKING_TIME", "total_parking_cost"),
    ("RESERVATION_TIME", "total_reservation_cost"),
)
_Q = Decimal("0.0001")


@dataclass(frozen=True, slots=True)
class Discrepancy:
    """One disagreement: ``what`` is ``total``, a dimension name, or ``volume:<dimension>``."""

    what: str
    vat: str  # "excl" or "incl" (volumes: "-")
    expected: Decimal
    billed: Decimal
    lines: tuple[Line, ...] = ()

    @property
    def difference(self) -> Decimal:
        return self.billed - self.expected

    def as_evidence(self) -> dict[str, Any]:
        return {
            "what": self.what,
            "vat": self.vat,
            "expected": str(self.expected.quantize(_Q)),
            "billed": str(self.billed.quantize(_Q)),
            "difference": str(self.difference.quantize(_Q)),
            "periods": [
                {
                    "period": ln.period,
                    "start": ln.start.isoformat(),
                    "tariff_id": ln.tariff_id,
                    "element": ln.element,
                    "volume": str(ln.volume.quantize(_Q)),
                    "price": str(ln.price),
                    "excl_vat": str(ln.excl_vat.quantize(_Q)),
                    **({"note": ln.note} if ln.note else {}),
                }
                for ln in self.lines
            ],
        }


def _compare(
    what: str, expected: Price | tuple[Decimal, Decimal], billed: Price, tol: Decimal, lines: tuple[Line, ...]
) -> list[Discrepancy]:
    exp_excl, exp_incl = (expected.excl_vat, expected.incl_vat) if isinstance(expected, Price) else expected
    out: list[Discrepancy] = []
    if abs(billed.excl_vat - exp_excl) > tol:
        out.append(Discrepancy(what, "excl", exp_excl, billed.excl_vat, lines))
    if billed.incl_vat is not None and exp_incl is not None and abs(billed.incl_vat - exp_incl) > tol:
        out.append(Discrepancy(what, "incl", exp_incl, billed.incl_vat, lines))
    return out


def explain_difference(
    cdr: Cdr,
    breakdown: CostBreakdown,
    *,
    tolerance: Decimal = Decimal("0.01"),
    volume_tolerance: Decimal = Decimal("0.001"),
) -> list[Discrepancy]:
    """Every way ``cdr`` disagrees with ``breakdown`` beyond ``tolerance`` (money) / ``volume_tolerance``.

    The total first, then each component cost the CDR states (``total_energy_cost`` ...), then the CDR's stated
    volumes against the sum of its own charging periods. Empty when the CDR is billed as its tariffs say.
    """
    out = _compare(
        "total", (breakdown.excl_vat, breakdown.incl_vat), cdr.total_cost, tolerance, breakdown.lines
    )
    for dimension, name in _COMPONENT_FIELDS:
        stated: Price | None = getattr(cdr, name)
        if stated is None:
            continue
        expected = breakdown.by_dimension.get(dimension, (Decimal(0), Decimal(0)))
        lines = tuple(ln for ln in breakdown.lines if ln.dimension == dimension)
        out.extend(_compare(dimension, expected, stated, tolerance, lines))
    sums: dict[str, Decimal] = {}
    for period in cdr.charging_periods:
        for d in period.dimensions:
            sums[d.type] = sums.get(d.type, Decimal(0)) + d.volume
    for dimension, stated_volume in (
        ("ENERGY", cdr.total_energy),
        ("TIME", cdr.total_time),
        ("PARKING_TIME", cdr.total_parking_time),
    ):
        if stated_volume is None or dimension not in sums:
            continue
        if abs(sums[dimension] - stated_volume) > volume_tolerance:
            out.append(Discrepancy(f"volume:{dimension}", "-", sums[dimension], stated_volume))
    return out
