"""Station connection rule: a second live connection for one identity, or connections alternating addresses."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

from chargeguard.detectors.base import Detector, DetectorContext, DetectorInfo
from chargeguard.detectors.rules.event_window import EventWindow, remote_host
from chargeguard.detectors.state import BoundedState
from chargeguard.events import ConnectionEvent, Direction, Event, Finding, FrameSeen, Severity

_MAX_LISTED = 20
_FROM_STATION = Direction.STATION  # a module constant: an Enum attribute lookup costs more per frame


@dataclass(slots=True)
class _Connections:
    open_hosts: dict[str | None, float] = field(default_factory=dict)
    last_frame: datetime | None = None  # kept as the event's datetime: converted only when a connect needs it
    history: EventWindow[str] | None = None
    last_host: str | None = None  # the remote host the station was last connected from
    # hosts of which one connection closed with a disconnect naming no address: which one is unknown
    unsure: frozenset[str] | None = None


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

    A station that keeps sending frames after its last ``disconnect`` with no ``connect`` in between (a capture
    that missed the reconnect) is taken to be connected again from the address it was last connected from
    (the disconnect's own address, or its connect's when the disconnect line names none).

    A disconnect naming no address while connections from several addresses are open closes one of them, but
    which is unknown: a later connect from one of those addresses is then not taken for a second connection
    (the one left open may be its own). Injected real data: a twin that connected from a mobile address and left
    with an unnamed disconnect made the station's own reconnect, eleven days later, look like a duplicate.

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
            if event.direction is _FROM_STATION:
                st = self._state.get(event.station)
                if st is not None:
                    st.last_frame = event.ts
                    if not st.open_hosts and st.last_host is not None:
                        # frames after a disconnect without a connect: the capture missed the reconnect
                        st.open_hosts[st.last_host] = event.ts.timestamp()
            return ()
        if not isinstance(event, ConnectionEvent):
            return ()
        if event.event == "disconnect":
            st = self._state.get(event.station)
            if st is not None:
                host = remote_host(event.remote)
                st.last_host = host if host is not None else st.last_host
                st.unsure = None
                if host in st.open_hosts:
                    del st.open_hosts[host]
                elif st.open_hosts:
                    named = frozenset(h for h in st.open_hosts if h is not None)
                    if host is None and len(named) > 1:
                        st.unsure = named
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
        unsure, st.unsure = st.unsure, None
        if unsure is not None and host in unsure:
            # the connection left open may be this host's own: an unnamed disconnect closed one of them
            for h in [h for h in others if h in unsure]:
                del st.open_hosts[h]
            others = [h for h in others if h not in unsure]
        if others:
            last_frame = None if st.last_frame is None else st.last_frame.timestamp()
            alive = last_frame is not None and now - last_frame <= cfg.liveness_s
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
                        if last_frame is None
                        else round(now - last_frame, 3),
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
        if host is not None:
            st.last_host = host
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
