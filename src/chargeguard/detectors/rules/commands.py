"""Rule detectors for command.* kinds: command bursts, fleet-synchronised commands and stale local lists.

command.untrusted_url lives in command_url.py and is exported here.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from chargeguard.detectors.base import Detector, DetectorContext, DetectorInfo
from chargeguard.detectors.rules.command_url import UntrustedUrl
from chargeguard.detectors.rules.event_window import EventWindow, Throttle
from chargeguard.detectors.state import BoundedState
from chargeguard.events import AuthorizationDecision, CommandIssued, Event, Finding, Severity

_FAMILIES = {"RemoteStartTransaction": "RemoteStart", "RequestStartTransaction": "RemoteStart"}
_MAX_LISTED = 50


def _family(action: str) -> str:
    return _FAMILIES.get(action, action)


@dataclass(slots=True)
class _Burst:
    window: EventWindow[str]
    throttle: Throttle


@dataclass(frozen=True, slots=True)
class BurstConfig:
    """Thresholds of command.burst.

    actions: commands counted (RemoteStartTransaction and RequestStartTransaction count as one family).
    station_window_s / station_count: commands of one family to one station within the window.
    fleet_window_s / fleet_count: commands of one family across the fleet within the window.
    reemit_s: while a burst goes on, evidence is added to its alert at most this often.
    """

    actions: tuple[str, ...] = (
        "RemoteStartTransaction",
        "RequestStartTransaction",
        "UnlockConnector",
        "Reset",
        "ChangeAvailability",
    )
    station_window_s: float = 300.0
    station_count: int = 5
    fleet_window_s: float = 60.0
    fleet_count: int = 100
    reemit_s: float = 300.0


class Burst(Detector[BurstConfig]):
    """Bursts of remote start, unlock, reset or availability commands, per station and across the fleet.

    Catches: ``station_count`` commands of one family (RemoteStartTransaction / RequestStartTransaction,
    UnlockConnector, Reset, ChangeAvailability) to one station within ``station_window_s`` (medium), and
    ``fleet_count`` of one family across all stations within ``fleet_window_s`` (high). One alert per station
    and family, and one per family for the fleet.

    Why: a stolen app or operator account starts sessions on other people's tokens (DOMAIN #9), unlocks
    connectors to steal cables or interrupt charging (#10), or resets and disables stations en masse (#28, #33);
    all of these show as command bursts from the central system.

    False positives: a support agent retrying a remote start three or four times stays below the default; a
    planned fleet-wide maintenance reset fires the fleet rule (allow-list the window, or raise ``fleet_count``).

    References: OCPP 1.6 §5.11/§5.13/§5.16/§5.2, OCPP 2.0.1 F01/F05/B11/G03, DOMAIN.md #9, #10, #28.
    """

    info: ClassVar[DetectorInfo] = DetectorInfo(
        name="command-burst",
        kinds=("command.burst",),
        title="Burst of remote commands",
        severity=Severity.MEDIUM,
        references=("OCPP 2.0.1 F01", "OCPP 2.0.1 F05", "DOMAIN.md #9"),
    )
    consumes: ClassVar[tuple[type[Any], ...]] = (CommandIssued,)
    Config: ClassVar[type[Any]] = BurstConfig

    def __init__(self, config: BurstConfig, context: DetectorContext) -> None:
        super().__init__(config, context)
        self._actions = frozenset(config.actions)
        self._stations: BoundedState[tuple[str, str], _Burst] = BoundedState(
            context.limits.max_keys, context.limits.ttl_s
        )
        self._fleet: BoundedState[str, _Burst] = BoundedState(context.limits.max_keys, context.limits.ttl_s)

    def state_size(self) -> int:
        return len(self._stations) + len(self._fleet)

    def process(self, event: Event) -> Iterable[Finding]:
        if not isinstance(event, CommandIssued) or event.action not in self._actions:
            return ()
        cfg = self.config
        family = _family(event.action)
        out: list[Finding] = []
        st = self._stations.setdefault(
            (event.station, family),
            lambda: _Burst(EventWindow(cfg.station_window_s, 4 * cfg.station_count), Throttle(cfg.reemit_s)),
            event.ts,
        )
        st.window.add(event.ts, event.connector or "")
        if len(st.window) >= cfg.station_count and st.throttle.ready(event.ts):
            out.append(
                self.finding(
                    "command.burst",
                    ts=event.ts,
                    incident=f"station:{event.station}:{family}",
                    summary=f"{len(st.window)} {family} commands to station {event.station} within "
                    f"{cfg.station_window_s:.0f} s",
                    station=event.station,
                    evidence={
                        "family": family,
                        "commands": len(st.window),
                        "window_s": cfg.station_window_s,
                        "connectors": sorted({c for c in st.window if c})[:20],
                    },
                )
            )
        fleet = self._fleet.setdefault(
            family,
            lambda: _Burst(EventWindow(cfg.fleet_window_s, 2 * cfg.fleet_count), Throttle(cfg.reemit_s)),
            event.ts,
        )
        fleet.window.add(event.ts, event.station)
        if len(fleet.window) >= cfg.fleet_count and fleet.throttle.ready(event.ts):
            stations = sorted(set(fleet.window))
            out.append(
                self.finding(
                    "command.burst",
                    ts=event.ts,
                    incident=f"fleet:{family}",
                    summary=f"{len(fleet.window)} {family} commands to {len(stations)} stations within "
                    f"{cfg.fleet_window_s:.0f} s",
                    severity=Severity.HIGH,
                    station=event.station,
                    stations=stations[:_MAX_LISTED],
                    evidence={
                        "family": family,
                        "commands": len(fleet.window),
                        "distinct_stations": len(stations),
                        "window_s": cfg.fleet_window_s,
                    },
                )
            )
        return out


_HIGH_IMPACT = frozenset(
    {
        "SetChargingProfile",
        "ClearChargingProfile",
        "ChangeAvailability",
        "Reset",
        "UnlockConnector",
        "RemoteStopTransaction",
        "RequestStopTransaction",
        "RemoteStartTransaction",
        "RequestStartTransaction",
        "SetNetworkProfile",
        "SendLocalList",
    }
)


@dataclass(slots=True)
class _Push:
    action: str
    stations: OrderedDict[str, float] = field(default_factory=OrderedDict)
    reported: int = 0
    listed: set[str] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class FleetSynchronisedConfig:
    """Thresholds of command.fleet_synchronised.

    window_s / min_stations: the same command fingerprint sent to this many distinct stations within the window.
    ignored_actions: read-only or routine commands that are sent fleet-wide by design.
    max_stations_tracked: stations remembered per fingerprint (bounds memory for fleet-wide pushes).
    """

    window_s: float = 120.0
    min_stations: int = 10
    ignored_actions: tuple[str, ...] = (
        "GetConfiguration",
        "GetVariables",
        "GetBaseReport",
        "GetReport",
        "GetMonitoringReport",
        "GetLocalListVersion",
        "GetInstalledCertificateIds",
        "GetCompositeSchedule",
        "GetChargingProfiles",
        "GetTransactionStatus",
        "GetDiagnostics",
        "GetLog",
        "TriggerMessage",
        "ExtendedTriggerMessage",
        "ClearCache",
        "DataTransfer",
        "Heartbeat",
    )
    max_stations_tracked: int = 10_000


class FleetSynchronised(Detector[FleetSynchronisedConfig]):
    """The same command (same charging profile, same payload) pushed to many stations at once.

    Catches: CommandIssued with one ``fingerprint`` (a digest of the payload without per-station ids) sent to at
    least ``min_stations`` distinct stations within ``window_s``. High for commands that move load or availability
    (SetChargingProfile, ClearChargingProfile, ChangeAvailability, Reset, UnlockConnector, remote start/stop,
    SetNetworkProfile, SendLocalList), medium for others (configuration, firmware rollouts). One alert per
    fingerprint; it grows as more stations receive the command (evidence at each doubling).

    Why: synchronised charging-profile changes across a fleet are a grid attack - switching many chargers on or off
    together destabilises the distribution grid (DOMAIN #33; UK SI 2021/1467 requires randomised delays for this
    reason); a compromised CSMS or operator account shows up as identical commands fanned out.

    False positives: planned firmware rollouts and configuration pushes (medium), site load balancing that sends
    one profile to every charger of a site - allow-list those stations or raise ``min_stations``.

    References: OCPP 1.6 Smart Charging §3.13, OCPP 2.0.1 K01, UK SI 2021/1467 Reg. 11, DOMAIN.md #33.
    """

    info: ClassVar[DetectorInfo] = DetectorInfo(
        name="command-fleet-synchronised",
        kinds=("command.fleet_synchronised",),
        title="Same command pushed to many stations",
        severity=Severity.HIGH,
        references=("OCPP 2.0.1 K01", "UK SI 2021/1467 Reg. 11", "DOMAIN.md #33"),
    )
    consumes: ClassVar[tuple[type[Any], ...]] = (CommandIssued,)
    Config: ClassVar[type[Any]] = FleetSynchronisedConfig

    def __init__(self, config: FleetSynchronisedConfig, context: DetectorContext) -> None:
        super().__init__(config, context)
        self._ignored = frozenset(config.ignored_actions)
        self._pushes: BoundedState[str, _Push] = BoundedState(context.limits.max_keys, context.limits.ttl_s)

    def state_size(self) -> int:
        return len(self._pushes)

    def process(self, event: Event) -> Iterable[Finding]:
        if not isinstance(event, CommandIssued) or event.fingerprint is None or event.action in self._ignored:
            return ()
        cfg = self.config
        push = self._pushes.setdefault(
            f"{event.action}:{event.fingerprint}", lambda: _Push(event.action), event.ts
        )
        now = event.ts.timestamp()
        stations = push.stations
        stations.pop(event.station, None)
        stations[event.station] = now
        horizon = now - cfg.window_s
        while stations and (
            next(iter(stations.values())) < horizon or len(stations) > cfg.max_stations_tracked
        ):
            stations.popitem(last=False)
        count = len(stations)
        if count < cfg.min_stations:
            push.reported = 0  # the push is over; a later one starts counting afresh
            push.listed.clear()
            return ()
        if count < 2 * push.reported:
            return ()
        push.reported = count
        new = [s for s in stations if s not in push.listed][:_MAX_LISTED]
        push.listed.update(new)
        if len(push.listed) > cfg.max_stations_tracked:
            push.listed = set(new)
        high = event.action in _HIGH_IMPACT
        return (
            self.finding(
                "command.fleet_synchronised",
                ts=event.ts,
                incident=f"{event.action}:{event.fingerprint}",
                summary=f"identical {event.action} sent to {count} stations within {cfg.window_s:.0f} s",
                severity=Severity.HIGH if high else Severity.MEDIUM,
                station=event.station,
                stations=new,
                evidence={
                    "action": event.action,
                    "fingerprint": event.fingerprint[:64],
                    "stations_in_window": count,
                    "window_s": cfg.window_s,
                },
            ),
        )


@dataclass(frozen=True, slots=True)
class StaleLocalListConfig:
    """Settings of command.stale_local_list.

    bad_statuses: central-system answers that mean a token must not charge.
    """

    bad_statuses: tuple[str, ...] = ("Blocked", "Expired", "Invalid")


class StaleLocalList(Detector[StaleLocalListConfig]):
    """SendLocalList granting charging to tokens the central system itself has rejected.

    Catches: a SendLocalList whose entries grant charging (status Accepted or ConcurrentTx; the normaliser puts
    only those in ``token_refs``) for tokens whose latest central-system answer (Authorize, Start/StopTransaction,
    TransactionEvent idTagInfo / idTokenInfo) was Blocked, Expired or Invalid. A later Accepted answer clears the
    token. One alert per station. High when a Blocked token is re-listed, medium otherwise.

    Why: stations authorise tokens on their local list without asking (offline, or LocalPreAuthorize); a list
    built from a stale export keeps stolen or blocked cards charging for free (DOMAIN #5).

    False positives: a token unblocked in the eMSP's system before the CSMS has answered Accepted for it again.

    References: OCPP 1.6 §5.15 SendLocalList and §3.5 Local Authorization List, OCPP 2.0.1 D01, C13, DOMAIN.md #5.
    """

    info: ClassVar[DetectorInfo] = DetectorInfo(
        name="command-stale-local-list",
        kinds=("command.stale_local_list",),
        title="Local list re-grants rejected tokens",
        severity=Severity.MEDIUM,
        references=("OCPP 1.6 §5.15", "OCPP 2.0.1 D01", "DOMAIN.md #5"),
    )
    consumes: ClassVar[tuple[type[Any], ...]] = (AuthorizationDecision, CommandIssued)
    Config: ClassVar[type[Any]] = StaleLocalListConfig

    def __init__(self, config: StaleLocalListConfig, context: DetectorContext) -> None:
        super().__init__(config, context)
        self._bad = frozenset(config.bad_statuses)
        self._tokens: BoundedState[str, str] = BoundedState(context.limits.max_keys, context.limits.ttl_s)

    def state_size(self) -> int:
        return len(self._tokens)

    def process(self, event: Event) -> Iterable[Finding]:
        if isinstance(event, AuthorizationDecision):
            if event.token_ref is None:
                return ()
            if event.status in self._bad:
                self._tokens.put(event.token_ref.lower(), event.status, event.ts)
            elif event.status == "Accepted":
                self._tokens.pop(event.token_ref.lower())
            return ()
        if not isinstance(event, CommandIssued) or event.action != "SendLocalList":
            return ()
        stale: dict[str, str] = {}
        for ref in event.token_refs:
            status = self._tokens.get(ref.lower())
            if status is not None:
                stale[ref] = status
        if not stale:
            return ()
        statuses = sorted(set(stale.values()))
        return (
            self.finding(
                "command.stale_local_list",
                ts=event.ts,
                incident=f"station:{event.station}",
                summary=f"SendLocalList to station {event.station} grants {len(stale)} token(s) the central "
                f"system answered {'/'.join(statuses)}",
                severity=Severity.HIGH if "Blocked" in statuses else Severity.MEDIUM,
                station=event.station,
                token_ref=next(iter(stale)) if len(stale) == 1 else None,
                evidence={
                    "tokens": dict(sorted(stale.items())[:_MAX_LISTED]),
                    "stale_tokens": len(stale),
                    "list_entries": len(event.token_refs),
                    "update_type": str(event.details.get("updateType", ""))[:20] or None,
                },
            ),
        )


DETECTORS: tuple[type[Detector[Any]], ...] = (UntrustedUrl, Burst, FleetSynchronised, StaleLocalList)

__all__ = ["DETECTORS", "Burst", "FleetSynchronised", "StaleLocalList", "UntrustedUrl"]
