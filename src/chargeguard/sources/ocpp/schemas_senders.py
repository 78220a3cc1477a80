"""Who initiates each OCPP action: the charging station, the central system (CSMS), or either (DataTransfer).

Sources: OCPP 1.6 edition 2, sections 4 ("Operations initiated by Charge Point") and 5 ("Operations initiated
by Central System"); the OCA whitepaper "Improved security for OCPP 1.6-J" (edition 2, as in the
mobilityhouse/ocpp repository under docs/v16), for its eleven messages; OCPP 2.0.1 and OCPP 2.1 part 2, the
direction of each use case's request (2.1 adds DER control, tariffs, battery swap, periodic event streams,
payment and VAT messages; its SEND message NotifyPeriodicEventStream is sent by the station). Only the
station-initiated actions are listed: every other action of the version is initiated by the CSMS, and ``BOTH``
holds the actions either side may send.
"""

from __future__ import annotations

STATION = "station"
CSMS = "csms"

BOTH: frozenset[str] = frozenset({"DataTransfer"})

_STATION_16: frozenset[str] = frozenset(
    {
        # OCPP 1.6 core, section 4
        "Authorize",
        "BootNotification",
        "DiagnosticsStatusNotification",
        "FirmwareStatusNotification",
        "Heartbeat",
        "MeterValues",
        "StartTransaction",
        "StatusNotification",
        "StopTransaction",
        # security whitepaper
        "LogStatusNotification",
        "SecurityEventNotification",
        "SignCertificate",
        "SignedFirmwareStatusNotification",
    }
)

_STATION_201: frozenset[str] = frozenset(
    {
        "Authorize",
        "BootNotification",
        "ClearedChargingLimit",
        "FirmwareStatusNotification",
        "Get15118EVCertificate",
        "GetCertificateStatus",
        "Heartbeat",
        "LogStatusNotification",
        "MeterValues",
        "NotifyChargingLimit",
        "NotifyCustomerInformation",
        "NotifyDisplayMessages",
        "NotifyEVChargingNeeds",
        "NotifyEVChargingSchedule",
        "NotifyEvent",
        "NotifyMonitoringReport",
        "NotifyReport",
        "PublishFirmwareStatusNotification",
        "ReportChargingProfiles",
        "ReservationStatusUpdate",
        "SecurityEventNotification",
        "SignCertificate",
        "StatusNotification",
        "TransactionEvent",
    }
)

_STATION_21: frozenset[str] = _STATION_201 | {
    "BatterySwap",
    "ClosePeriodicEventStream",
    "GetCertificateChainStatus",
    "NotifyDERAlarm",
    "NotifyDERStartStop",
    "NotifyPeriodicEventStream",
    "NotifyPriorityCharging",
    "NotifySettlement",
    "OpenPeriodicEventStream",
    "PullDynamicScheduleUpdate",
    "ReportDERControl",
    "VatNumberValidation",
}

STATION_INITIATED: dict[str, frozenset[str]] = {"1.6": _STATION_16, "2.0.1": _STATION_201, "2.1": _STATION_21}
"""Per version, the actions only a charging station sends as a CALL."""

_STATION_ONLY = frozenset({STATION})
_CSMS_ONLY = frozenset({CSMS})
_EITHER = frozenset({STATION, CSMS})


def senders(version: str, action: str) -> frozenset[str]:
    """Who may send ``action`` as a CALL in ``version`` (the caller has checked the action is known)."""
    if action in BOTH:
        return _EITHER
    if action in STATION_INITIATED.get(version, frozenset()):
        return _STATION_ONLY
    return _CSMS_ONLY
