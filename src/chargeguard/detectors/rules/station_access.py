"""Station access rule: bursts of failed authentication for one identity or from one address."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from chargeguard.detectors.base import Detector, DetectorContext, DetectorInfo
from chargeguard.detectors.rules.event_window import EventWindow, Throttle, occurred_at, remote_host
from chargeguard.detectors.security_events import canonical_event_type
from chargeguard.detectors.state import BoundedState
from chargeguard.events import (
    ConnectionEvent,
    Event,
    Finding,
    SecurityEventReported,
    Severity,
)

_MAX_LISTED = 20
_REASON = re.compile(r"[^a-z0-9_]")
_REPORTED_AUTH_TYPES = frozenset({"FailedToAuthenticateAtCsms", "CsmsFailedToAuthenticate"})


@dataclass(slots=True)
class _Failures:
    window: EventWindow[str]
    throttle: Throttle
    reasons: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True, slots=True)
class AuthFailureConfig:
    """Thresholds of station.auth_failure.

    window_s: sliding window of event time over which failures are counted.
    per_station_failures: refused WebSocket upgrades for one identity within the window (brute force).
    per_remote_failures: refused upgrades from one remote host for two or more identities within the window.
    spray_identities: distinct identities refused from one remote host within the window (password spraying).
    reported_failures: station-reported FailedToAuthenticateAtCsms / CsmsFailedToAuthenticate per station.
    reemit_s: while a burst goes on, evidence is added to its alert at most this often.
    """

    window_s: float = 600.0
    per_station_failures: int = 5
    per_remote_failures: int = 10
    spray_identities: int = 3
    reported_failures: int = 3
    reemit_s: float = 300.0


class AuthFailure(Detector[AuthFailureConfig]):
    """Repeated authentication failures: brute force of one station's password, or spraying across identities.

    Catches: (1) ``auth_failed`` WebSocket upgrades for one identity at or above ``per_station_failures`` in
    ``window_s``; a later successful ``connect`` from an address that kept failing is noted in the same alert
    (the guess may have succeeded); (2) one remote host failing for ``spray_identities`` distinct identities
    (password spraying, high; "identity probing" when most were refused as unknown stations) or
    ``per_remote_failures`` times; (3) bursts of the station-reported security
    events FailedToAuthenticateAtCsms / CsmsFailedToAuthenticate (1.6: FailedToAuthenticateAtCentralSystem /
    CentralSystemFailedToAuthenticate).

    Why: OCPP basic auth (security profiles 1 and 2) is a password per station; CSMSs without attempt limits
    let an attacker guess it and impersonate the station (DOMAIN #25, #27; CVE-2026-24445). A station that
    cannot authenticate the CSMS may be talking to a man in the middle (#29).

    False positives: a station left with an old password after a rotation fails at every retry until fixed
    (one medium alert per station, no spraying); many stations behind one carrier-grade NAT share a remote
    address, so a fleet-wide password rotation can look like spraying - raise ``spray_identities`` for such
    networks.

    References: OCPP 1.6 security whitepaper A00.FR.204/205, OCPP 2.0.1 Part 2 A00.FR.204/205, Appendix 1
    security events, DOMAIN.md #27.
    """

    info: ClassVar[DetectorInfo] = DetectorInfo(
        name="station-auth-failure",
        kinds=("station.auth_failure",),
        title="Repeated station authentication failures",
        severity=Severity.MEDIUM,
        references=("OCPP 2.0.1 A00.FR.204", "OCPP 2.0.1 A00.FR.205", "DOMAIN.md #27"),
    )
    consumes: ClassVar[tuple[type[Any], ...]] = (ConnectionEvent, SecurityEventReported)
    Config: ClassVar[type[Any]] = AuthFailureConfig

    def __init__(self, config: AuthFailureConfig, context: DetectorContext) -> None:
        super().__init__(config, context)
        limits = context.limits
        self._stations: BoundedState[str, _Failures] = BoundedState(limits.max_keys, limits.ttl_s)
        self._remotes: BoundedState[str, _Failures] = BoundedState(limits.max_keys, limits.ttl_s)
        self._reported: BoundedState[str, _Failures] = BoundedState(limits.max_keys, limits.ttl_s)

    def state_size(self) -> int:
        return len(self._stations) + len(self._remotes) + len(self._reported)

    def _new(self, cap: int) -> _Failures:
        return _Failures(EventWindow(self.config.window_s, cap), Throttle(self.config.reemit_s))

    def process(self, event: Event) -> Iterable[Finding]:
        if isinstance(event, ConnectionEvent):
            if event.event == "auth_failed":
                return self._failed(event)
            if event.event == "connect":
                return self._connected(event)
            return ()
        if isinstance(event, SecurityEventReported):
            return self._reported_failure(event)
        return ()

    def _failed(self, event: ConnectionEvent) -> list[Finding]:
        cfg = self.config
        out: list[Finding] = []
        host = remote_host(event.remote)
        cap = 4 * max(cfg.per_station_failures, cfg.per_remote_failures)
        st = self._stations.setdefault(event.station, lambda: self._new(cap), event.ts)
        st.window.add(event.ts, host or "")
        detail = event.detail if isinstance(event.detail, Mapping) else {}
        reason = _REASON.sub("", str(detail.get("reason") or "unspecified").lower())[:40] or "unspecified"
        if len(st.reasons) < _MAX_LISTED or reason in st.reasons:
            st.reasons[reason] += 1
        if len(st.window) >= cfg.per_station_failures and st.throttle.ready(event.ts):
            hosts = sorted({h for h in st.window if h})
            out.append(
                self.finding(
                    "station.auth_failure",
                    ts=event.ts,
                    incident=f"station:{event.station}",
                    summary=f"{len(st.window)} failed connection attempts for station {event.station} "
                    f"within {cfg.window_s:.0f} s",
                    station=event.station,
                    evidence={
                        "failures": len(st.window),
                        "window_s": cfg.window_s,
                        "remote_hosts": hosts[:_MAX_LISTED],
                        "distinct_remote_hosts": len(hosts),
                        "reasons_so_far": dict(sorted(st.reasons.items())),
                    },
                )
            )
        if host is None:
            return out
        rm = self._remotes.setdefault(host, lambda: self._new(cap * 4), event.ts)
        rm.window.add(event.ts, event.station)
        if len(rm.reasons) < _MAX_LISTED or reason in rm.reasons:
            rm.reasons[reason] += 1
        identities = sorted(set(rm.window))
        spraying = len(identities) >= cfg.spray_identities
        # one address hammering one identity is the station incident already; the address is its own
        # incident once it spreads over identities
        many = len(identities) >= 2 and len(rm.window) >= cfg.per_remote_failures
        if (spraying or many) and rm.throttle.ready(event.ts):
            probing = rm.reasons["unknown_station"] * 2 > sum(rm.reasons.values())
            if spraying:
                what = f"{'identity probing' if probing else 'password spraying'}: {len(identities)} station identities"
            else:
                what = f"{len(rm.window)} failed attempts"
            out.append(
                self.finding(
                    "station.auth_failure",
                    ts=event.ts,
                    incident=f"remote:{host}",
                    summary=f"{what} refused from {host} within {cfg.window_s:.0f} s",
                    severity=Severity.HIGH if spraying else Severity.MEDIUM,
                    station=event.station,
                    stations=identities[:_MAX_LISTED],
                    evidence={
                        "remote_host": host,
                        "failures": len(rm.window),
                        "distinct_identities": len(identities),
                        "window_s": cfg.window_s,
                        "reasons_so_far": dict(sorted(rm.reasons.items())),
                    },
                )
            )
        return out

    def _connected(self, event: ConnectionEvent) -> list[Finding]:
        host = remote_host(event.remote)
        st = self._stations.get(event.station)
        if st is None or host is None:
            return []
        st.window.prune(event.ts.timestamp())
        from_host = sum(1 for h in st.window if h == host)
        if len(st.window) < self.config.per_station_failures or from_host == 0:
            return []
        st.window.clear()
        return [
            self.finding(
                "station.auth_failure",
                ts=event.ts,
                incident=f"station:{event.station}",
                summary=f"station {event.station} connected from {host} after {from_host} failed attempts "
                "from that address",
                severity=Severity.HIGH,
                confidence=0.7,
                station=event.station,
                evidence={"remote_host": host, "failures_before_success": from_host},
            )
        ]

    def _reported_failure(self, event: SecurityEventReported) -> list[Finding]:
        kind = canonical_event_type(event.event_type)
        if kind not in _REPORTED_AUTH_TYPES:
            return []
        cfg = self.config
        st = self._reported.setdefault(event.station, lambda: self._new(4 * cfg.reported_failures), event.ts)
        st.window.add(occurred_at(event.ts, event.at), kind)
        if len(st.window) < cfg.reported_failures or not st.throttle.ready(event.ts):
            return []
        counts = {k: sum(1 for x in st.window if x == k) for k in sorted(set(st.window))}
        return [
            self.finding(
                "station.auth_failure",
                ts=event.ts,
                incident=f"reported:{event.station}",
                summary=f"station {event.station} reported {len(st.window)} authentication failures with the "
                f"central system within {cfg.window_s:.0f} s",
                station=event.station,
                evidence={"reported": counts, "window_s": cfg.window_s},
            )
        ]
