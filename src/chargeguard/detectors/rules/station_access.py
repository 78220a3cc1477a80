"""Station access rules: failed authentication bursts and duplicate connections for one station identity."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from chargeguard.detectors.base import Detector, DetectorContext, DetectorInfo
from chargeguard.detectors.rules.event_window import EventWindow, Throttle, remote_host
from chargeguard.detectors.security_events import canonical_event_type
from chargeguard.detectors.state import BoundedState
from chargeguard.events import (
    ConnectionEvent,
    Direction,
    Event,
    Finding,
    FrameSeen,
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
    (password spraying, high) or ``per_remote_failures`` times; (3) bursts of the station-reported security
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
        identities = sorted(set(rm.window))
        spraying = len(identities) >= cfg.spray_identities
        # one address hammering one identity is the station incident already; the address is its own
        # incident once it spreads over identities
        many = len(identities) >= 2 and len(rm.window) >= cfg.per_remote_failures
        if (spraying or many) and rm.throttle.ready(event.ts):
            what = (
                f"password spraying: {len(identities)} station identities"
                if spraying
                else f"{len(rm.window)} failed attempts"
            )
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
        st.window.add(event.ts, kind)
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


@dataclass(slots=True)
class _Connections:
    open_hosts: dict[str | None, float] = field(default_factory=dict)
    last_frame: float | None = None
    history: EventWindow[str] | None = None


@dataclass(frozen=True, slots=True)
class DuplicateConnectionConfig:
    """Thresholds of station.duplicate_connection.

    liveness_s: frames from the station within this long before a second connection mean the first was alive.
    alternation_window_s: window over which connections that alternate between addresses are counted.
    alternation_returns: how often a previous address must come back (A, B, A, B = 2 returns) to call it a
    hijack.
    """

    liveness_s: float = 120.0
    alternation_window_s: float = 3600.0
    alternation_returns: int = 2


class DuplicateConnection(Detector[DuplicateConnectionConfig]):
    """A second live connection for one station identity, or connections alternating between two addresses.

    Catches: a ``connect`` for an identity that already has an open connection (no ``disconnect`` in between)
    from a *different* remote host - medium when the station sent frames within ``liveness_s`` before (the
    first connection was alive, so two parties hold the identity), low when it had gone quiet (likely a
    half-dead TCP connection after a mobile-network address change); and connections whose remote host keeps
    flipping back (A, B, A, B: ``alternation_returns`` returns within ``alternation_window_s``) - high, the
    SaiFlow hijack pattern where the real station and an impostor keep displacing each other.

    Why: OCPP-J does not say what a CSMS must do with a second WebSocket for a connected identity; most tested
    CSMSs dropped the real station or silently ignored it, allowing denial of service and energy theft (DOMAIN
    #26, SaiFlow 2023; OCPP 2.1 Part 4 §3.1.1 says not to rely on the URL alone).

    Captures written by the chargeguard gateway carry its own decision instead of a second ``connect``: it pings
    the current holder of the identity and refuses the newcomer when it answers (``duplicate_refused``, medium,
    low from the holder's own address) or replaces a holder that did not answer (``duplicate_replaced``, no
    alert: the old connection was dead).

    False positives: a reconnect after a clean disconnect, or from the same address (the old TCP connection
    was half-dead), never fires. Stations with two uplinks (LTE failover) may alternate addresses: allow-list
    them.

    References: OCPP 2.1 Part 4 §3.1.1, DOMAIN.md #26 and §3.1.
    """

    info: ClassVar[DetectorInfo] = DetectorInfo(
        name="station-duplicate-connection",
        kinds=("station.duplicate_connection",),
        title="Duplicate or hijacked station connection",
        severity=Severity.MEDIUM,
        references=("OCPP 2.1 Part 4 §3.1.1", "DOMAIN.md #26"),
    )
    consumes: ClassVar[tuple[type[Any], ...]] = (ConnectionEvent, FrameSeen)
    Config: ClassVar[type[Any]] = DuplicateConnectionConfig

    _MAX_OPEN = 8

    def __init__(self, config: DuplicateConnectionConfig, context: DetectorContext) -> None:
        super().__init__(config, context)
        self._state: BoundedState[str, _Connections] = BoundedState(
            context.limits.max_keys, context.limits.ttl_s
        )

    def state_size(self) -> int:
        return len(self._state)

    def process(self, event: Event) -> Iterable[Finding]:
        if isinstance(event, FrameSeen):
            st = self._state.get(event.station)
            if st is not None and event.direction is Direction.STATION:
                st.last_frame = event.ts.timestamp()
            return ()
        if not isinstance(event, ConnectionEvent):
            return ()
        if event.event == "disconnect":
            st = self._state.get(event.station)
            if st is not None:
                host = remote_host(event.remote)
                if host in st.open_hosts:
                    del st.open_hosts[host]
                elif st.open_hosts:
                    del st.open_hosts[next(iter(st.open_hosts))]
            return ()
        if event.event == "action":
            return self._gateway_action(event)
        if event.event != "connect":
            return ()
        return self._connect(event)

    def _gateway_action(self, event: ConnectionEvent) -> list[Finding]:
        """The chargeguard gateway's own duplicate policy: it pings the holder of the identity first."""
        detail = event.detail if isinstance(event.detail, Mapping) else {}
        action = detail.get("action")
        if action == "duplicate_replaced":  # the old connection did not answer a ping: it was dead
            st = self._state.get(event.station)
            if st is not None:
                st.open_hosts.clear()
            return []
        if action != "duplicate_refused":
            return []
        host = remote_host(event.remote)
        st = self._state.get(event.station)
        holders = sorted(h for h in (st.open_hosts if st is not None else {}) if h is not None)
        same = host is not None and holders == [host]
        alive = detail.get("reason") == "old_connection_alive"
        return [
            self.finding(
                "station.duplicate_connection",
                ts=event.ts,
                incident=f"station:{event.station}",
                summary=f"gateway refused a second connection for station {event.station} from {host or 'unknown'}"
                + (" while the first was alive" if alive else " during a pending handshake"),
                severity=Severity.LOW if same else Severity.MEDIUM,
                confidence=0.5 if same else 0.85,
                station=event.station,
                evidence={
                    "new_remote_host": host,
                    "open_remote_hosts": holders,
                    "gateway_reason": str(detail.get("reason", ""))[:40],
                    "first_connection_active": alive,
                },
            )
        ]

    def _connect(self, event: ConnectionEvent) -> list[Finding]:
        cfg = self.config
        now = event.ts.timestamp()
        host = remote_host(event.remote)
        st = self._state.setdefault(event.station, _Connections, event.ts)
        out: list[Finding] = []
        others = [h for h in st.open_hosts if h is not None and host is not None and h != host]
        if others:
            alive = st.last_frame is not None and now - st.last_frame <= cfg.liveness_s
            out.append(
                self.finding(
                    "station.duplicate_connection",
                    ts=event.ts,
                    incident=f"station:{event.station}",
                    summary=f"station {event.station} connected from {host} while a connection from "
                    f"{others[0]} was still open" + (" and active" if alive else ""),
                    severity=Severity.MEDIUM if alive else Severity.LOW,
                    confidence=0.8 if alive else 0.4,
                    station=event.station,
                    evidence={
                        "new_remote_host": host,
                        "open_remote_hosts": sorted(others),
                        "first_connection_active": alive,
                        "seconds_since_last_frame": None
                        if st.last_frame is None
                        else round(now - st.last_frame, 3),
                    },
                )
            )
        if host is not None:
            if st.history is None:
                st.history = EventWindow(cfg.alternation_window_s, 64)
            st.history.add(event.ts, host)
            returns, hosts = _returns(list(st.history))
            if returns >= cfg.alternation_returns:
                out.append(
                    self.finding(
                        "station.duplicate_connection",
                        ts=event.ts,
                        incident=f"station:{event.station}",
                        summary=f"connections for station {event.station} alternate between {len(hosts)} "
                        f"addresses ({returns} returns within {cfg.alternation_window_s:.0f} s)",
                        severity=Severity.HIGH,
                        station=event.station,
                        evidence={
                            "remote_hosts": hosts[:_MAX_LISTED],
                            "returns": returns,
                            "connects": len(st.history),
                        },
                    )
                )
        st.open_hosts.pop(host, None)
        st.open_hosts[host] = now
        while len(st.open_hosts) > self._MAX_OPEN:
            del st.open_hosts[next(iter(st.open_hosts))]
        return out


def _returns(hosts: list[str]) -> tuple[int, list[str]]:
    """How often a host reappears after another host was seen in between, and the distinct hosts in order."""
    seen: list[str] = []
    returns = 0
    previous: str | None = None
    for h in hosts:
        if h != previous and h in seen:
            returns += 1
        if h not in seen:
            seen.append(h)
        previous = h
    return returns, seen
