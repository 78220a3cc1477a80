"""Recompute an OCPI 2.2.1 CDR's cost from its charging periods and the tariffs they reference (Decimal throughout).

How the cost is built (mod_tariffs, mod_cdrs):

1. Each ChargingPeriod runs from its ``start_date_time`` to the next period's (the last to the CDR's
   ``end_date_time``) and names its tariff by ``tariff_id`` (from the CDR's ``tariffs``, else from the tariffs
   given by the caller; a CDR with exactly one tariff may omit the id).
2. Periods are cut into slices wherever a restriction of that tariff may switch (local times of day, local
   midnights, duration thresholds; see ``restrictions.boundaries``); volumes are shared out pro rata of time. A CPO
   should already start a new period there; a CDR whose periods hide a switch is priced as it should have been.
3. For each slice and dimension (ENERGY in kWh, TIME and PARKING_TIME in hours; TIME of a reservation element
   prices RESERVATION_TIME) the first element whose restrictions hold and that has a component of that type
   prices it. FLAT is billed once per tariff (and once more for a reservation element).
4. ``step_size``: the exact volumes are billed per element; when a dimension's run ends (end of session, or a
   slice with volume whose element has no component of that type) its total over the run is rounded up to the
   ``step_size`` of the last component used, and the extra is billed at that component's price.
5. VAT per component (``vat`` omitted: no VAT applicable); ``min_price`` / ``max_price`` bound each tariff's total,
   excl. and incl. VAT separately.

The spec contradicts itself on one point: the ``step_size`` examples say the extra TIME billed by rounding
covers the parking that follows (``absorb_parking``), while the Complex Tariff example bills both rounded up.
``TariffOptions.absorb_parking`` chooses; the default (False) follows the Complex Tariff example.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_CEILING, Decimal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from chargeguard.errors import InputError
from chargeguard.sources.ocpi.models import Cdr, ChargingPeriod, PriceComponent, Tariff, utc
from chargeguard.tariffs.restrictions import SliceState, boundaries, element_applies

_UNIT = {"ENERGY": Decimal(1000), "TIME": Decimal(3600), "PARKING_TIME": Decimal(3600)}  # Wh / s per unit
_HUNDRED = Decimal(100)
_ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class TariffOptions:
    absorb_parking: bool = False
    reservation_expired: bool = False


@dataclass(frozen=True, slots=True)
class Line:
    """One billed piece: ``volume`` in kWh (ENERGY), hours (TIME, PARKING_TIME) or 1 (FLAT)."""

    period: int
    start: datetime
    tariff_id: str
    element: int
    dimension: str
    volume: Decimal
    price: Decimal
    vat: Decimal | None
    excl_vat: Decimal
    incl_vat: Decimal
    note: str = ""


@dataclass(frozen=True, slots=True)
class CostBreakdown:
    currency: str
    lines: tuple[Line, ...]
    excl_vat: Decimal
    incl_vat: Decimal
    by_dimension: Mapping[str, tuple[Decimal, Decimal]]
    bounds_applied: tuple[str, ...] = ()


@dataclass(slots=True)
class _Slice:
    period: int
    start: datetime
    tariff: Tariff
    volumes: dict[str, Decimal]
    state: SliceState


@dataclass(slots=True)
class _Run:
    exact: Decimal = _ZERO
    component: PriceComponent | None = None
    last: Line | None = None
    extras: list[Line] = field(default_factory=list)


def _zone(name: str | ZoneInfo) -> ZoneInfo:
    if isinstance(name, ZoneInfo):
        return name
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InputError(f"unknown time zone {name!r}") from exc


def _resolve(cdr: Cdr, period: ChargingPeriod, tariffs: Mapping[str, Tariff]) -> Tariff:
    known = {t.id: t for t in cdr.tariffs}
    if period.tariff_id is not None:
        found = known.get(period.tariff_id) or tariffs.get(period.tariff_id)
        if found is None:
            raise InputError(f"CDR {cdr.id}: charging period names unknown tariff {period.tariff_id!r}")
        return _same_currency(cdr, found)
    candidates = list(known.values()) or list(tariffs.values())
    if len(candidates) != 1:
        raise InputError(f"CDR {cdr.id}: charging period has no tariff_id and the tariff is ambiguous")
    return _same_currency(cdr, candidates[0])


def _same_currency(cdr: Cdr, tariff: Tariff) -> Tariff:
    if tariff.currency != cdr.currency:
        raise InputError(
            f"CDR {cdr.id}: tariff {tariff.id} is in {tariff.currency}, the CDR in {cdr.currency}"
        )
    return tariff


def _dims(period: ChargingPeriod) -> dict[str, Decimal]:
    out: dict[str, Decimal] = {}
    for d in period.dimensions:
        out[d.type] = out.get(d.type, _ZERO) + d.volume
    return out


def _slices(cdr: Cdr, zone: ZoneInfo, tariffs: Mapping[str, Tariff], options: TariffOptions) -> list[_Slice]:
    periods = sorted(enumerate(cdr.charging_periods), key=lambda p: utc(p[1].start_date_time))
    session_start = utc(cdr.start_date_time)
    cdr_end = utc(cdr.end_date_time)
    out: list[_Slice] = []
    energy = _ZERO
    for n, (index, period) in enumerate(periods):
        tariff = _resolve(cdr, period, tariffs)
        start = utc(period.start_date_time)
        end = utc(periods[n + 1][1].start_date_time) if n + 1 < len(periods) else max(cdr_end, start)
        dims = _dims(period)
        cuts = [start, *boundaries(tariff, start, end, zone, session_start), end]
        total_s = Decimal(str((end - start).total_seconds()))
        for a, b in itertools.pairwise(cuts):
            share = Decimal(str((b - a).total_seconds())) / total_s if total_s > 0 else Decimal(1)
            volumes = {
                k: dims.get(k, _ZERO) * share for k in ("ENERGY", "TIME", "PARKING_TIME", "RESERVATION_TIME")
            }
            current = dims.get("CURRENT")
            power = dims.get("POWER")
            reservation = volumes["RESERVATION_TIME"] > 0
            state = SliceState(
                start=a,
                zone=zone,
                energy_before_kwh=energy,
                duration_before_s=Decimal(str((a - session_start).total_seconds())),
                reservation=reservation,
                expired_reservation=options.reservation_expired,
                min_current=dims.get(
                    "MIN_CURRENT", current if current is not None else dims.get("MAX_CURRENT")
                ),
                max_current=dims.get(
                    "MAX_CURRENT", current if current is not None else dims.get("MIN_CURRENT")
                ),
                min_power=dims.get("MIN_POWER", power if power is not None else dims.get("MAX_POWER")),
                max_power=dims.get("MAX_POWER", power if power is not None else dims.get("MIN_POWER")),
            )
            out.append(_Slice(index, a, tariff, volumes, state))
            energy += volumes["ENERGY"]
            if total_s <= 0:
                break
    return out


def _pick(tariff: Tariff, state: SliceState, kind: str) -> tuple[int, PriceComponent] | None:
    for i, element in enumerate(tariff.elements):
        if not element_applies(element, state):
            continue
        for component in element.price_components:
            if component.type == kind:
                return i, component
    return None


def _line(
    s: _Slice, element: int, c: PriceComponent, dimension: str, volume: Decimal, note: str = ""
) -> Line:
    excl = volume * c.price
    incl = excl * (1 + c.vat / _HUNDRED) if c.vat is not None else excl
    return Line(s.period, s.start, s.tariff.id, element, dimension, volume, c.price, c.vat, excl, incl, note)


def _close(run: _Run, dimension: str, lines: list[Line]) -> Decimal:
    """Round the run's total up to the last component's step_size; returns the extra units (Wh or s) billed."""
    if run.component is None or run.last is None or run.component.step_size <= 0:
        return _ZERO
    unit = _UNIT[dimension]
    step = Decimal(run.component.step_size)
    exact_units = run.exact * unit
    target = (exact_units / step).to_integral_value(rounding=ROUND_CEILING) * step
    extra = target - exact_units
    if extra > 0:
        last = run.last
        volume = extra / unit
        excl = volume * last.price
        incl = excl * (1 + last.vat / _HUNDRED) if last.vat is not None else excl
        lines.append(
            Line(
                last.period,
                last.start,
                last.tariff_id,
                last.element,
                dimension,
                volume,
                last.price,
                last.vat,
                excl,
                incl,
                f"step_size {run.component.step_size}",
            )
        )
    return extra


def _bill_dimension(slices: list[_Slice], kind: str, lines: list[Line], absorb_s: Decimal = _ZERO) -> Decimal:
    """Bill one dimension over all slices; returns the extra seconds/Wh added by the final step_size rounding."""
    run = _Run()
    extra = _ZERO
    for s in slices:
        volume_key = "RESERVATION_TIME" if (kind == "TIME" and s.state.reservation) else kind
        volume = s.volumes[volume_key]
        if volume <= 0:
            continue
        if absorb_s > 0:
            taken = min(absorb_s / _UNIT[kind], volume)
            absorb_s -= taken * _UNIT[kind]
            volume -= taken
            if volume <= 0:
                continue
        picked = _pick(s.tariff, s.state, kind)
        if picked is None:  # free from here on: the previous run is rounded with its own step_size
            _close(run, kind, lines)
            run = _Run()
            continue
        element, component = picked
        line = _line(s, element, component, kind if volume_key == kind else "RESERVATION_TIME", volume)
        lines.append(line)
        run.exact += volume
        run.component = component
        run.last = line
    extra = _close(run, kind, lines)
    return extra


def compute_cost(
    cdr: Cdr,
    *,
    time_zone: str | ZoneInfo = "UTC",
    tariffs: Mapping[str, Tariff] | None = None,
    options: TariffOptions | None = None,
) -> CostBreakdown:
    """The cost of ``cdr`` by its tariffs, with every billed line (see the module docstring for the rules)."""
    options = options or TariffOptions()
    zone = _zone(time_zone)
    slices = _slices(cdr, zone, tariffs or {}, options)
    lines: list[Line] = []
    flat_done: set[tuple[str, bool]] = set()
    for s in slices:
        key = (s.tariff.id, s.state.reservation)
        if key in flat_done:
            continue
        picked = _pick(s.tariff, s.state, "FLAT")
        if picked is not None:
            lines.append(_line(s, picked[0], picked[1], "FLAT", Decimal(1)))
            flat_done.add(key)
    _bill_dimension(slices, "ENERGY", lines)
    time_extra = _bill_dimension(slices, "TIME", lines)
    _bill_dimension(slices, "PARKING_TIME", lines, time_extra if options.absorb_parking else _ZERO)
    return _total(cdr.currency, lines, {s.tariff.id: s.tariff for s in slices})


def _total(currency: str, lines: list[Line], tariffs: Mapping[str, Tariff]) -> CostBreakdown:
    per_tariff: dict[str, list[Decimal]] = defaultdict(lambda: [_ZERO, _ZERO])
    by_dim: dict[str, list[Decimal]] = defaultdict(lambda: [_ZERO, _ZERO])
    for line in lines:
        per_tariff[line.tariff_id][0] += line.excl_vat
        per_tariff[line.tariff_id][1] += line.incl_vat
        by_dim[line.dimension][0] += line.excl_vat
        by_dim[line.dimension][1] += line.incl_vat
    applied: list[str] = []
    excl_total = _ZERO
    incl_total = _ZERO
    for tariff_id, (excl, incl) in per_tariff.items():
        tariff = tariffs[tariff_id]
        if tariff.min_price is not None:
            if excl < tariff.min_price.excl_vat:
                excl = tariff.min_price.excl_vat
                applied.append(f"{tariff_id}: min_price excl_vat")
            if tariff.min_price.incl_vat is not None and incl < tariff.min_price.incl_vat:
                incl = tariff.min_price.incl_vat
                applied.append(f"{tariff_id}: min_price incl_vat")
        if tariff.max_price is not None:
            if excl > tariff.max_price.excl_vat:
                excl = tariff.max_price.excl_vat
                applied.append(f"{tariff_id}: max_price excl_vat")
            if tariff.max_price.incl_vat is not None and incl > tariff.max_price.incl_vat:
                incl = tariff.max_price.incl_vat
                applied.append(f"{tariff_id}: max_price incl_vat")
        excl_total += excl
        incl_total += incl
    return CostBreakdown(
        currency=currency,
        lines=tuple(lines),
        excl_vat=excl_total,
        incl_vat=incl_total,
        by_dimension={k: (v[0], v[1]) for k, v in by_dim.items()},
        bounds_applied=tuple(applied),
    )
