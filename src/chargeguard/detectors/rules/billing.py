"""The billing and roaming (OCPI) rules: cdr.duplicate, cdr.orphan, cdr.energy_mismatch, session.unbilled.

They consume the OCPI events of ``chargeguard.sources.ocpi.events`` next to OCPP transactions. The price and
party rules live in ``billing_price``, the OCPI half of token.unauthorized_charging in ``billing_tokens``;
``DETECTORS`` below lists all seven for the registry.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar

from chargeguard.detectors.base import Detector, DetectorContext, DetectorInfo
from chargeguard.detectors.rules.billing_book import (
    CdrView,
    DueQueue,
    Metered,
    MeteredBook,
    metered_from,
    overlaps,
    view,
)
from chargeguard.detectors.rules.billing_price import CdrPartyMismatch, CdrPriceMismatch
from chargeguard.detectors.rules.billing_tokens import OcpiUnauthorizedCharging
from chargeguard.detectors.state import BoundedState
from chargeguard.events import Event, Finding, Severity, TransactionEnded
from chargeguard.sources.ocpi.events import CdrReceived, SessionReported
from chargeguard.sources.ocpi.normalize import object_key

_OCPI = "OCPI 2.2.1 mod_cdrs"


@dataclass(frozen=True, slots=True)
class DuplicateConfig:
    """start_window_s: starts this close count as the same charging; energy_abs_wh / energy_rel: energy this close;
    min_overlap: the two CDRs' start..end windows must overlap by this share of the shorter one."""

    start_window_s: float = 300.0
    energy_abs_wh: float = 100.0
    energy_rel: float = 0.02
    min_overlap: float = 0.5


@dataclass(slots=True)
class _Billed:
    key: str
    start: datetime
    end: datetime
    energy_wh: float
    credited: bool = False


def _overlap_share(a_start: datetime, a_end: datetime, b_start: datetime, b_end: datetime) -> float:
    """How much of the shorter window the two windows share (0..1); windows of no length share all or nothing."""
    shared = (min(a_end, b_end) - max(a_start, b_start)).total_seconds()
    shorter = min((a_end - a_start).total_seconds(), (b_end - b_start).total_seconds())
    if shorter <= 0:
        return 1.0 if shared >= 0 else 0.0
    return max(0.0, shared) / shorter


class CdrDuplicate(Detector[DuplicateConfig]):
    """The same charging billed again under another CDR id.

    Catches: two CDRs for one token on one station (EVSE) whose starts lie within ``start_window_s``, whose
    start..end windows overlap by at least ``min_overlap`` of the shorter one, and whose energies agree within
    tolerance, under different ``country_code*party_id/id`` keys (CDR ids are unique only per party, so the same
    id from two parties is two CDRs, and the same key sent twice is one CDR re-sent).

    Why it matters: a CPO (or a hub re-routing CDRs) billing one session twice - the second bill looks perfectly
    valid on its own.

    False positives: credit CDRs (``credit=true`` with ``credit_reference_id``) and the corrected CDR re-issued
    after a credit are legitimate and never fire - provided the credit CDR arrives before the re-issue (the order
    mod_cdrs prescribes); a re-issue pushed before its credit fires. One charging after the other is not the same
    charging: on the Dundee data with one honest CDR per session, 67 of 66,758 CDRs fired without the overlap
    condition (drivers re-plugging within a minute or two, mostly 0 kWh) and none with it.

    References: OCPI 2.2.1 mod_cdrs (CDR object: id unique per party; credit, credit_reference_id).
    """

    info: ClassVar[DetectorInfo] = DetectorInfo(
        name="cdr-duplicate",
        kinds=("cdr.duplicate",),
        title="The same charging billed twice under different CDR ids",
        severity=Severity.HIGH,
        references=(f"{_OCPI} CDR object", f"{_OCPI} credit CDRs"),
    )
    consumes: ClassVar[tuple[type[Any], ...]] = (CdrReceived,)
    Config: ClassVar[type[Any]] = DuplicateConfig

    def __init__(self, config: DuplicateConfig, context: DetectorContext) -> None:
        super().__init__(config, context)
        limits = context.limits
        self._seen: BoundedState[tuple[str, str], list[_Billed]] = BoundedState(limits.max_keys, limits.ttl_s)
        self._credited: BoundedState[str, bool] = BoundedState(limits.max_keys, limits.ttl_s)

    def state_size(self) -> int:
        return len(self._seen) + len(self._credited)

    def process(self, event: Event) -> Iterable[Finding]:
        if not isinstance(event, CdrReceived):
            return ()
        cdr = view(event)
        return () if cdr is None else self._check(cdr)

    def _check(self, event: CdrView) -> list[Finding]:
        c = self.config
        bucket = self._seen.setdefault((event.token_ref, event.station), list, event.ts)
        if event.credit:
            if event.credit_reference_id:
                original = object_key(event.party, event.credit_reference_id)
                self._credited.put(original, True, event.ts)
                for billed in bucket:
                    if billed.key == original:
                        billed.credited = True
            return []
        if any(b.key == event.key for b in bucket):
            return []  # the same CDR pushed again
        out: list[Finding] = []
        for b in bucket:
            close_start = abs((b.start - event.start).total_seconds()) <= c.start_window_s
            if close_start and _overlap_share(b.start, b.end, event.start, event.end) < c.min_overlap:
                continue  # one charging after the other, not the same one again
            tolerance = max(c.energy_abs_wh, c.energy_rel * max(b.energy_wh, event.energy_wh))
            if not close_start or abs(b.energy_wh - event.energy_wh) > tolerance:
                continue
            if b.credited or self._credited.get(b.key):
                continue  # re-issue after a credit
            out.append(
                self.finding(
                    "cdr.duplicate",
                    ts=event.ts,
                    incident=event.key,
                    summary=f"CDR {event.key} bills the charging already billed as {b.key}",
                    station=event.station,
                    transactions=(b.key, event.key),
                    token_ref=event.token_ref,
                    evidence={
                        "first": b.key,
                        "again": event.key,
                        "start_gap_s": round(abs((b.start - event.start).total_seconds()), 1),
                        "energy_wh": [round(b.energy_wh, 1), round(event.energy_wh, 1)],
                        "cost_excl_vat": str(event.cost_excl_vat),
                        "currency": event.currency,
                    },
                )
            )
            break
        bucket.append(_Billed(event.key, event.start, event.end, event.energy_wh))
        if len(bucket) > 64:
            del bucket[0]
        return out


