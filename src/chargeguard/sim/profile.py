"""Charging power profiles: ramp up, plateau, taper - the energy register and power of a session over time."""

from __future__ import annotations

from dataclasses import dataclass

DC_THRESHOLD_W = 40_000.0
DEFAULT_MAX_POWER_W = 7_400.0


@dataclass(frozen=True, slots=True)
class PowerProfile:
    """Piecewise-linear power over one session; times are seconds after the charging start.

    Power ramps from 0 to ``power_w`` over ``ramp_s``, stays there, and tapers linearly to 0 over the last
    ``taper_s`` of ``active_s``; after ``active_s`` the car is full (or unplugged) and draws nothing.
    ``sign`` is -1 for the odd plans whose energy is negative (the register then runs backwards, as such a
    plan implies).
    """

    active_s: float
    ramp_s: float
    taper_s: float
    power_w: float
    energy_wh: float
    sign: float = 1.0

    def energy_at(self, rel_s: float) -> float:
        """Energy delivered (Wh, signed) ``rel_s`` seconds after the start."""
        if rel_s <= 0.0 or self.active_s <= 0.0:
            return 0.0
        if rel_s >= self.active_s:
            return self.sign * self.energy_wh
        p, r, d, a = self.power_w, self.ramp_s, self.taper_s, self.active_s
        if rel_s < r:
            joules = p * rel_s * rel_s / (2.0 * r)
        elif rel_s < a - d or d <= 0.0:
            joules = p * r / 2.0 + p * (rel_s - r)
        else:
            y = rel_s - (a - d)
            joules = p * r / 2.0 + p * (a - d - r) + p * (y - y * y / (2.0 * d))
        return self.sign * min(self.energy_wh, joules / 3600.0)

    def power_at(self, rel_s: float) -> float:
        """Instantaneous power (W, signed) ``rel_s`` seconds after the start."""
        if rel_s <= 0.0 or rel_s >= self.active_s:
            return 0.0
        p, r, d, a = self.power_w, self.ramp_s, self.taper_s, self.active_s
        if rel_s < r:
            value = p * rel_s / r
        elif rel_s < a - d or d <= 0.0:
            value = p
        else:
            value = p * (1.0 - (rel_s - (a - d)) / d)
        return self.sign * value


def build_profile(
    energy_wh: float, duration_s: float, max_power_w: float | None, acceptance: float = 0.92
) -> PowerProfile:
    """The profile delivering ``energy_wh`` within ``duration_s`` at about ``acceptance`` x connector power.

    When the energy cannot fit at that power (an odd or fraudulent plan), the power is raised to what the
    energy implies - possibly beyond the connector's rating, because that is the traffic such a session
    produces.
    """
    sign = -1.0 if energy_wh < 0 else 1.0
    energy = abs(energy_wh)
    if energy == 0.0 or duration_s <= 0.0:
        return PowerProfile(active_s=0.0, ramp_s=0.0, taper_s=0.0, power_w=0.0, energy_wh=energy, sign=sign)
    max_power = max_power_w if max_power_w and max_power_w > 0 else DEFAULT_MAX_POWER_W
    taper_frac = 0.3 if max_power >= DC_THRESHOLD_W else 0.1
    power = max_power * acceptance
    joules = energy * 3600.0
    first = joules / power / (1.0 - taper_frac / 2.0)
    ramp = min(60.0, 0.1 * first)
    active = (joules / power + ramp / 2.0) / (1.0 - taper_frac / 2.0)
    if active > duration_s:
        active = duration_s
        ramp = min(60.0, 0.1 * active)
        power = joules / (active * (1.0 - taper_frac / 2.0) - ramp / 2.0)
    return PowerProfile(
        active_s=active, ramp_s=ramp, taper_s=taper_frac * active, power_w=power, energy_wh=energy, sign=sign
    )
