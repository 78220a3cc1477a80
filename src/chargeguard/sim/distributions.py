"""Sampling from the distributions fitted on real public datasets (fitted.json, see scripts/fit_distributions.py)."""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass
from functools import cache
from importlib import resources
from statistics import NormalDist
from typing import Any

_NORMAL = NormalDist()


@dataclass(frozen=True, slots=True)
class Quantiles:
    """A piecewise-linear inverse CDF through fitted quantiles (flat tails beyond the outermost points)."""

    probabilities: tuple[float, ...]
    values: tuple[float, ...]

    def at(self, u: float) -> float:
        probs, values = self.probabilities, self.values
        if u <= probs[0]:
            return values[0]
        if u >= probs[-1]:
            return values[-1]
        lo, hi = 0, len(probs) - 1
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if probs[mid] <= u:
                lo = mid
            else:
                hi = mid
        span = probs[hi] - probs[lo]
        return values[lo] + (values[hi] - values[lo]) * (u - probs[lo]) / span


@dataclass(frozen=True, slots=True)
class SessionModel:
    """Energy, duration and arrival-hour model of one connector class (ac7, ac22, dc50, dc150, home)."""

    name: str
    energy_kwh: Quantiles
    duration_min: Quantiles
    rho: float
    zero_energy_share: float
    hours_weekday: tuple[float, ...]
    hours_weekend: tuple[float, ...]

    def draw(self, rng: random.Random) -> tuple[float, float]:
        """(energy kWh, duration minutes) from a Gaussian copula with the fitted rank correlation."""
        z1 = rng.gauss(0.0, 1.0)
        z2 = self.rho * z1 + math.sqrt(max(0.0, 1.0 - self.rho * self.rho)) * rng.gauss(0.0, 1.0)
        return self.energy_kwh.at(_NORMAL.cdf(z1)), max(1.0, self.duration_min.at(_NORMAL.cdf(z2)))

    def hour(self, rng: random.Random, weekend: bool) -> int:
        weights = self.hours_weekend if weekend else self.hours_weekday
        return rng.choices(range(24), weights=weights)[0]


@dataclass(frozen=True, slots=True)
class Habits:
    """Driver habits fitted on Dundee user ids: activity, loyalty to a top station, distinct stations."""

    sessions_per_day: Quantiles
    top_station_share: Quantiles
    distinct_stations: Quantiles


@dataclass(frozen=True, slots=True)
class Fitted:
    classes: dict[str, SessionModel]
    habits: Habits
    sources: dict[str, str]


def _quantiles(probs: tuple[float, ...], values: list[float]) -> Quantiles:
    return Quantiles(probs, tuple(float(v) for v in values))


@cache
def fitted() -> Fitted:
    """The committed fitted parameters (loaded once)."""
    raw: dict[str, Any] = json.loads(
        resources.files("chargeguard.sim").joinpath("fitted.json").read_text("utf-8")
    )
    probs = tuple(float(p) for p in raw["probabilities"])
    classes = {
        name: SessionModel(
            name=name,
            energy_kwh=_quantiles(probs, c["energy_kwh_q"]),
            duration_min=_quantiles(probs, c["duration_min_q"]),
            rho=2.0 * math.sin(math.pi * float(c["spearman_energy_duration"]) / 6.0),  # Spearman -> Pearson
            zero_energy_share=float(c["zero_energy_share"]),
            hours_weekday=tuple(float(v) + 1e-4 for v in c["arrival_hour_weekday"]),
            hours_weekend=tuple(float(v) + 1e-4 for v in c["arrival_hour_weekend"]),
        )
        for name, c in raw["classes"].items()
    }
    h = raw["habits"]
    habits = Habits(
        sessions_per_day=_quantiles(probs, h["sessions_per_day_q"]),
        top_station_share=_quantiles(probs, h["top_station_share_q"]),
        distinct_stations=_quantiles(probs, h["distinct_stations_q"]),
    )
    return Fitted(classes=classes, habits=habits, sources=dict(raw["sources"]))
