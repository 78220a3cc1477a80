"""Recompute the price of disputed CDRs with the tariff engine, to say which party's amount the tariff supports.

Only the records that need it (price disputes, and CDRs only the CPO has) are read back from the CPO's file and
decoded into full OCPI models (tokens pseudonymised by the importer), so the cost stays proportional to the
disputes, not to the file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import msgspec

from chargeguard.errors import InputError
from chargeguard.reconcile.load import lines_at
from chargeguard.reconcile.match import Reconciliation
from chargeguard.sources.ocpi.importer import decode_record
from chargeguard.sources.ocpi.models import Cdr, Tariff
from chargeguard.tariffs import compute_cost, explain_difference
from chargeguard.vault.pseudonyms import Pseudonymiser


@dataclass(frozen=True, slots=True)
class Repriced:
    key: str
    tariff_excl_vat: Decimal | None
    verdict: str  # "cpo" (the CPO's amount is right), "emsp", "neither", or "unpriceable: <why>"
    explanation: str


def _records(path: Path, wanted: set[int]) -> dict[int, bytes]:
    """The raw records at the given positions (line index for JSON Lines, array index for arrays)."""
    with path.open("rb") as fh:
        array = fh.read(4096).lstrip()[:1] == b"["
    if not array:
        return lines_at(path, wanted)
    found: dict[int, bytes] = {}
    for i, raw in enumerate(msgspec.json.decode(path.read_bytes(), type=list[msgspec.Raw])):
        if i in wanted:
            found[i] = bytes(raw)
    return found


def reprice(
    result: Reconciliation,
    tariffs: Mapping[str, Tariff],
    pseudonymiser: Pseudonymiser,
    *,
    time_zone: str = "UTC",
    tolerance: Decimal = Decimal("0.01"),
) -> list[Repriced]:
    """Reprice every price dispute and every CDR only the CPO has; ``verdict`` names whose amount the tariff backs."""
    rows = result.con.execute("""
        SELECT cpo_idx, cpo_key, emsp_cost FROM disputes WHERE reasons LIKE '%price%'
        UNION ALL SELECT idx, key, NULL FROM unmatched WHERE side = 'cpo'
    """).fetchall()
    records = _records(result.cpo_file, {int(r[0]) for r in rows})
    out: list[Repriced] = []
    for idx, key, emsp_cost in rows:
        raw = records.get(int(idx))
        try:
            if raw is None:
                raise InputError("record not found again")
            cdr: Cdr = decode_record(
                raw, "cdr", pseudonymiser, source=f"{result.cpo_file} line {int(idx) + 1}"
            )
            breakdown = compute_cost(cdr, time_zone=time_zone, tariffs=tariffs)
        except InputError as exc:
            out.append(Repriced(str(key), None, f"unpriceable: {exc.message}", ""))
            continue
        expected = breakdown.excl_vat
        if abs(cdr.total_cost.excl_vat - expected) <= tolerance:
            verdict = "cpo"
        elif emsp_cost is not None and abs(Decimal(emsp_cost) - expected) <= tolerance:
            verdict = "emsp"
        else:
            verdict = "neither"
        why = "; ".join(
            f"{d.what} ({d.vat}) expected {d.expected:.4f} billed {d.billed:.4f}"
            for d in explain_difference(cdr, breakdown, tolerance=tolerance)
        )
        out.append(Repriced(str(key), expected, verdict, why))
    return out
