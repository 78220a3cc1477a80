"""Sampled values -> energy register (Wh) and power (W), for OCPP 1.6 (string values, ``unit``) and 2.0.1
(numeric values, ``unitOfMeasure`` with ``multiplier``).

Only the energy register ``Energy.Active.Import.Register`` (the default measurand) and ``Power.Active.Import`` are
read. Per-phase values are used only when no total is present (power: the sum of the phases; energy: never, a phase
register is not the session's register). Values measured at the EV (location ``EV``) and signed-data blobs are
ignored. Unparseable values are skipped (the schema check reports them).
"""

from __future__ import annotations

import math
from typing import Any

ENERGY = "Energy.Active.Import.Register"
POWER = "Power.Active.Import"
_ENERGY_FACTORS = {"wh": 1.0, "kwh": 1000.0}
_POWER_FACTORS = {"w": 1.0, "kw": 1000.0}


def _number(value: Any) -> float | None:
    kind = type(value)
    if kind is str:  # OCPP 1.6 values are strings: the common case first
        try:
            number = float(value.strip())
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def read_sampled_values(sampled: Any, *, v16: bool) -> tuple[float | None, float | None, str | None]:
    """Return (energy_wh, power_w, context) from one meterValue's sampledValue list."""
    if not isinstance(sampled, list):
        return None, None, None
    energy: float | None = None
    power: float | None = None
    phase_power = 0.0
    phase_power_seen = False
    context: str | None = None
    for item in sampled:
        if not isinstance(item, dict):
            continue
        if item.get("location") == "EV" or item.get("format") == "SignedData":
            continue
        measurand = item.get("measurand", ENERGY)
        if measurand not in (ENERGY, POWER):
            continue
        value = _number(item.get("value"))
        if value is None:
            continue
        if context is None and isinstance(item.get("context"), str):
            context = item["context"]
        if v16:
            unit = item.get("unit")
            multiplier = 0
        else:
            uom = item.get("unitOfMeasure")
            unit = uom.get("unit") if isinstance(uom, dict) else None
            raw_mult = uom.get("multiplier", 0) if isinstance(uom, dict) else 0
            multiplier = raw_mult if isinstance(raw_mult, int) and not isinstance(raw_mult, bool) else 0
        scaled = value * (10.0 ** max(-9, min(9, multiplier))) if multiplier else value  # x * 1.0 == x
        phase = item.get("phase")
        if measurand == ENERGY:
            if phase:
                continue
            factor = _ENERGY_FACTORS.get(str(unit or "Wh").lower())
            if factor is not None:
                energy = scaled * factor
        else:
            factor = _POWER_FACTORS.get(str(unit or "W").lower())
            if factor is None:
                continue
            if phase:
                if (str(phase).startswith("L") and str(phase).count("-") == 0) or str(phase).endswith("-N"):
                    phase_power += scaled * factor
                    phase_power_seen = True
            else:
                power = scaled * factor
    if power is None and phase_power_seen:
        power = phase_power
    return energy, power, context
