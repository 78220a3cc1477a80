"""Per-kind scores from a match: recall, precision, F1, detection delay and false alerts per 1,000 sessions.

Definitions (also in docs/evaluation.md):

* incidents of kind K: truth lines with ``kind == K`` (subtle incidents are scored in a separate table);
* recall(K) = incidents of K matched by at least one alert / incidents of K;
* alerts of kind K: alert lines with ``kind == K``; precision(K) = alerts of K matched to some incident
  (of any kind that accepts K, subtle or not) / alerts of K; F1 the harmonic mean (None when undefined);
* delay of a matched incident: earliest matching alert ``ts`` minus ``detectable_at`` in event time, in
  seconds; negative delays (an alert before the incident was labelled detectable) are kept as they are; the
  median is the usual one, p95 uses the nearest-rank method, over the matched incidents of the kind;
* false alerts per 1,000 sessions = unmatched alerts / sessions x 1000 (sessions from the capture or given).

Undefined ratios (0/0) are ``None``, shown as "-", never silently 0 or 1.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from chargeguard.eval.matching import DEFAULT_GRACE_S, MatchResult, match
from chargeguard.eval.records import AlertRecord, Incident


@dataclass(frozen=True, slots=True)
class KindScore:
    kind: str
    incidents: int
    detected: int
    alerts: int
    true_alerts: int
    recall: float | None
    precision: float | None
    f1: float | None
    delay_median_s: float | None
    delay_p95_s: float | None
    false_alerts: int
    false_per_1000_sessions: float | None


@dataclass(frozen=True, slots=True)
class Evaluation:
    """Everything ``chargeguard eval`` reports."""

    grace_s: float
    sessions: int | None
    kinds: tuple[KindScore, ...]
    subtle: tuple[KindScore, ...]
    overall: KindScore
    missed: tuple[dict[str, Any], ...] = field(default_factory=tuple)
    false_alerts: tuple[dict[str, Any], ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        return {
            "grace_s": self.grace_s,
            "sessions": self.sessions,
            "kinds": [asdict(k) for k in self.kinds],
            "subtle": [asdict(k) for k in self.subtle],
            "overall": asdict(self.overall),
            "missed_incidents": list(self.missed),
            "false_alerts": list(self.false_alerts),
        }


def ratio(num: int, den: int) -> float | None:
    return None if den == 0 else num / den


def f1_score(precision: float | None, recall: float | None) -> float | None:
    if precision is None or recall is None:
        return None
    if precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


def nearest_rank(values: Sequence[float], q: float) -> float | None:
    """The q-quantile (0 < q <= 1), nearest rank: the smallest value with at least q of the data <= it."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


def median(values: Sequence[float]) -> float | None:
    """The usual median (mean of the two middle values for an even count)."""
    if not values:
        return None
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def _score(
    kind: str,
    incidents: int,
    detected: int,
    alerts: int,
    true_alerts: int,
    delays: Sequence[float],
    sessions: int | None,
) -> KindScore:
    recall = ratio(detected, incidents)
    precision = ratio(true_alerts, alerts)
    false = alerts - true_alerts
    return KindScore(
        kind=kind,
        incidents=incidents,
        detected=detected,
        alerts=alerts,
        true_alerts=true_alerts,
        recall=recall,
        precision=precision,
        f1=f1_score(precision, recall),
        delay_median_s=median(delays),
        delay_p95_s=nearest_rank(delays, 0.95),
        false_alerts=false,
        false_per_1000_sessions=None if not sessions else false * 1000.0 / sessions,
    )


def evaluate(
    incidents: Sequence[Incident],
    alerts: Sequence[AlertRecord],
    *,
    sessions: int | None = None,
    grace_s: float = DEFAULT_GRACE_S,
    result: MatchResult | None = None,
) -> Evaluation:
    """Score ``alerts`` against ``incidents``; see the module docstring for every definition."""
    result = result if result is not None else match(incidents, alerts, grace_s=grace_s)
    inc_count: dict[tuple[bool, str], int] = defaultdict(int)
    detected: dict[tuple[bool, str], int] = defaultdict(int)
    delays: dict[tuple[bool, str], list[float]] = defaultdict(list)
    missed: list[dict[str, Any]] = []
    for i, incident in enumerate(incidents):
        key = (incident.subtle, incident.kind)
        inc_count[key] += 1
        hits = result.incident_alerts[i]
        if hits:
            detected[key] += 1
            first = min(alerts[a].ts for a in hits)
            delays[key].append((first - incident.detectable_at).total_seconds())
        elif not incident.subtle:
            missed.append(
                {
                    "line": incident.line,
                    "kind": incident.kind,
                    "stations": sorted(incident.stations),
                    "start": incident.start.isoformat(),
                    "note": incident.note,
                }
            )
    alert_count: dict[str, int] = defaultdict(int)
    true_count: dict[str, int] = defaultdict(int)
    false_alerts: list[dict[str, Any]] = []
    for a, alert in enumerate(alerts):
        alert_count[alert.kind] += 1
        if result.alert_incidents[a]:
            true_count[alert.kind] += 1
        else:
            false_alerts.append(
                {
                    "line": alert.line,
                    "id": alert.id,
                    "kind": alert.kind,
                    "ts": alert.ts.isoformat(),
                    "stations": sorted(alert.stations),
                    "transactions": sorted(alert.transactions),
                }
            )
    subtle_kinds = sorted(k for s, k in inc_count if s)
    # rule table: every kind with a non-subtle incident or an alert (alerts of subtle-only kinds too)
    rule_kinds = sorted({k for s, k in inc_count if not s} | set(alert_count))
    rows = tuple(
        _score(
            k,
            inc_count[(False, k)],
            detected[(False, k)],
            alert_count[k],
            true_count[k],
            delays[(False, k)],
            sessions,
        )
        for k in rule_kinds
    )
    # subtle rows carry recall and delay only: their alerts are counted in the rule table above
    subtle_rows = tuple(
        _score(k, inc_count[(True, k)], detected[(True, k)], 0, 0, delays[(True, k)], None)
        for k in subtle_kinds
    )
    all_delays = [d for (s, _k), ds in delays.items() if not s for d in ds]
    overall = _score(
        "all",
        sum(r.incidents for r in rows),
        sum(r.detected for r in rows),
        sum(r.alerts for r in rows),
        sum(r.true_alerts for r in rows),
        all_delays,
        sessions,
    )
    return Evaluation(
        grace_s=grace_s,
        sessions=sessions,
        kinds=rows,
        subtle=subtle_rows,
        overall=overall,
        missed=tuple(missed),
        false_alerts=tuple(false_alerts),
    )
