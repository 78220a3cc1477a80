"""Station configuration rule: security profile downgrades, CSMS redirection, risky authorization values."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import urlsplit

from chargeguard.detectors.base import Detector, DetectorContext, DetectorInfo
from chargeguard.detectors.rules.event_window import HostAllowList
from chargeguard.detectors.rules.station_config_values import (
    RISKS,
    config_key,
    one_level_lower,
    parse_bool,
    parse_float,
    parse_profile,
)
from chargeguard.detectors.state import BoundedState
from chargeguard.events import (
    ConfigurationChange,
    ConfigurationReport,
    ConnectionEvent,
    Event,
    Finding,
    Severity,
)

_PROFILE_KEYS = frozenset({"securityprofile", "securityctrlr.securityprofile"})
_NETWORK_PREFIX = "networkconnectionprofile"
_PRIORITY_KEY = "ocppcommctrlr.networkconfigurationpriority"
_MAX_HOSTS = 8
_MAX_TEXT = 120


@dataclass(slots=True)
class _Posture:
    observed_profile: int | None = None
    requested_profile: int | None = None
    csms_hosts: list[str] = field(default_factory=list)
    slot_profiles: dict[str, int] = field(default_factory=dict)
    reported_risky: set[str] = field(default_factory=set)

    @property
    def profile(self) -> int | None:
        known = [p for p in (self.observed_profile, self.requested_profile) if p is not None]
        return max(known) if known else None


@dataclass(frozen=True, slots=True)
class SecurityDowngradeConfig:
    """Thresholds of station.security_downgrade.

    max_energy_on_invalid_id_wh: TxCtrlr.MaxEnergyOnInvalidId above this (Wh) is risky.
    trusted_csms_hosts: CSMS hosts (``csms.example.com``) or suffixes (``.example.com``) SetNetworkProfile
    may point to; when empty, a SetNetworkProfile is compared with the CSMS hosts seen before for the station.
    """

    max_energy_on_invalid_id_wh: float = 1000.0
    trusted_csms_hosts: tuple[str, ...] = ()


class SecurityDowngrade(Detector[SecurityDowngradeConfig]):
    """Security profile lowered, station redirected to another CSMS, or authorization settings made risky.

    Catches:
    (a) any attempt to lower SecurityProfile (1.6 ChangeConfiguration key SecurityProfile; 2.0.1 SetVariables
        SecurityCtrlr.SecurityProfile) below the highest profile seen for the station (from connections,
        configuration reports and earlier changes), whatever the station answered - high; setting profile 0
        on a station of unknown profile - medium;
    (b) a (re)connection at a lower security_profile than the station used before - high; a connection the
        chargeguard gateway refused as ``security_profile_downgrade`` - medium (blocked, but someone tried);
    (c) SetNetworkProfile with a lower securityProfile (high), a plaintext ``ws://`` CSMS URL (medium,
        high when the station was on profile 2 or 3), or a CSMS host outside ``trusted_csms_hosts`` / other
        than the hosts seen for the station before (high); with neither baseline nor allow-list, a low notice;
    (d) risky authorization values set by the CSMS: 1.6 AllowOfflineTxForUnknownId=true (high),
        LocalAuthorizeOffline=true (low), AuthorizeRemoteTxRequests=false, StopTransactionOnInvalidId=false
        (medium);
        2.0.1 AuthCtrlr.OfflineTxForUnknownIdEnabled=true (high), AuthCtrlr.LocalAuthorizeOffline=true,
        AuthCtrlr.LocalPreAuthorize=true (low), AuthCtrlr.AuthorizeRemoteStart=false,
        AuthCtrlr.DisableRemoteAuthorization=true, TxCtrlr.StopTxOnInvalidId=false,
        TxCtrlr.MaxEnergyOnInvalidId above ``max_energy_on_invalid_id_wh`` (medium). Values compare
        case-insensitively. The same values found in a configuration report (GetConfiguration, NotifyReport,
        GetVariables) are reported one level lower, once per station and key, and only from low upwards.

    Why: OCPP forbids lowering the security profile over OCPP (A00.FR.005, TC_A_22); an attacker with CSMS
    access or a man in the middle disables TLS or client certificates first (DOMAIN #30), or redirects the
    station to a CSMS of their own. Offline and remote-start settings turn outages into free charging (#5,
    #6, #9, #22).

    False positives: an authorised migration to a new CSMS host fires (c) once per station: configure
    ``trusted_csms_hosts``. LocalAuthorizeOffline=true is a common, deliberate default (hence low).

    References: OCPP 2.0.1 A00.FR.005, A05, B09 (SetNetworkProfile), C15/E, OCPP 1.6 security whitepaper §7,
    DOMAIN.md #5, #6, #22, #30.
    """

    info: ClassVar[DetectorInfo] = DetectorInfo(
        name="station-security-downgrade",
        kinds=("station.security_downgrade",),
        title="Station security lowered",
        severity=Severity.HIGH,
        references=("OCPP 2.0.1 A00.FR.005", "OCPP 2.0.1 B09", "DOMAIN.md #30"),
    )
    consumes: ClassVar[tuple[type[Any], ...]] = (ConfigurationChange, ConfigurationReport, ConnectionEvent)
    Config: ClassVar[type[Any]] = SecurityDowngradeConfig

    def __init__(self, config: SecurityDowngradeConfig, context: DetectorContext) -> None:
        super().__init__(config, context)
        self._state: BoundedState[str, _Posture] = BoundedState(context.limits.max_keys, context.limits.ttl_s)
        self._trusted_csms = HostAllowList(
            config.trusted_csms_hosts, setting=f"detector {self.info.name}: trusted_csms_hosts"
        )

    def state_size(self) -> int:
        return len(self._state)

    def process(self, event: Event) -> Iterable[Finding]:
        if isinstance(event, ConnectionEvent):
            return self._connection(event)
        if isinstance(event, ConfigurationChange):
            key = config_key(event.key)
            if key.startswith(_NETWORK_PREFIX) or event.source == "SetNetworkProfile":
                return self._network(event)
            if key in _PROFILE_KEYS:
                return self._profile_change(event)
            if key == _PRIORITY_KEY:
                return self._priority(event)
            return self._risky(event.station, key, event.value, event, reported=False)
        if isinstance(event, ConfigurationReport):
            key = config_key(event.key)
            if key in _PROFILE_KEYS:
                profile = parse_profile(event.value)
                if profile is not None:
                    st = self._state.setdefault(event.station, _Posture, event.ts)
                    st.observed_profile = max(profile, st.observed_profile or 0)
                return ()
            return self._risky(event.station, key, event.value, event, reported=True)
        return ()

    def _connection(self, event: ConnectionEvent) -> list[Finding]:
        detail = event.detail if isinstance(event.detail, Mapping) else {}
        if event.event == "auth_failed" and detail.get("reason") == "security_profile_downgrade":
            return [
                self.finding(
                    "station.security_downgrade",
                    ts=event.ts,
                    incident=f"station:{event.station}:profile",
                    summary=f"gateway refused a connection for station {event.station} below its configured "
                    "security profile",
                    severity=Severity.MEDIUM,
                    station=event.station,
                    evidence={"security_profile": event.security_profile, "via": "gateway", "refused": True},
                )
            ]
        if event.event != "connect" or event.security_profile is None:
            return []
        st = self._state.setdefault(event.station, _Posture, event.ts)
        before = st.observed_profile
        st.observed_profile = max(event.security_profile, before or 0)
        if before is None or event.security_profile >= before:
            return []
        return [
            self.finding(
                "station.security_downgrade",
                ts=event.ts,
                incident=f"station:{event.station}:profile",
                summary=f"station {event.station} connected with security profile {event.security_profile}, "
                f"below profile {before} it used before",
                station=event.station,
                evidence={
                    "security_profile": event.security_profile,
                    "highest_seen": before,
                    "via": "connection",
                },
            )
        ]

    def _profile_change(self, event: ConfigurationChange) -> list[Finding]:
        profile = parse_profile(event.value)
        if profile is None:
            return []
        st = self._state.setdefault(event.station, _Posture, event.ts)
        highest = st.profile
        if highest is None or profile >= highest:
            st.requested_profile = max(profile, st.requested_profile or 0)
            if highest is not None or profile > 0:
                return []
            severity, what = Severity.MEDIUM, "set security profile 0 (no security) on"
        else:
            severity, what = (
                Severity.HIGH,
                f"tried to lower the security profile from {highest} to {profile} on",
            )
        return [
            self.finding(
                "station.security_downgrade",
                ts=event.ts,
                incident=f"station:{event.station}:profile",
                summary=f"{event.source} {what} station {event.station}",
                severity=severity,
                station=event.station,
                evidence={
                    "key": event.key[:_MAX_TEXT],
                    "requested_profile": profile,
                    "highest_seen": highest,
                    "via": event.source,
                    "ocpp": event.ocpp,
                },
            )
        ]

    def _network(self, event: ConfigurationChange) -> list[Finding]:
        st = self._state.setdefault(event.station, _Posture, event.ts)
        highest = st.profile
        reasons: list[str] = []
        severity = Severity.INFO
        profile = parse_profile(event.details.get("securityProfile"))
        if profile is not None and highest is not None and profile < highest:
            reasons.append(f"security profile {profile} below {highest}")
            severity = Severity.HIGH
        elif profile == 0:
            reasons.append("security profile 0 (no authentication)")
            severity = Severity.MEDIUM
        slot = str(event.details.get("configurationSlot") or event.key.partition("/")[2])[:8]
        if profile is not None and slot:
            st.slot_profiles.pop(slot, None)
            st.slot_profiles[slot] = profile
            while len(st.slot_profiles) > _MAX_HOSTS:
                del st.slot_profiles[next(iter(st.slot_profiles))]
        url = str(event.details.get("ocppCsmsUrl") or "")
        parts = urlsplit(url) if url else None
        host = (parts.hostname or "") if parts is not None else ""
        scheme = parts.scheme.lower() if parts is not None else ""
        if scheme and scheme not in ("wss", "https"):
            reasons.append(f"unencrypted CSMS URL scheme {scheme}")
            severity = max(severity, Severity.HIGH if (highest or 0) >= 2 else Severity.MEDIUM)
        if host:
            if self._trusted_csms:
                if not self._trusted_csms.allows(host):
                    reasons.append(f"CSMS host {host} is not trusted")
                    severity = Severity.HIGH
            elif st.csms_hosts and host not in st.csms_hosts:
                reasons.append(f"CSMS host {host} differs from {', '.join(st.csms_hosts)}")
                severity = Severity.HIGH
            elif not st.csms_hosts and not reasons:
                reasons.append(f"CSMS host {host} cannot be verified (no trusted hosts configured)")
                severity = Severity.LOW
            if host not in st.csms_hosts:
                st.csms_hosts.append(host)
                del st.csms_hosts[:-_MAX_HOSTS]
        if profile is not None and (highest is None or profile >= highest):
            st.requested_profile = max(profile, st.requested_profile or 0)
        if not reasons:
            return []
        return [
            self.finding(
                "station.security_downgrade",
                ts=event.ts,
                incident=f"station:{event.station}:network",
                summary=f"SetNetworkProfile on station {event.station}: {'; '.join(reasons)}",
                severity=severity,
                station=event.station,
                evidence={
                    "slot": event.key[:_MAX_TEXT],
                    "csms_host": host or None,
                    "scheme": scheme or None,
                    "security_profile": profile,
                    "highest_seen": highest,
                    "reasons": reasons,
                },
            )
        ]

    def _priority(self, event: ConfigurationChange) -> list[Finding]:
        """2.0.1 OCPPCommCtrlr.NetworkConfigurationPriority: the first slot listed becomes the active profile."""
        st = self._state.get(event.station)
        if st is None or not event.value:
            return []
        first = event.value.split(",", 1)[0].strip()[:8]
        profile = st.slot_profiles.get(first)
        highest = st.profile
        if profile is None or highest is None or profile >= highest:
            return []
        return [
            self.finding(
                "station.security_downgrade",
                ts=event.ts,
                incident=f"station:{event.station}:network",
                summary=f"NetworkConfigurationPriority on station {event.station} activates slot {first} with "
                f"security profile {profile}, below {highest}",
                station=event.station,
                evidence={
                    "slot": first,
                    "security_profile": profile,
                    "highest_seen": highest,
                    "via": event.source,
                },
            )
        ]

    def _risky(
        self,
        station: str,
        key: str,
        value: str | None,
        event: ConfigurationChange | ConfigurationReport,
        *,
        reported: bool,
    ) -> list[Finding]:
        risk = RISKS.get(key)
        if risk is None:
            return []
        if risk.risky_when is None:
            energy = parse_float(value)
            risky = energy is not None and energy > self.config.max_energy_on_invalid_id_wh
        else:
            risky = parse_bool(value) is risk.risky_when
        if reported:
            st = self._state.setdefault(station, _Posture, event.ts)
            if not risky:
                st.reported_risky.discard(key)
                return []
            if key in st.reported_risky:
                return []
            st.reported_risky.add(key)
            severity = one_level_lower(risk.severity)
            if severity < Severity.LOW:
                return []
        elif not risky:
            return []
        else:
            severity = risk.severity
        how = "reports" if reported else f"was set by {getattr(event, 'source', 'the CSMS')} to"
        return [
            self.finding(
                "station.security_downgrade",
                ts=event.ts,
                incident=f"station:{station}:{'posture' if reported else 'authorization'}",
                summary=f"station {station} {how} {risk.key}={(value or '')[:20]}: {risk.why}",
                severity=severity,
                confidence=0.8 if reported else 0.9,
                station=station,
                evidence={
                    "key": risk.key,
                    "value": (value or "")[:20],
                    "reported": reported,
                    "ocpp": event.ocpp,
                },
            )
        ]
