"""The token.enumeration rule: many distinct tokens refused at one station (card numbers being tried)."""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from chargeguard.detectors.base import Detector, DetectorContext, DetectorInfo
from chargeguard.detectors.state import BoundedState
from chargeguard.events import AuthorizationDecision, Event, Finding, Severity


@dataclass(frozen=True, slots=True)
class EnumerationConfig:
    """Thresholds of token.enumeration.

    window_s / min_distinct: distinct refused tokens at one station within this arrival-time window that fire.
    long_window_s / long_min_distinct: the same over a longer window, for slow enumeration.
    min_rejected_share: refused tokens as a share of all distinct tokens presented in the window.
    max_queue_delay_s: answers to requests older than this (offline-queue replays) are left to
      token.unauthorized_charging.
    max_entries: decisions remembered per station (bounds memory under a flood).
    """

    window_s: float = 3600.0
    min_distinct: int = 10
    long_window_s: float = 86_400.0
    long_min_distinct: int = 30
    min_rejected_share: float = 0.5
    max_queue_delay_s: float = 600.0
    max_entries: int = 5000


@dataclass(slots=True)
class _Tally:
    """Distinct tokens and distinct refused tokens in a sliding arrival-time window."""

    window_s: float
    entries: deque[tuple[float, str, bool]] = field(default_factory=deque)
    tokens: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)

    def add(self, t: float, token: str, refused: bool, max_entries: int) -> bool:
        """Add one decision; True when it brings a new distinct refused token into the window."""
        horizon = t - self.window_s
        while self.entries and (self.entries[0][0] < horizon or len(self.entries) >= max_entries):
            _, old, was_refused = self.entries.popleft()
            self._drop(self.tokens, old)
            if was_refused:
                self._drop(self.refused, old)
        new = refused and token not in self.refused
        self.entries.append((t, token, refused))
        self.tokens[token] += 1
        if refused:
            self.refused[token] += 1
        return new

    @staticmethod
    def _drop(counter: Counter[str], key: str) -> None:
        counter[key] -= 1
        if counter[key] <= 0:
            del counter[key]


@dataclass(slots=True)
class _StationTallies:
    short: _Tally
    long: _Tally
    statuses: Counter[str] = field(default_factory=Counter)


class Enumeration(Detector[EnumerationConfig]):
    """Many distinct tokens refused at one station: someone trying card numbers.

    Catches: ``min_distinct`` distinct refused tokens within ``window_s`` (or ``long_min_distinct`` within
    ``long_window_s`` for slow, low-rate probing) at one station, when refused tokens are at least
    ``min_rejected_share`` of the distinct tokens presented there. Every answer that carries an idTagInfo /
    idTokenInfo counts (Authorize, StartTransaction, TransactionEvent), each token once per window. Evidence:
    the distinct-count, the refusal share and the statuses seen.

    Why it matters: DOMAIN.md #8 (card numbers are easy to guess; unknown tokens are broadcast to every eMSP
    the CPO has an agreement with, so probing one station probes a whole roaming network), and a cloned-card
    shop testing its stock (#1).

    False positives: answers replayed from an offline queue (older than ``max_queue_delay_s``) are skipped; a
    central system outage that refuses every card at a busy station for an hour would fire (the refusal share
    is then high too - the statuses in the evidence tell the two apart).

    References: OCPP 1.6 §4.2 Authorize, §7.18 AuthorizationStatus; OCPP 2.0.1 C01, C05; DOMAIN.md #8.
    """

    info: ClassVar[DetectorInfo] = DetectorInfo(
        name="token-enumeration",
        kinds=("token.enumeration",),
        title="Many distinct tokens refused at one station",
        severity=Severity.HIGH,
        references=("OCPP 1.6 §4.2 Authorize", "OCPP 2.0.1 C01", "DOMAIN.md #8"),
    )
    consumes: ClassVar[tuple[type[Any], ...]] = (AuthorizationDecision,)
    Config: ClassVar[type[Any]] = EnumerationConfig

    def __init__(self, config: EnumerationConfig, context: DetectorContext) -> None:
        super().__init__(config, context)
        self._stations: BoundedState[str, _StationTallies] = BoundedState(
            context.limits.max_keys, max(context.limits.ttl_s, config.long_window_s)
        )

    def state_size(self) -> int:
        return len(self._stations)

    def process(self, event: Event) -> Iterable[Finding]:
        if not isinstance(event, AuthorizationDecision) or event.token_ref is None:
            return ()
        if event.context == "StopTransaction":
            return ()
        cfg = self.config
        if (event.ts - event.at).total_seconds() > cfg.max_queue_delay_s:
            return ()
        tallies = self._stations.setdefault(
            event.station, lambda: _StationTallies(_Tally(cfg.window_s), _Tally(cfg.long_window_s)), event.ts
        )
        t = event.ts.timestamp()
        token = event.token_ref.lower()
        refused = not event.accepted
        new_short = tallies.short.add(t, token, refused, cfg.max_entries)
        new_long = tallies.long.add(t, token, refused, cfg.max_entries)
        if refused:
            tallies.statuses[event.status] += 1
        for tally, new, threshold, confidence in (
            (tallies.short, new_short, cfg.min_distinct, 0.9),
            (tallies.long, new_long, cfg.long_min_distinct, 0.75),
        ):
            if not new:
                continue
            distinct = len(tally.refused)
            share = distinct / max(1, len(tally.tokens))
            if distinct >= threshold and share >= cfg.min_rejected_share:
                return [self._finding(event, tally, tallies, distinct, share, confidence)]
        return ()

    def _finding(
        self,
        event: AuthorizationDecision,
        tally: _Tally,
        tallies: _StationTallies,
        distinct: int,
        share: float,
        confidence: float,
    ) -> Finding:
        return self.finding(
            "token.enumeration",
            ts=event.ts,
            incident=event.station,
            summary=f"{distinct} distinct tokens refused within {tally.window_s / 3600:g} h",
            confidence=round(confidence * (0.8 + 0.2 * share), 3),
            station=event.station,
            evidence={
                "distinct_refused": distinct,
                "distinct_tokens": len(tally.tokens),
                "rejected_share": round(share, 3),
                "decisions": len(tally.entries),
                "window_s": tally.window_s,
                "statuses": dict(tallies.statuses.most_common(8)),
                "sample_tokens": sorted(tally.refused)[:10],
            },
        )
