"""Finding the oddities of real session records, so every alert on real data can be judged against them.

Classes (each with the judgement an alert explained by it receives in docs/evaluation.md):

* ``negative_energy`` - the record's energy is below zero; imported as a meterStop below meterStart
  (judgement: data error - a register cannot run backwards while charging);
* ``end_before_start`` - imported as a StopTransaction stamped before its start (data error);
* ``no_stop`` - no end time or no energy: imported as a transaction that starts and never stops (data error);
* ``zero_energy`` - plugged in, nothing delivered (benign: it explains no alert; an alert on it is false);
* ``energy_beyond_outlet`` - more energy than the connector's rating times the duration can deliver, with a
  5 % tolerance and one time step (60 s: the datasets record whole minutes) added to the duration
  (genuine anomaly: exactly what meter.exceeds_capacity exists for);
* ``connector_overlap`` - two records on one connector overlapping in time by more than a minute (genuine
  anomaly when the rows are distinct sessions; session.overlap should fire);
* ``duplicate_record`` - two rows on one connector with the same start, end and energy (data error: the
  export repeats a row; imported twice, as a back office replaying a record would send it);
* ``user_overlap`` - one user id in two sessions at once on different connectors (genuine anomaly: a card
  used twice at once; token.concurrent_use should fire).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from chargeguard.sources.datasets.records import SessionRecord, StationRecord

CAPACITY_TOLERANCE = 1.05
TIME_STEP_H = 1.0 / 60.0
OVERLAP_TOLERANCE = timedelta(minutes=1)

JUDGEMENT = {
    "negative_energy": "data error",
    "end_before_start": "data error",
    "no_stop": "data error",
    "zero_energy": "benign",
    "energy_beyond_outlet": "genuine anomaly",
    "connector_overlap": "genuine anomaly",
    "user_overlap": "genuine anomaly",
    "duplicate_record": "data error",
}


@dataclass(frozen=True, slots=True)
class Oddity:
    """One odd record (or pair of records); ``transactions`` are the wire transaction ids it concerns."""

    kind: str
    station: str
    connector: int
    transactions: tuple[str, ...]
    start: datetime
    end: datetime
    source: str
    note: str

    def to_json(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "station": self.station,
            "connector": self.connector,
            "transactions": list(self.transactions),
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "source": self.source,
            "note": self.note,
        }


def find_oddities(
    sessions: Sequence[SessionRecord], stations: dict[str, StationRecord], tx_ids: Sequence[str]
) -> list[Oddity]:
    """Every oddity of ``sessions`` (``tx_ids[i]`` is the wire transaction id of ``sessions[i]``)."""
    found: list[Oddity] = []
    for s, tx in zip(sessions, tx_ids, strict=True):
        end = s.end or s.start

        def add(kind: str, note: str, *, s: SessionRecord = s, tx: str = tx, end: datetime = end) -> None:
            found.append(Oddity(kind, s.station, s.connector, (tx,), s.start, end, s.source, note))

        if s.end is None or s.energy_wh is None:
            add("no_stop", "record without end time or energy")
            continue
        if s.energy_wh < 0:
            add("negative_energy", f"energy {s.energy_wh / 1000:.2f} kWh")
        elif s.energy_wh == 0:
            add("zero_energy", "no energy delivered")
        if s.end < s.start:
            add("end_before_start", f"end {(s.start - s.end).total_seconds():.0f} s before start")
            continue
        station = stations.get(s.station)
        kw = station.connector_kw(s.connector) if station else None
        hours = (s.end - s.start).total_seconds() / 3600.0
        possible_wh = kw * 1000.0 * (hours + TIME_STEP_H) * CAPACITY_TOLERANCE if kw is not None else None
        if possible_wh is not None and s.energy_wh > possible_wh:
            average = s.energy_wh / max(hours, TIME_STEP_H) / 1000.0
            add(
                "energy_beyond_outlet",
                f"{s.energy_wh / 1000:.1f} kWh = {average:.1f} kW average on {kw:g} kW",
            )
    found.extend(_overlaps(sessions, tx_ids))
    return found


def _overlaps(sessions: Sequence[SessionRecord], tx_ids: Sequence[str]) -> list[Oddity]:
    found: list[Oddity] = []
    by_connector: dict[tuple[str, int], list[int]] = defaultdict(list)
    by_user: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, s in enumerate(sessions):
        if s.end is None or s.end < s.start:
            continue
        by_connector[(s.station, s.connector)].append(i)
        if s.user is not None:
            by_user[(s.dataset, s.user)].append(i)
    for group, kind in ((by_connector, "connector_overlap"), (by_user, "user_overlap")):
        for indices in group.values():
            indices.sort(key=lambda i: sessions[i].start)
            latest = -1  # index of the session with the latest end so far
            for i in indices:
                s = sessions[i]
                if latest >= 0:
                    prev = sessions[latest]
                    prev_end = prev.end or prev.start
                    other_place = (prev.station, prev.connector) != (s.station, s.connector)
                    if prev_end - s.start > OVERLAP_TOLERANCE and (
                        kind == "connector_overlap" or other_place
                    ):
                        same = (prev.start, prev.end, prev.energy_wh) == (s.start, s.end, s.energy_wh)
                        found.append(
                            Oddity(
                                "duplicate_record" if same and not other_place else kind,
                                s.station,
                                s.connector,
                                (tx_ids[latest], tx_ids[i]),
                                s.start,
                                min(prev_end, s.end or s.start),
                                f"{prev.source} & {s.source}",
                                f"overlap {(prev_end - s.start).total_seconds() / 60:.0f} min"
                                + (f" with {prev.station}/{prev.connector}" if other_place else ""),
                            )
                        )
                if latest < 0 or (s.end or s.start) > (sessions[latest].end or sessions[latest].start):
                    latest = i
    return found
