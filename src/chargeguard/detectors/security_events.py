"""The severity table for OCPP security events (SecurityEventNotification, 2.0.1 and 1.6 security whitepaper).

OCPP's "critical" flag (2.0.1 Part 2 Appendix 1) only says that a station SHALL push the event to the central
system; it is not a severity. chargeguard maps every event type to a ``base`` severity for a single occurrence
and a ``burst`` severity used when the same type repeats at one station ``burst_count`` times within the
detector's window (a reboot now and then is routine; ten in an hour is a fault or an attack).

=====================================  ======  ======  =====================================================
Event type (2.0.1; [1.6 name])         base    burst   why
=====================================  ======  ======  =====================================================
FirmwareUpdated                        info    low     routine after an update (firmware_downgrade checks)
FailedToAuthenticateAtCsms             low     medium  station credentials refused: misconfiguration, or
[FailedToAuthenticateAtCentralSystem]                  a rogue station hunting passwords (#27)
CsmsFailedToAuthenticate               medium  high    station refused the CSMS credentials: possible man
[CentralSystemFailedToAuthenticate]                    in the middle or rogue CSMS (#29)
SettingSystemTime                      low     medium  clock moved beyond the reporting threshold;
                                                       repeated jumps hide timestamp manipulation (#23)
StartupOfTheDevice                     info    medium  routine power-up; a reboot loop is a fault or DoS
ResetOrReboot                          info    medium  as above (counted with StartupOfTheDevice) (#32)
SecurityLogWasCleared                  high    high    evidence destroyed; never routine (#32)
ReconfigurationOfSecurityParameters    medium  high    security parameters changed (#30): expected only
                                                       in a planned change window
MemoryExhaustion                       medium  high    resource exhaustion: flood or exploitation (#28)
InvalidMessages                        low     medium  malformed traffic reached the station (#29)
AttemptedReplayAttacks                 medium  high    a replayed message: injection on the link, or a
                                                       CSMS retry bug (#29)
TamperDetectionActivated               high    high    physical intrusion into the station (#32)
InvalidFirmwareSignature               high    high    firmware failed signature verification (#31, L01)
InvalidFirmwareSigningCertificate      high    high    firmware signed by an untrusted certificate (#31)
InvalidCsmsCertificate                 high    high    station shown a bad server certificate: man in the
[InvalidCentralSystemCertificate]                      middle, or a CSMS certificate outage (#36)
InvalidChargingStationCertificate      medium  high    an invalid certificate offered to the station (#36)
[InvalidChargePointCertificate]
InvalidTLSVersion                      medium  high    TLS downgrade or legacy peer (A00.FR.312/313)
InvalidTLSCipherSuite                  medium  high    weak cipher negotiation attempt (A00.FR.317)
MaintenanceLoginAccepted               low     medium  local maintenance access granted (#32)
MaintenanceLoginFailed                 medium  high    local maintenance password guessing (#32)
CSRGenerationFailed (EVerest)          low     medium  certificate renewal failing; expiry ahead (#36)
any other / vendor type                low     medium  unknown to the table: worth a look, not an emergency
=====================================  ======  ======  =====================================================

Lookups are case-insensitive and accept the 1.6 names, which are mapped to their 2.0.1 equivalents.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from chargeguard.events import Severity


@dataclass(frozen=True, slots=True)
class SecurityEventRating:
    """How chargeguard rates one security event type."""

    event_type: str
    base: Severity
    burst: Severity
    reason: str
    known: bool = True

    @property
    def ocpp_critical(self) -> bool:
        """OCPP 2.0.1 Appendix 1 "critical": the station must push it (not a severity)."""
        return self.event_type in OCPP_CRITICAL


OCPP_CRITICAL = frozenset(
    {
        "FirmwareUpdated",
        "SettingSystemTime",
        "StartupOfTheDevice",
        "ResetOrReboot",
        "SecurityLogWasCleared",
        "MemoryExhaustion",
        "TamperDetectionActivated",
        "InvalidCsmsCertificate",
        "InvalidChargingStationCertificate",
        "InvalidTLSVersion",
        "InvalidTLSCipherSuite",
        "MaintenanceLoginAccepted",
        "MaintenanceLoginFailed",
    }
)

SECURITY_EVENT_TABLE: Mapping[str, SecurityEventRating] = {
    r.event_type: r
    for r in (
        SecurityEventRating("FirmwareUpdated", Severity.INFO, Severity.LOW, "firmware was updated"),
        SecurityEventRating(
            "FailedToAuthenticateAtCsms", Severity.LOW, Severity.MEDIUM, "station credentials were refused"
        ),
        SecurityEventRating(
            "CsmsFailedToAuthenticate",
            Severity.MEDIUM,
            Severity.HIGH,
            "the station refused the CSMS credentials",
        ),
        SecurityEventRating("SettingSystemTime", Severity.LOW, Severity.MEDIUM, "station clock was moved"),
        SecurityEventRating("StartupOfTheDevice", Severity.INFO, Severity.MEDIUM, "station started"),
        SecurityEventRating("ResetOrReboot", Severity.INFO, Severity.MEDIUM, "station reset or rebooted"),
        SecurityEventRating(
            "SecurityLogWasCleared", Severity.HIGH, Severity.HIGH, "the security log was cleared"
        ),
        SecurityEventRating(
            "ReconfigurationOfSecurityParameters",
            Severity.MEDIUM,
            Severity.HIGH,
            "security parameters were reconfigured",
        ),
        SecurityEventRating("MemoryExhaustion", Severity.MEDIUM, Severity.HIGH, "station ran out of memory"),
        SecurityEventRating(
            "InvalidMessages", Severity.LOW, Severity.MEDIUM, "station received invalid messages"
        ),
        SecurityEventRating(
            "AttemptedReplayAttacks", Severity.MEDIUM, Severity.HIGH, "station detected a replayed message"
        ),
        SecurityEventRating(
            "TamperDetectionActivated", Severity.HIGH, Severity.HIGH, "physical tamper detected"
        ),
        SecurityEventRating(
            "InvalidFirmwareSignature", Severity.HIGH, Severity.HIGH, "firmware signature verification failed"
        ),
        SecurityEventRating(
            "InvalidFirmwareSigningCertificate",
            Severity.HIGH,
            Severity.HIGH,
            "firmware signing certificate is invalid",
        ),
        SecurityEventRating(
            "InvalidCsmsCertificate",
            Severity.HIGH,
            Severity.HIGH,
            "station was shown an invalid CSMS certificate",
        ),
        SecurityEventRating(
            "InvalidChargingStationCertificate",
            Severity.MEDIUM,
            Severity.HIGH,
            "an invalid station certificate was offered",
        ),
        SecurityEventRating("InvalidTLSVersion", Severity.MEDIUM, Severity.HIGH, "TLS version was refused"),
        SecurityEventRating(
            "InvalidTLSCipherSuite", Severity.MEDIUM, Severity.HIGH, "TLS cipher suite was refused"
        ),
        SecurityEventRating(
            "MaintenanceLoginAccepted", Severity.LOW, Severity.MEDIUM, "local maintenance login accepted"
        ),
        SecurityEventRating(
            "MaintenanceLoginFailed", Severity.MEDIUM, Severity.HIGH, "local maintenance login failed"
        ),
        SecurityEventRating(
            "CSRGenerationFailed",
            Severity.LOW,
            Severity.MEDIUM,
            "certificate signing request generation failed",
        ),
    )
}

OCPP16_NAMES: Mapping[str, str] = {
    "FailedToAuthenticateAtCentralSystem": "FailedToAuthenticateAtCsms",
    "CentralSystemFailedToAuthenticate": "CsmsFailedToAuthenticate",
    "InvalidCentralSystemCertificate": "InvalidCsmsCertificate",
    "InvalidChargePointCertificate": "InvalidChargingStationCertificate",
}

_BY_LOWER: Mapping[str, SecurityEventRating] = {
    **{name.lower(): rating for name, rating in SECURITY_EVENT_TABLE.items()},
    **{old.lower(): SECURITY_EVENT_TABLE[new] for old, new in OCPP16_NAMES.items()},
}

_MAX_NAME = 50  # CiString50Type in both versions


def canonical_event_type(event_type: str) -> str:
    """The 2.0.1 name of a known event type (1.6 names mapped), else a bounded printable copy of the input."""
    rating = _BY_LOWER.get(event_type.strip().lower())
    if rating is not None:
        return rating.event_type
    cleaned = "".join(ch for ch in event_type.strip() if ch.isprintable())
    return cleaned[:_MAX_NAME] or "<empty>"


def rate_security_event(event_type: str) -> SecurityEventRating:
    """The rating of an event type; unknown and vendor types are rated low (medium in a burst)."""
    rating = _BY_LOWER.get(event_type.strip().lower())
    if rating is not None:
        return rating
    return SecurityEventRating(
        canonical_event_type(event_type),
        Severity.LOW,
        Severity.MEDIUM,
        "unknown or vendor event type",
        known=False,
    )
