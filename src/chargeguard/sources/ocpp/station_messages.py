"""Station -> central system messages (OCPP 1.6J and 2.0.1/2.1) -> events, with transaction assembly.

1.6: Authorize, StartTransaction (the transaction id comes in the CALLRESULT, so TransactionStarted is emitted
there), MeterValues, StopTransaction (its transactionData samples first, then TransactionEnded), StatusNotification,
BootNotification, SecurityEventNotification, (Signed)FirmwareStatusNotification.
2.0.1: Authorize, TransactionEvent (Started / Updated / Ended; a token that arrives in a later event attaches to the
transaction; the CSMS's idTokenInfo answer becomes an AuthorizationDecision), MeterValues, StatusNotification,
BootNotification, NotifyReport (reported configuration), SecurityEventNotification, FirmwareStatusNotification.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from chargeguard.events import (
    AuthorizationDecision,
    AuthorizationRequested,
    ClockReading,
    ConfigurationReport,
    ConnectorStatus,
    Event,
    FirmwareStatusReported,
    MeterSample,
    SecurityEventReported,
    StationBooted,
    TransactionStarted,
)
from chargeguard.sources.capture import FrameRecord
from chargeguard.sources.ocpp.csms_messages import config_value
from chargeguard.sources.ocpp.measurands import read_sampled_values
from chargeguard.sources.ocpp.sessions import OpenTransaction
from chargeguard.sources.timeparse import parse_rfc3339

if TYPE_CHECKING:
    from chargeguard.sources.ocpp.normalize import Normaliser


def _at(value: Any, rec: FrameRecord) -> datetime:
    parsed = parse_rfc3339(value)
    return parsed if parsed is not None else rec.ts


def _str(value: Any, limit: int = 100) -> str | None:
    if value is None:
        return None
    return str(value)[:limit]


def _clock(
    norm: Normaliser,
    rec: FrameRecord,
    action: str,
    at: datetime,
    queued: bool,
    out: list[Event],
    *,
    offline: bool = False,
) -> bool:
    """Emit a ClockReading; returns whether the message counts as queued.

    Queued: the station says so (2.0.1 ``offline``), or it arrived in a replay window (after a reconnect or a
    silence) with a payload time older than ``queued_lag_s``.
    """
    is_queued = offline or (queued and (rec.ts - at).total_seconds() > norm.config.queued_lag_s)
    out.append(ClockReading(rec.ts, at, rec.station, action, is_queued))
    return is_queued


def _id_token(payload: dict[str, Any]) -> Any:
    token = payload.get("idToken")
    if isinstance(token, dict):
        return token.get("idToken")
    return None


# ---------------------------------------------------------------------------------------------- CALLs


def on_call(
    norm: Normaliser, rec: FrameRecord, action: str, payload: dict[str, Any], queued: bool, out: list[Event]
) -> None:
    """Events of one station CALL (``queued``: it arrived in a replay window)."""
    handler = CALL_HANDLERS.get(action)
    if handler is not None:
        handler(norm, rec, action, payload, queued, out)


def _authorize(
    norm: Normaliser, rec: FrameRecord, action: str, payload: dict[str, Any], queued: bool, out: list[Event]
) -> None:
    raw = payload.get("idTag") if rec.ocpp == "1.6" else _id_token(payload)
    out.append(AuthorizationRequested(rec.ts, rec.station, norm.token(raw), rec.ocpp))


def _meter_values_call(
    norm: Normaliser, rec: FrameRecord, action: str, payload: dict[str, Any], queued: bool, out: list[Event]
) -> None:
    _meter_values(norm, rec, payload, queued, out, v16=rec.ocpp == "1.6")


def _stop_transaction_call(
    norm: Normaliser, rec: FrameRecord, action: str, payload: dict[str, Any], queued: bool, out: list[Event]
) -> None:
    if rec.ocpp == "1.6":
        _stop_transaction(norm, rec, payload, queued, out)


def _transaction_event_call(
    norm: Normaliser, rec: FrameRecord, action: str, payload: dict[str, Any], queued: bool, out: list[Event]
) -> None:
    _transaction_event(norm, rec, payload, queued, out)


def _status_notification(
    norm: Normaliser, rec: FrameRecord, action: str, payload: dict[str, Any], queued: bool, out: list[Event]
) -> None:
    v16 = rec.ocpp == "1.6"
    at = _at(payload.get("timestamp"), rec)
    if "timestamp" in payload:
        _clock(norm, rec, action, at, queued, out)
    if v16:
        connector = str(payload["connectorId"])
        status = str(payload["status"])
        error = _str(payload.get("errorCode"))
    else:
        connector = f"{payload['evseId']}/{payload['connectorId']}"
        status = str(payload["connectorStatus"])
        error = None
    if status in ("Charging", "Occupied"):
        tx = norm.transactions.on_connector(rec.station, connector)
        if tx is None and not v16:
            tx = norm.transactions.on_connector(rec.station, connector.split("/", 1)[0])
        if tx is not None and status == "Charging":
            tx.charging_seen = True
    out.append(ConnectorStatus(rec.ts, at, rec.station, connector, status, error))


def _boot_notification(
    norm: Normaliser, rec: FrameRecord, action: str, payload: dict[str, Any], queued: bool, out: list[Event]
) -> None:
    if rec.ocpp == "1.6":
        out.append(
            StationBooted(
                rec.ts,
                rec.station,
                rec.ocpp,
                vendor=_str(payload.get("chargePointVendor")),
                model=_str(payload.get("chargePointModel")),
                serial=_str(payload.get("chargePointSerialNumber") or payload.get("chargeBoxSerialNumber")),
                firmware=_str(payload.get("firmwareVersion")),
            )
        )
    else:
        cs = payload.get("chargingStation") or {}
        out.append(
            StationBooted(
                rec.ts,
                rec.station,
                rec.ocpp,
                vendor=_str(cs.get("vendorName")),
                model=_str(cs.get("model")),
                serial=_str(cs.get("serialNumber")),
                firmware=_str(cs.get("firmwareVersion")),
                reason=_str(payload.get("reason")),
            )
        )


def _security_event(
    norm: Normaliser, rec: FrameRecord, action: str, payload: dict[str, Any], queued: bool, out: list[Event]
) -> None:
    at = _at(payload.get("timestamp"), rec)
    _clock(norm, rec, action, at, queued, out)
    tech = payload.get("techInfo")
    out.append(
        SecurityEventReported(
            rec.ts,
            at,
            rec.station,
            rec.ocpp,
            str(payload.get("type"))[:50],
            norm.redact_text(str(tech)[:255]) if tech is not None else None,
        )
    )


def _firmware_status(
    norm: Normaliser, rec: FrameRecord, action: str, payload: dict[str, Any], queued: bool, out: list[Event]
) -> None:
    out.append(FirmwareStatusReported(rec.ts, rec.station, rec.ocpp, str(payload.get("status"))[:50]))


def _notify_report(
    norm: Normaliser, rec: FrameRecord, action: str, payload: dict[str, Any], queued: bool, out: list[Event]
) -> None:
    for item in payload.get("reportData") or ():
        key = _component_key(item)
        for attr in item.get("variableAttribute") or ():
            if attr.get("type", "Actual") == "Actual" and "value" in attr:
                out.append(
                    ConfigurationReport(rec.ts, rec.station, rec.ocpp, key, config_value(key, attr["value"]))
                )


def _component_key(item: dict[str, Any]) -> str:
    component = item["component"]
    variable = item["variable"]
    key = f"{component['name']}.{variable['name']}"
    instance = variable.get("instance") or component.get("instance")
    return f"{key}/{instance}" if instance else key


def _meter_values(
    norm: Normaliser, rec: FrameRecord, payload: dict[str, Any], queued: bool, out: list[Event], *, v16: bool
) -> None:
    if v16:
        connector = str(payload["connectorId"])
        tx_raw = payload.get("transactionId")
        tx_id = str(tx_raw) if tx_raw is not None else None
    else:
        connector = str(payload["evseId"])
        tx_id = None
    tx = norm.transactions.get(rec.station, tx_id) if tx_id is not None else None
    if tx is None and tx_id is None and connector not in ("0",):
        tx = norm.transactions.on_connector(rec.station, connector)
        if tx is not None:
            tx_id = tx.transaction_id
    if tx is None and tx_id is not None:
        # joined mid-transaction: start tracking it without a TransactionStarted
        tx = OpenTransaction(rec.station, rec.ocpp, tx_id, connector, None, None, None)
        norm.transactions.start(tx, rec.t)
    first = True
    for mv in payload.get("meterValue") or ():
        at = _at(mv.get("timestamp"), rec)
        if first:
            is_queued = _clock(norm, rec, "MeterValues", at, queued, out)
            first = False
        else:
            is_queued = queued and (rec.ts - at).total_seconds() > norm.config.queued_lag_s
        energy, power, context = read_sampled_values(mv.get("sampledValue"), v16=v16)
        if tx is not None:
            tx.add_sample(energy, power)
        out.append(
            MeterSample(
                rec.ts,
                at,
                rec.station,
                rec.ocpp,
                tx.connector if tx else connector,
                tx_id,
                energy,
                power,
                context,
                is_queued,
            )
        )


def _stop_transaction(
    norm: Normaliser, rec: FrameRecord, payload: dict[str, Any], queued: bool, out: list[Event]
) -> None:
    tx_id = str(payload["transactionId"])
    at = _at(payload.get("timestamp"), rec)
    is_queued = _clock(norm, rec, "StopTransaction", at, queued, out)
    tx = norm.transactions.finish(rec.station, tx_id)
    if tx is None:
        tx = OpenTransaction(rec.station, rec.ocpp, tx_id, None, None, None, None)
    for mv in payload.get("transactionData") or ():
        sample_at = _at(mv.get("timestamp"), rec)
        energy, power, context = read_sampled_values(mv.get("sampledValue"), v16=True)
        tx.add_sample(energy, power)
        out.append(
            MeterSample(
                rec.ts,
                sample_at,
                rec.station,
                rec.ocpp,
                tx.connector,
                tx_id,
                energy,
                power,
                context,
                is_queued,
            )
        )
    meter_stop = payload.get("meterStop")
    out.append(
        tx.ended(
            ts=rec.ts,
            at=at,
            meter_stop_wh=float(meter_stop) if isinstance(meter_stop, int | float) else None,
            reason=_str(payload.get("reason"), 40),
            stop_token_ref=norm.token(payload.get("idTag")),
            queued=is_queued,
        )
    )


def _transaction_event(
    norm: Normaliser, rec: FrameRecord, payload: dict[str, Any], queued: bool, out: list[Event]
) -> None:
    info = payload["transactionInfo"]
    tx_id = str(info["transactionId"])
    event_type = payload["eventType"]
    at = _at(payload.get("timestamp"), rec)
    is_queued = _clock(norm, rec, "TransactionEvent", at, queued, out, offline=payload.get("offline") is True)
    evse = payload.get("evse")
    connector: str | None = None
    if isinstance(evse, dict) and "id" in evse:
        connector = f"{evse['id']}/{evse['connectorId']}" if "connectorId" in evse else str(evse["id"])
    token_ref = norm.token(_id_token(payload))
    tx = norm.transactions.get(rec.station, tx_id)
    samples = [
        (mv, *read_sampled_values(mv.get("sampledValue"), v16=False))
        for mv in payload.get("meterValue") or ()
    ]
    if tx is None:
        first_energy = next((s[1] for s in samples if s[1] is not None), None)
        tx = OpenTransaction(
            rec.station, rec.ocpp, tx_id, connector, token_ref, at, first_energy, queued=is_queued
        )
        norm.transactions.start(tx, rec.t)
        out.append(
            TransactionStarted(
                rec.ts, at, rec.station, rec.ocpp, tx_id, connector, token_ref, first_energy, is_queued
            )
        )
    else:
        if tx.connector is None and connector is not None:
            tx.connector = connector
        if tx.token_ref is None and token_ref is not None:
            tx.token_ref = token_ref
    if info.get("chargingState") == "Charging":
        tx.charging_seen = True
    for mv, energy, power, context in samples:
        sample_at = _at(mv.get("timestamp"), rec)
        if tx.meter_start_wh is None and energy is not None:
            tx.meter_start_wh = energy
        tx.add_sample(energy, power)
        out.append(
            MeterSample(
                rec.ts,
                sample_at,
                rec.station,
                rec.ocpp,
                tx.connector,
                tx_id,
                energy,
                power,
                context,
                is_queued,
            )
        )
    if event_type == "Ended":
        norm.transactions.finish(rec.station, tx_id)
        out.append(
            tx.ended(
                ts=rec.ts,
                at=at,
                meter_stop_wh=tx.last_sample_wh,
                reason=_str(info.get("stoppedReason"), 40),
                stop_token_ref=token_ref if token_ref != tx.token_ref else None,
                queued=is_queued,
            )
        )


# ---------------------------------------------------------------------------------------------- answers


def on_result(
    norm: Normaliser,
    rec: FrameRecord,
    action: str,
    call: dict[str, Any],
    result: dict[str, Any],
    out: list[Event],
) -> None:
    """Events of the central system's answer to a station CALL."""
    handler = RESULT_HANDLERS.get(action)
    if handler is not None:
        handler(norm, rec, action, call, result, out)