@dataclass(frozen=True, slots=True)
class MeteredMatchConfig:
    """grace_s: how long after a CDR arrives its session may still be reported; slack_s: clock slack on windows;
    energy_abs_wh / energy_rel: tolerated energy difference (cdr.energy_mismatch)."""

    grace_s: float = 3600.0
    slack_s: float = 600.0
    energy_abs_wh: float = 250.0
    energy_rel: float = 0.03


class _CdrVsMetered(Detector[MeteredMatchConfig]):
    """Holds CDRs until ``grace_s`` of event time has passed, then judges them against the metered sessions."""

    consumes: ClassVar[tuple[type[Any], ...]] = (CdrReceived, TransactionEnded, SessionReported)
    Config: ClassVar[type[Any]] = MeteredMatchConfig

    def __init__(self, config: MeteredMatchConfig, context: DetectorContext) -> None:
        super().__init__(config, context)
        self._book = MeteredBook(context)
        self._queue = DueQueue(context.limits.max_keys)

    def state_size(self) -> int:
        return len(self._book) + len(self._queue)

    def process(self, event: Event) -> Iterable[Finding]:
        if isinstance(event, CdrReceived):
            cdr = view(event)
            if cdr is not None and not cdr.credit:
                self._queue.push(event.ts + timedelta(seconds=self.config.grace_s), cdr)
        elif isinstance(event, TransactionEnded | SessionReported):
            m = metered_from(event)
            if m is not None:
                self._book.add(m, event.ts)
        else:
            return ()
        return self._judge_all(self._queue.release(event.ts))

    def finish(self, ts: datetime) -> Iterable[Finding]:
        return self._judge_all(self._queue.release(None))

    def _judge_all(self, cdrs: list[CdrView]) -> list[Finding]:
        out: list[Finding] = []
        for cdr in cdrs:
            found = self._judge(cdr)
            if found is not None:
                out.append(found)
        return out

    def _judge(self, cdr: CdrView) -> Finding | None:
        raise NotImplementedError


