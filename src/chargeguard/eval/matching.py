"""Matching alerts to ground-truth incidents.

An alert matches an incident when both hold:

1. **Kind**: the alert's kind is the incident's kind or one of its ``also_acceptable`` kinds.
2. **Place and time**, either of
   a. **shared transaction**: the alert and the incident name a common transaction id, and - when both
      name stations - a common station too (1.6 transaction ids are only unique per central system, and
      simulated or imported networks may reuse small numbers across stations); or
   b. **shared station in the window**: a common station and the alert's ``ts`` inside
      ``[start - grace, end + grace]`` of the incident, bounds included.

The grace (default :data:`DEFAULT_GRACE_S` = 300 s) absorbs detectors that legitimately alert a little before
the labelled start (the evidence frame precedes the label) or after the end (windowed kinds that need the
window to close). Matching is many-to-many: one alert can confirm several incidents and one incident can be
confirmed by several alerts. Candidates come from indexes by station and transaction (linear in practice).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from chargeguard.eval.records import AlertRecord, Incident

DEFAULT_GRACE_S = 300.0


@dataclass(slots=True)
class MatchResult:
    """Which alerts matched which incidents (indices into the inputs)."""

    incident_alerts: list[list[int]] = field(default_factory=list)  # per incident: matching alert indices
    alert_incidents: list[list[int]] = field(default_factory=list)  # per alert: matched incident indices


def matches(alert: AlertRecord, incident: Incident, *, grace: timedelta) -> bool:
    """Whether one alert matches one incident under the rules of the module docstring."""
    if not incident.accepts(alert.kind):
        return False
    shared_station = bool(alert.stations & incident.stations)
    if alert.transactions & incident.transactions and (
        shared_station or not alert.stations or not incident.stations
    ):
        return True
    return shared_station and incident.start - grace <= alert.ts <= incident.end + grace


def match(
    incidents: Sequence[Incident], alerts: Sequence[AlertRecord], *, grace_s: float = DEFAULT_GRACE_S
) -> MatchResult:
    """Match every alert against its candidate incidents (found through station/transaction indexes)."""
    grace = timedelta(seconds=grace_s)
    by_station: dict[str, list[int]] = defaultdict(list)
    by_transaction: dict[str, list[int]] = defaultdict(list)
    stationless: list[int] = []
    for i, incident in enumerate(incidents):
        for station in incident.stations:
            by_station[station].append(i)
        for tx in incident.transactions:
            by_transaction[tx].append(i)
        if not incident.stations:
            stationless.append(i)
    result = MatchResult(incident_alerts=[[] for _ in incidents], alert_incidents=[[] for _ in alerts])
    for a, alert in enumerate(alerts):
        candidates: set[int] = set()
        for station in alert.stations:
            candidates.update(by_station.get(station, ()))
        for tx in alert.transactions:
            candidates.update(by_transaction.get(tx, ()))
        if not alert.stations:
            candidates.update(stationless)
        for i in sorted(candidates):
            if matches(alert, incidents[i], grace=grace):
                result.incident_alerts[i].append(a)
                result.alert_incidents[a].append(i)
    return result