def _authorize_result(
    norm: Normaliser,
    rec: FrameRecord,
    action: str,
    call: dict[str, Any],
    result: dict[str, Any],
    out: list[Event],
) -> None:
    v16 = rec.ocpp == "1.6"
    info = result.get("idTagInfo") if v16 else result.get("idTokenInfo")
    raw = call.get("idTag") if v16 else _id_token(call)
    if isinstance(info, dict):
        at = rec.ts
        out.append(
            AuthorizationDecision(
                rec.ts, at, rec.station, norm.token(raw), str(info.get("status")), "Authorize", rec.ocpp
            )
        )


def _start_transaction_result(
    norm: Normaliser,
    rec: FrameRecord,
    action: str,
    call: dict[str, Any],
    result: dict[str, Any],
    out: list[Event],
) -> None:
    if rec.ocpp != "1.6":
        return
    tx_id = str(result["transactionId"])
    status = str((result.get("idTagInfo") or {}).get("status"))
    at = _at(call.get("timestamp"), rec)
    token_ref = norm.token(call.get("idTag"))
    connector = str(call.get("connectorId"))
    meter = call.get("meterStart")
    meter_start = float(meter) if isinstance(meter, int | float) and not isinstance(meter, bool) else None
    link = norm.links.get(rec.station)
    queued = (
        link is not None
        and rec.t <= link.replay_until
        and (rec.ts - at).total_seconds() > norm.config.queued_lag_s
    )
    out.append(ClockReading(rec.ts, at, rec.station, "StartTransaction", queued))
    out.append(
        AuthorizationDecision(
            rec.ts, at, rec.station, token_ref, status, "StartTransaction", rec.ocpp, tx_id, connector
        )
    )
    tx = OpenTransaction(
        rec.station, rec.ocpp, tx_id, connector, token_ref, at, meter_start, status, queued=queued
    )
    norm.transactions.start(tx, rec.t)
    out.append(
        TransactionStarted(
            rec.ts, at, rec.station, rec.ocpp, tx_id, connector, token_ref, meter_start, queued, status
        )
    )