class CdrOrphan(_CdrVsMetered):
    """A CDR with no charging behind it: no OCPP transaction and no OCPI session on its station in its window.

    Catches: a CDR whose station reports transactions or sessions (so absence is evidence), but none of them
    overlaps the CDR's start..end window (+/- ``slack_s``), and whose ``session_id`` names no known session, once
    ``grace_s`` of event time has passed after the CDR (or at end of stream).

    Why it matters: invented CDRs bill eMSPs (and their drivers) for charging that never happened.

    False positives: stations whose OCPP traffic is only partly captured, station identities that the
    Location/EVSE mapping does not reproduce (see docs/ocpi.md), clocks off by more than ``slack_s``. Silent on
    stations that report no transactions at all in the input.

    References: OCPI 2.2.1 mod_cdrs, mod_sessions; OCPP 1.6 §4.10 StopTransaction; OCPP 2.0.1 E06.
    """

    info: ClassVar[DetectorInfo] = DetectorInfo(
        name="cdr-orphan",
        kinds=("cdr.orphan",),
        title="CDR with no transaction or session behind it",
        severity=Severity.HIGH,
        references=(_OCPI, "OCPI 2.2.1 mod_sessions", "OCPP 1.6 §4.10 StopTransaction"),
    )

    def _judge(self, cdr: CdrView) -> Finding | None:
        if not self._book.covers(cdr.station) or self._book.candidates(cdr, self.config.slack_s):
            return None
        return self.finding(
            "cdr.orphan",
            ts=cdr.ts,
            incident=cdr.key,
            summary=f"CDR {cdr.key} bills {cdr.energy_wh / 1000:.2f} kWh on {cdr.station} with no session behind it",
            station=cdr.station,
            transactions=(cdr.key,),
            token_ref=cdr.token_ref,
            evidence={
                "start": cdr.start.isoformat(),
                "end": cdr.end.isoformat(),
                "energy_wh": round(cdr.energy_wh, 1),
                "cost_excl_vat": str(cdr.cost_excl_vat),
                "currency": cdr.currency,
                "session_id": cdr.session_id,
            },
        )


class CdrEnergyMismatch(_CdrVsMetered):
    """A CDR's total_energy disagreeing with the energy metered for the same charging.

    Catches: the CDR's ``total_energy`` against the nearest metered session behind it (its OCPI session by id,
    else an OCPP transaction or completed OCPI session overlapping its window on its station) differing by more
    than ``max(energy_abs_wh, energy_rel * metered)``.

    Why it matters: inflated energy on a CDR is the simplest overbilling; deflated energy hides energy theft.

    False positives: meters that report at low resolution (kWh registers), sessions whose CDR also bills energy
    delivered after a reconnect, several transactions billed as one CDR.

    References: OCPI 2.2.1 mod_cdrs (total_energy), mod_sessions (kwh); OCPP 1.6 §4.10 (meterStop);
    OCPP 2.0.1 J01.
    """

    info: ClassVar[DetectorInfo] = DetectorInfo(
        name="cdr-energy-mismatch",
        kinds=("cdr.energy_mismatch",),
        title="CDR energy differs from the metered energy",
        severity=Severity.MEDIUM,
        references=(f"{_OCPI} total_energy", "OCPI 2.2.1 mod_sessions kwh", "OCPP 1.6 §4.10"),
    )

    def _judge(self, cdr: CdrView) -> Finding | None:
        for m in self._book.candidates(cdr, self.config.slack_s):
            if m.energy_wh is None:
                continue
            difference = cdr.energy_wh - m.energy_wh
            if abs(difference) <= max(self.config.energy_abs_wh, self.config.energy_rel * abs(m.energy_wh)):
                return None
            return self.finding(
                "cdr.energy_mismatch",
                ts=cdr.ts,
                incident=cdr.key,
                summary=(
                    f"CDR {cdr.key} bills {cdr.energy_wh / 1000:.2f} kWh; the {m.source} meter saw "
                    f"{m.energy_wh / 1000:.2f} kWh"
                ),
                severity=Severity.HIGH if difference > 0 else Severity.MEDIUM,
                station=cdr.station,
                transactions=(cdr.key, m.ref),
                token_ref=cdr.token_ref,
                evidence={"cdr_wh": round(cdr.energy_wh, 1), "metered_wh": round(m.energy_wh, 1),
                          "difference_wh": round(difference, 1), "metered_by": m.source, "metered_ref": m.ref},
            )  # fmt: skip
        return None


@dataclass(frozen=True, slots=True)
class UnbilledConfig:
    """grace_s: a CDR is expected within this after the session ended; min_energy_wh: smaller sessions are ignored;
    slack_s: clock slack when matching a CDR to the session."""

    grace_s: float = 86_400.0
    min_energy_wh: float = 500.0
    slack_s: float = 600.0


