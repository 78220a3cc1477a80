"""TariffRestrictions: whether a TariffElement applies to a slice of a charging period, and where slices end.

Restrictions are evaluated in the Location's local time zone (mod_tariffs TariffRestrictions): times of day and
dates are local, so the instants where an element switches on or off are computed per local day through zoneinfo,
which makes daylight-saving change days (23- and 25-hour days) come out right. A restriction that cannot be
evaluated (current or power restriction without the matching CDR dimension) does not match, so the element after
it (usually a fallback without restrictions) applies.

Comparisons follow the spec texts: ``start_time`` / ``start_date`` / ``min_*`` inclusive, ``end_time`` /
``end_date`` / ``max_duration`` exclusive; ``max_kwh`` / ``max_current`` / ``max_power`` exclusive ("valid until").
``start_time`` later than ``end_time`` spans midnight.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from chargeguard.sources.ocpi.models import Tariff, TariffElement, TariffRestrictions

_DAYS = ("MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY")


@dataclass(frozen=True, slots=True)
class SliceState:
    """What the restrictions of an element are checked against, at the start of a slice."""

    start: datetime  # aware UTC
    zone: ZoneInfo
    energy_before_kwh: Decimal
    duration_before_s: Decimal
    reservation: bool
    expired_reservation: bool
    min_current: Decimal | None
    max_current: Decimal | None
    min_power: Decimal | None
    max_power: Decimal | None


def _hhmm(text: str) -> time:
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


def _time_ok(r: TariffRestrictions, local: datetime) -> bool:
    if r.start_time is None and r.end_time is None:
        return True
    t = local.time().replace(tzinfo=None)
    start = _hhmm(r.start_time) if r.start_time else None
    end = _hhmm(r.end_time) if r.end_time else None
    if start is not None and end is not None:
        if start <= end:
            return start <= t < end
        return t >= start or t < end  # across midnight
    if start is not None:
        return t >= start
    assert end is not None
    return t < end


def _date_ok(r: TariffRestrictions, local: datetime) -> bool:
    d = local.date()
    if r.start_date is not None and d < date.fromisoformat(r.start_date):
        return False
    return not (r.end_date is not None and d >= date.fromisoformat(r.end_date))


def element_applies(element: TariffElement, state: SliceState) -> bool:
    """True when every restriction of ``element`` holds for the slice described by ``state``."""
    r = element.restrictions
    if r is None:
        return not state.reservation
    if r.reservation is not None:
        if not state.reservation:
            return False
        if r.reservation == "RESERVATION_EXPIRES" and not state.expired_reservation:
            return False
    elif state.reservation:
        return False
    local = state.start.astimezone(state.zone)
    if not _time_ok(r, local) or not _date_ok(r, local):
        return False
    if r.day_of_week and _DAYS[local.weekday()] not in r.day_of_week:
        return False
    kwh = state.energy_before_kwh
    if r.min_kwh is not None and kwh < r.min_kwh:
        return False
    if r.max_kwh is not None and kwh >= r.max_kwh:
        return False
    if r.min_duration is not None and state.duration_before_s < r.min_duration:
        return False
    if r.max_duration is not None and state.duration_before_s >= r.max_duration:
        return False
    if r.min_current is not None and (state.min_current is None or state.min_current < r.min_current):
        return False
    if r.max_current is not None and (state.max_current is None or state.max_current >= r.max_current):
        return False
    if r.min_power is not None and (state.min_power is None or state.min_power < r.min_power):
        return False
    return not (r.max_power is not None and (state.max_power is None or state.max_power >= r.max_power))


def boundaries(
    tariff: Tariff, start: datetime, end: datetime, zone: ZoneInfo, session_start: datetime
) -> list[datetime]:
    """The instants strictly inside (start, end) where some element of ``tariff`` may switch on or off.

    Local times of day named by restrictions and local midnights (dates, days of week), computed per local day
    with zoneinfo; plus the session-duration thresholds. Sorted, without duplicates, aware UTC.
    """
    clock: set[time] = set()
    durations: set[int] = set()
    for element in tariff.elements:
        r = element.restrictions
        if r is None:
            continue
        for text in (r.start_time, r.end_time):
            if text is not None:
                clock.add(_hhmm(text))
        if r.start_date or r.end_date or r.day_of_week:
            clock.add(time(0, 0))
        for seconds in (r.min_duration, r.max_duration):
            if seconds is not None:
                durations.add(seconds)
    found: set[datetime] = set()
    if clock:
        first = start.astimezone(zone).date() - timedelta(days=1)
        last = end.astimezone(zone).date() + timedelta(days=1)
        day = first
        while day <= last:
            for t in clock:
                # a local time inside a spring-forward gap is read with the offset before the change (fold=0)
                local = datetime.combine(day, t, tzinfo=zone)
                instant = local.astimezone(start.tzinfo)
                if start < instant < end:
                    found.add(instant)
            day += timedelta(days=1)
    for seconds in durations:
        instant = session_start + timedelta(seconds=seconds)
        if start < instant < end:
            found.add(instant)
    return sorted(found)