def _stop_transaction_result(
    norm: Normaliser,
    rec: FrameRecord,
    action: str,
    call: dict[str, Any],
    result: dict[str, Any],
    out: list[Event],
) -> None:
    if rec.ocpp == "1.6":
        info = result.get("idTagInfo")
        if isinstance(info, dict) and call.get("idTag"):
            out.append(
                AuthorizationDecision(
                    rec.ts,
                    _at(call.get("timestamp"), rec),
                    rec.station,
                    norm.token(call.get("idTag")),
                    str(info.get("status")),
                    "StopTransaction",
                    rec.ocpp,
                    str(call.get("transactionId")),
                )
            )


def _transaction_event_result(
    norm: Normaliser,
    rec: FrameRecord,
    action: str,
    call: dict[str, Any],
    result: dict[str, Any],
    out: list[Event],
) -> None:
    info = result.get("idTokenInfo")
    if not isinstance(info, dict):
        return
    tx_id = str(call["transactionInfo"]["transactionId"])
    open_tx = norm.transactions.get(rec.station, tx_id)
    raw = _id_token(call)
    # the CSMS may judge the transaction's token in the answer to an event that does not repeat it
    # (a mid-session deauthorisation): the verdict is about the open transaction's token
    token = norm.token(raw) if raw else (open_tx.token_ref if open_tx is not None else None)
    if token:
        if open_tx is not None and open_tx.auth_status is None:
            open_tx.auth_status = str(info.get("status"))
        out.append(
            AuthorizationDecision(
                rec.ts,
                _at(call.get("timestamp"), rec),
                rec.station,
                token,
                str(info.get("status")),
                "TransactionEvent",
                rec.ocpp,
                tx_id,
                open_tx.connector if open_tx else None,
            )
        )


_CallHandler = Callable[["Normaliser", FrameRecord, str, dict[str, Any], bool, list[Event]], None]
_ResultHandler = Callable[["Normaliser", FrameRecord, str, dict[str, Any], dict[str, Any], list[Event]], None]

# action -> handler; actions without events of their own (Heartbeat, DataTransfer, ...) are absent, and the
# BootNotification answer too (registration status is visible in FrameSeen; identity came with the CALL)
CALL_HANDLERS: dict[str, _CallHandler] = {
    "Authorize": _authorize,
    "MeterValues": _meter_values_call,
    "StopTransaction": _stop_transaction_call,
    "TransactionEvent": _transaction_event_call,
    "StatusNotification": _status_notification,
    "BootNotification": _boot_notification,
    "SecurityEventNotification": _security_event,
    "FirmwareStatusNotification": _firmware_status,
    "SignedFirmwareStatusNotification": _firmware_status,
    "NotifyReport": _notify_report,
}
RESULT_HANDLERS: dict[str, _ResultHandler] = {
    "Authorize": _authorize_result,
    "StartTransaction": _start_transaction_result,
    "StopTransaction": _stop_transaction_result,
    "TransactionEvent": _transaction_event_result,
}