class SessionUnbilled(Detector[UnbilledConfig]):
    """A completed transaction or OCPI session with energy and no CDR after a grace period.

    Catches: an OCPP transaction (``TransactionEnded``) or COMPLETED OCPI Session that delivered at least
    ``min_energy_wh`` and for which no CDR (same OCPI session id, or same station with an overlapping window) has
    arrived ``grace_s`` after it ended - reported when event time passes that point, or at end of stream for
    sessions already past it. Only once CDRs are part of the input at all.

    Why it matters: charging that is never billed is lost revenue for the CPO - or energy handed out on a token
    that the eMSP will never be charged for (insider fraud, a broken CDR pipeline).

    False positives: free charging (operators' own cards, test sessions: allow-list them), CDRs sent later than
    ``grace_s`` (OCPI allows late CDRs), station identities the mapping does not reproduce.

    References: OCPI 2.2.1 mod_cdrs (a CDR for every completed session), mod_sessions; OCPP 1.6 §4.10.
    """

    info: ClassVar[DetectorInfo] = DetectorInfo(
        name="session-unbilled",
        kinds=("session.unbilled",),
        title="Completed charging session never billed",
        severity=Severity.MEDIUM,
        references=(_OCPI, "OCPI 2.2.1 mod_sessions", "OCPP 1.6 §4.10 StopTransaction"),
    )
    consumes: ClassVar[tuple[type[Any], ...]] = (CdrReceived, TransactionEnded, SessionReported)
    Config: ClassVar[type[Any]] = UnbilledConfig

    def __init__(self, config: UnbilledConfig, context: DetectorContext) -> None:
        super().__init__(config, context)
        limits = context.limits
        self._pending: BoundedState[str, dict[str, Metered]] = BoundedState(limits.max_keys, limits.ttl_s * 4)
        self._billed_sessions: BoundedState[str, bool] = BoundedState(limits.max_keys, limits.ttl_s)
        self._due_heap: list[tuple[float, int, str, str]] = []
        self._seq = 0
        self._cdrs_seen = False

    def state_size(self) -> int:
        return len(self._pending) + len(self._billed_sessions) + len(self._due_heap)

    def process(self, event: Event) -> Iterable[Finding]:
        if isinstance(event, CdrReceived):
            self._cdrs_seen = True
            cdr = view(event)
            if cdr is not None:
                self._billed(cdr)
        elif isinstance(event, TransactionEnded | SessionReported):
            m = metered_from(event)
            billed = m is not None and m.source == "ocpi" and bool(self._billed_sessions.get(m.ref))
            if m is not None and (m.energy_wh or 0.0) >= self.config.min_energy_wh and not billed:
                self._pending.setdefault(m.station, dict, event.ts)[m.ref] = m
                self._seq += 1
                due = m.end.timestamp() + self.config.grace_s
                heapq.heappush(self._due_heap, (due, self._seq, m.station, m.ref))
                if len(self._due_heap) > self.context.limits.max_keys:
                    heapq.heappop(self._due_heap)
        else:
            return ()
        return self._due(event.ts)

    def finish(self, ts: datetime) -> Iterable[Finding]:
        return self._due(ts)

    def _billed(self, cdr: CdrView) -> None:
        waiting = self._pending.get(cdr.station)
        if cdr.session_id is not None:
            session_key = object_key(cdr.party, cdr.session_id)
            self._billed_sessions.put(session_key, True, cdr.ts)
            if waiting is not None:
                waiting.pop(session_key, None)
        if waiting:
            for ref, m in list(waiting.items()):
                if overlaps(m, cdr.start, cdr.end, self.config.slack_s):
                    del waiting[ref]

    def _due(self, now: datetime) -> list[Finding]:
        out: list[Finding] = []
        t = now.timestamp()
        while self._due_heap and self._due_heap[0][0] <= t:
            _, _, station, ref = heapq.heappop(self._due_heap)
            waiting = self._pending.get(station)
            m = waiting.pop(ref, None) if waiting is not None else None
            if m is None or not self._cdrs_seen:
                continue  # billed meanwhile, or no CDRs in this input at all (no evidence either way)
            out.append(
                self.finding(
                    "session.unbilled",
                    ts=m.end + timedelta(seconds=self.config.grace_s),
                    incident=f"{m.station}/{m.ref}",
                    summary=(
                        f"{m.source.upper()} session {m.ref} on {m.station} delivered "
                        f"{(m.energy_wh or 0) / 1000:.2f} kWh and was never billed"
                    ),
                    station=m.station,
                    transactions=(m.ref,),
                    token_ref=m.token_ref,
                    evidence={
                        "start": m.start.isoformat(),
                        "end": m.end.isoformat(),
                        "energy_wh": round(m.energy_wh or 0.0, 1),
                        "grace_s": self.config.grace_s,
                    },
                )
            )
        return out


DETECTORS: tuple[type[Detector[Any]], ...] = (
    CdrDuplicate,
    CdrOrphan,
    CdrEnergyMismatch,
    CdrPriceMismatch,
    SessionUnbilled,
    CdrPartyMismatch,
    OcpiUnauthorizedCharging,
)
"""The billing detectors, for ``chargeguard.detectors.registry.BUILTIN``."""
