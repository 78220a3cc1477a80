"""Token rule detectors (the ``token.*`` kinds); this module holds token.concurrent_use.

Every token detector is exported through ``DETECTORS`` here: token.impossible_travel lives in
``rules/travel.py``, token.high_velocity in ``rules/velocity.py``, token.unauthorized_charging in
``rules/authorization.py`` and token.enumeration in ``rules/enumeration.py``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

from chargeguard.detectors.base import Detector, DetectorContext, DetectorInfo
from chargeguard.detectors.rules.authorization import UnauthorizedCharging
from chargeguard.detectors.rules.enumeration import Enumeration
from chargeguard.detectors.rules.intervals import Clash, Span, SpanBook
from chargeguard.detectors.rules.travel import ImpossibleTravel
from chargeguard.detectors.rules.txbook import QUEUED_AFTER_S, TxBook, TxFacts, iso_time, remember_start
from chargeguard.detectors.rules.velocity import HighVelocity
from chargeguard.events import (
    AuthorizationDecision,
    Event,
    Finding,
    MeterSample,
    Severity,
    TransactionEnded,
    TransactionStarted,
)
from chargeguard.inventory import distance_km


@dataclass(frozen=True, slots=True)
class ConcurrentUseConfig:
    """Thresholds of token.concurrent_use.

    tolerance_s: overlap (station time) ignored between sites, as clock skew or a hand-over between sessions.
    same_site_tolerance_s: overlap ignored at one station or site (see site_radius_km): a driver moving to
      another connector whose first transaction stops late (stations stop a transaction when the cable is
      unplugged: OCPP 1.6 StopTransactionOnEVSideDisconnect, 2.0.1 TxStopPoint EVConnected, so one car's two
      transactions overlap by minutes at most).
    site_radius_km: stations this close (inventory coordinates; else the same location_id) are one site.
    max_open_s: a transaction open longer than this (its stop was lost) no longer counts as running.
    idle_s: at a station that sends meter samples, an open transaction without a sample for four sample
      intervals (at least 10 minutes, at most this) no longer counts as running (its stop was lost).
    same_site_allowed: ignore every overlap at one site (depots of fleet cards).
    """

    tolerance_s: float = 120.0
    same_site_tolerance_s: float = 300.0
    site_radius_km: float = 0.5
    max_open_s: float = 172_800.0
    idle_s: float = 3600.0
    same_site_allowed: bool = False


class ConcurrentUse(Detector[ConcurrentUseConfig]):
    """One token in two transactions at the same time (a cloned RFID card or a shared credential).

    Catches: a token whose transactions overlap in station time by more than ``tolerance_s``, anywhere in the
    network - including 2.0.1 transactions that the token joined after they started (its idToken on a later
    TransactionEvent) and transactions a station sent late from its offline queue (judged on their
    station-time interval once their end is known, so an offline replay is not mistaken for concurrency).

    Why it matters: DOMAIN.md scenario #1 (RFID cloning: one Dutch CPO lost EUR 217k to ten cloned tags, 109
    overlapping sessions in two days) and #13 (spoofed Autocharge MAC tokens). OCPP 1.6 §7.18 / 2.0.1 C01
    define ``ConcurrentTx`` precisely because a token should be in one transaction at a time.

    False positives: fleet or family cards legitimately used on two cars (allow-list the token or set
    ``same_site_allowed`` for depots); a transaction whose StopTransaction was lost looks open until it has
    sent no meter sample for ``idle_s`` (at stations that send samples) or for ``max_open_s``; station clocks
    wrong by more than ``tolerance_s``. At one station or site a driver may start on a second connector before
    the first stops, so such overlaps are judged on their length as samples or a stop measure it, against
    ``same_site_tolerance_s``, at medium severity; overlaps between sites fire on the frame that starts the
    second transaction, at high severity. Real data check (Dundee, Jun-Sep 2018, 19,131 sessions of 827
    cards): 78 same-site overlaps (median 17 min - shared cards at rapid hubs), 60 of them of 30 minutes or
    less, and 16 cross-site overlaps, 15 of them on cards with a session still running elsewhere. With the
    same-site tolerance at 5 minutes the rule reports 84 of these cards' overlaps (68 at one site, 17 high);
    every one is a record pair the dataset judgement calls a genuine anomaly (one user id in two sessions at
    once), against 35 with a 30-minute tolerance, which missed most cloned cards used on a neighbouring
    connector (injected incidents at the single-station EPFL dataset: recall 0.15).

    References: OCPP 1.6 §4.8 StartTransaction, §7.18 AuthorizationStatus (ConcurrentTx); OCPP 2.0.1 C01,
    E01-E07 (TransactionEvent idToken), D01 (ConcurrentTx); DOMAIN.md #1, #13.
    """

    info: ClassVar[DetectorInfo] = DetectorInfo(
        name="token-concurrent-use",
        kinds=("token.concurrent_use",),
        title="Token used in overlapping transactions",
        severity=Severity.HIGH,
        references=("OCPP 1.6 §7.18 ConcurrentTx", "OCPP 2.0.1 C01/E01", "DOMAIN.md #1", "DOMAIN.md #13"),
    )
    consumes: ClassVar[tuple[type[Any], ...]] = (
        TransactionStarted,
        AuthorizationDecision,
        MeterSample,
        TransactionEnded,
    )
    Config: ClassVar[type[Any]] = ConcurrentUseConfig

    def __init__(self, config: ConcurrentUseConfig, context: DetectorContext) -> None:
        super().__init__(config, context)
        self._tx: TxBook[TxFacts] = TxBook(TxFacts, context)
        self._spans = SpanBook(
            max_keys=context.limits.max_keys,
            ttl_s=context.limits.ttl_s,
            max_open_s=config.max_open_s,
            idle_s=config.idle_s,
        )

    def state_size(self) -> int:
        return len(self._tx) + len(self._spans)

    def process(self, event: Event) -> Iterable[Finding]:
        if type(event) is MeterSample:
            return self._sample(event)
        if isinstance(event, TransactionStarted):
            facts = remember_start(self._tx, event)
            if facts.token_ref is None:
                return ()
            return self._record(event, facts.token_ref, start=facts.start, end=None, facts=facts)
        if isinstance(event, AuthorizationDecision):
            # 1.6 start tokens come with TransactionStarted; 2.0.1 tokens may join a started transaction
            if event.transaction_id is None or event.token_ref is None or event.context != "TransactionEvent":
                return ()
            if self._tx.ended(event.station, event.transaction_id):
                return ()  # the answer to the Ended event
            facts = self._tx.touch(event.station, event.transaction_id, event.ts)
            if facts.token_ref is not None:
                return ()  # the transaction's token is known; a later idToken is whoever stops it
            facts.token_ref = event.token_ref
            if facts.start is None:
                facts.queued = (event.ts - event.at).total_seconds() > QUEUED_AFTER_S
            start = facts.start if facts.start is not None else event.at.timestamp()
            return self._record(event, event.token_ref, start=start, end=None, facts=facts)
        if isinstance(event, TransactionEnded):
            facts = self._tx.pop(event.station, event.transaction_id, event.ts, event.connector) or TxFacts()
            token = event.token_ref or facts.token_ref
            if token is None:
                return ()
            began: float | None = facts.start
            if began is None and event.started_at is not None:
                began = event.started_at.timestamp()
            facts.queued = facts.queued or event.queued
            facts.connector = facts.connector or event.connector
            return self._record(event, token, start=began, end=event.at.timestamp(), facts=facts)
        return ()

    def _sample(self, event: MeterSample) -> Iterable[Finding]:
        tx = event.transaction_id or self._tx.resolve(event.station, None, event.connector)
        known = None if tx is None else self._tx.get(event.station, tx)
        token = None if known is None else known.token_ref
        at = event.at.timestamp()
        sampled = self._spans.saw(None if token is None else token.lower(), event.station, tx, at, event.ts)
        if sampled is None or token is None:
            return ()
        # a sample measures how long two running transactions have overlapped so far (same-site pairs)
        clashes = self._spans.clashes(
            token.lower(), sampled, tolerance_s=self.config.tolerance_s, accept=self._counts, now=at
        )
        return [self._finding(event, token, clash) for clash in clashes]

    def _record(
        self, event: Event, token: str, *, start: float | None, end: float | None, facts: TxFacts
    ) -> list[Finding]:
        assert isinstance(event, TransactionStarted | AuthorizationDecision | TransactionEnded)
        tx = event.transaction_id
        assert tx is not None
        key = token.lower()
        span = self._spans.upsert(
            key,
            station=event.station,
            transaction_id=tx,
            connector=facts.connector,
            start=start,
            end=end,
            queued=facts.queued,
            ts=event.ts,
        )
        clashes = self._spans.clashes(key, span, tolerance_s=self.config.tolerance_s, accept=self._counts)
        return [self._finding(event, token, clash) for clash in clashes]

    def _same_site(self, a: Span, b: Span) -> bool:
        """One station, or two stations within ``site_radius_km`` (of one location_id when without coordinates)."""
        if a.station == b.station:
            return True
        ia, ib = self.context.inventory.get(a.station), self.context.inventory.get(b.station)
        if ia is None or ib is None:
            return False
        km = distance_km(ia, ib)
        if km is not None:
            return km <= self.config.site_radius_km
        return ia.location_id is not None and ia.location_id == ib.location_id

    def _counts(self, clash: Clash) -> bool:
        if not self._same_site(clash.first, clash.second):
            return True
        if self.config.same_site_allowed:
            return False
        # at one site a driver may start on a second connector before the first one stops: judge on the overlap
        # measured so far (by a sample) or once one of the two has ended
        return clash.overlap_s != float("inf") and clash.overlap_s > self.config.same_site_tolerance_s

    def _finding(self, event: Event, token: str, clash: Clash) -> Finding:
        first, second = clash.first, clash.second
        same_site = self._same_site(first, second)
        long_overlap = clash.overlap_s >= 600
        severity = Severity.MEDIUM if same_site else Severity.HIGH
        confidence = (0.7 if same_site else 0.95) if long_overlap else (0.6 if same_site else 0.85)
        overlap = None if clash.overlap_s == float("inf") else round(clash.overlap_s, 1)
        where = "at one site" if same_site else f"at {first.station} and {second.station}"
        return self.finding(
            "token.concurrent_use",
            ts=event.ts,
            incident=token.lower(),
            summary=f"token in two transactions at once {where}",
            severity=severity,
            confidence=confidence,
            station=second.station,
            stations=(first.station, second.station),
            transactions=(first.transaction_id, second.transaction_id),
            token_ref=token,
            evidence={
                "overlap_s": overlap,
                "still_running": clash.overlap_s == float("inf"),
                "same_site": same_site,
                "sessions": [_span_evidence(first), _span_evidence(second)],
            },
        )


def _span_evidence(span: Span) -> dict[str, Any]:
    return {
        "station": span.station,
        "transaction": span.transaction_id,
        "connector": span.connector,
        "started_at": iso_time(span.start),
        "ended_at": None if span.end is None else iso_time(span.end),
        "queued": span.queued,
    }


DETECTORS: tuple[type[Detector[Any]], ...] = (
    ConcurrentUse,
    ImpossibleTravel,
    UnauthorizedCharging,
    Enumeration,
    HighVelocity,
)
