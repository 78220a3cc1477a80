"""The shared nouns: normalised events that sources produce and detectors consume, and the Alert.

Every event is a frozen ``msgspec.Struct`` (cheap to build: a scan makes millions) with no I/O, declared
``gc=False``: an event never references anything that could reference it back (its fields are scalars, strings,
datetimes and plain JSON data), so the cyclic garbage collector need not track it.
Two clocks travel on events:

* ``ts`` - transport time: when the frame or connection event was seen (the capture's ``ts``). The engine orders
  and windows on it; transport behaviour (floods, reconnects, duplicate connections) uses it.
* ``at`` - station time: the payload timestamp the station wrote, where the message has one, else ``ts``.
  Charging behaviour (travel, overlap, energy vs. time) uses it. Messages a station queued while offline carry an
  ``at`` hours before their ``ts``; ``queued`` marks them.

Tokens only ever appear as pseudonyms (``token_ref``) - sources pseudonymise before an event is built.
Energies are in Wh, powers in W, durations in seconds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum, StrEnum
from typing import Any, Literal, TypeAlias

import msgspec


class Severity(IntEnum):
    """Alert severity, ordered so that ``max()`` picks the worst."""

    INFO = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Severity:
        return cls[text.upper()]


class Direction(StrEnum):
    STATION = "station"  # charge station -> central system
    CSMS = "csms"  # central system -> charge station


# ------------------------------------------------------------------ transport


class FrameSeen(msgspec.Struct, frozen=True, gc=False):
    """Any OCPP-J frame that crossed the wire, well-formed or not (rate and protocol baselines)."""

    ts: datetime
    station: str
    ocpp: str
    direction: Direction
    message_type: int
    action: str | None
    size: int


class ConnectionEvent(msgspec.Struct, frozen=True, gc=False):
    """What the transport saw: ``connect``, ``disconnect``, ``auth_failed`` or a gateway ``action``."""

    ts: datetime
    station: str
    event: str
    remote: str | None = None
    security_profile: int | None = None
    detail: Mapping[str, Any] = msgspec.field(default_factory=dict)


class ProtocolViolation(msgspec.Struct, frozen=True, gc=False):
    """A frame that broke OCPP-J framing or its schema (evidence for ``ocpp.malformed``).

    ``reason`` is a stable machine name: not_json, bad_shape, bad_message_type, unknown_action, schema,
    bad_timestamp, duplicate_id, orphan_result, oversize, bad_encoding. ``detail`` never contains a token.
    """

    ts: datetime
    station: str
    ocpp: str
    direction: Direction
    reason: str
    detail: str
    action: str | None = None
    message_id: str | None = None
    source: str | None = None


# ------------------------------------------------------------------ tokens and authorization


class AuthorizationRequested(msgspec.Struct, frozen=True, gc=False):
    """A station asked the central system about a token (Authorize CALL)."""

    ts: datetime
    station: str
    token_ref: str | None
    ocpp: str


class AuthorizationDecision(msgspec.Struct, frozen=True, gc=False):
    """The central system's verdict on a token, from any answer carrying idTagInfo / idTokenInfo.

    ``context``: Authorize, StartTransaction, StopTransaction, TransactionEvent. ``status`` verbatim from the wire
    (Accepted, Blocked, Expired, Invalid, ConcurrentTx, Unknown, NoCredit, NotAllowedTypeEVSE, NotAtThisLocation,
    NotAtThisTime). ``at`` is the station time of the request it answers.
    """

    ts: datetime
    at: datetime
    station: str
    token_ref: str | None
    status: str
    context: str
    ocpp: str
    transaction_id: str | None = None
    connector: str | None = None

    @property
    def accepted(self) -> bool:
        return self.status == "Accepted"


# ------------------------------------------------------------------ transactions


class TransactionStarted(msgspec.Struct, frozen=True, gc=False):
    """A charging transaction began (1.6 StartTransaction answered; 2.0.1 TransactionEvent Started).

    ``connector`` is ``"<connectorId>"`` for 1.6 and ``"<evseId>/<connectorId>"`` for 2.0.1 (``"<evseId>"`` when
    the connector is not given). ``queued`` is true when the station sent it late from its offline queue.
    """

    ts: datetime
    at: datetime
    station: str
    ocpp: str
    transaction_id: str
    connector: str | None
    token_ref: str | None
    meter_start_wh: float | None
    queued: bool = False
    auth_status: str | None = None


class MeterSample(msgspec.Struct, frozen=True, gc=False):
    """One sampled reading of a connector's meter (MeterValues, TransactionEvent meterValue).

    ``energy_wh`` is the Energy.Active.Import.Register converted to Wh; ``power_w`` Power.Active.Import in W.
    ``context`` verbatim (Sample.Periodic, Transaction.Begin, Transaction.End, Sample.Clock, Trigger, ...).
    """

    ts: datetime
    at: datetime
    station: str
    ocpp: str
    connector: str | None
    transaction_id: str | None
    energy_wh: float | None
    power_w: float | None
    context: str | None = None
    queued: bool = False


class TransactionEnded(msgspec.Struct, frozen=True, gc=False):
    """A charging transaction ended, with what the assembler saw of it from start to stop.

    ``energy_wh`` is the energy the station reported for billing: meterStop - meterStart (1.6) or the last
    register minus the first (2.0.1). Sample statistics cover the samples seen inside the transaction.
    ``charging_seen`` is true only when the station said so: a ``Charging`` StatusNotification on the connector
    (1.6) or ``chargingState`` Charging (2.0.1) during the transaction - never inferred from the billed energy.
    """

    ts: datetime
    at: datetime
    station: str
    ocpp: str
    transaction_id: str
    connector: str | None
    token_ref: str | None
    stop_token_ref: str | None
    started_at: datetime | None
    meter_start_wh: float | None
    meter_stop_wh: float | None
    reason: str | None
    samples: int
    first_sample_wh: float | None
    last_sample_wh: float | None
    max_power_w: float | None
    charging_seen: bool
    queued: bool = False
    auth_status: str | None = None

    @property
    def energy_wh(self) -> float | None:
        if self.meter_start_wh is None or self.meter_stop_wh is None:
            return None
        return self.meter_stop_wh - self.meter_start_wh

    @property
    def duration_s(self) -> float | None:
        if self.started_at is None:
            return None
        return (self.at - self.started_at).total_seconds()


class ConnectorStatus(msgspec.Struct, frozen=True, gc=False):
    """A connector or EVSE status change (StatusNotification; 2.0.1 connectorStatus / 1.6 status)."""

    ts: datetime
    at: datetime
    station: str
    connector: str
    status: str
    error_code: str | None = None


# ------------------------------------------------------------------ station identity and configuration


class StationBooted(msgspec.Struct, frozen=True, gc=False):
    """BootNotification: who the station says it is."""

    ts: datetime
    station: str
    ocpp: str
    vendor: str | None
    model: str | None
    serial: str | None
    firmware: str | None
    reason: str | None = None
    status: str | None = None


class ConfigurationChange(msgspec.Struct, frozen=True, gc=False):
    """The central system set a configuration value (ChangeConfiguration, SetVariables, SetNetworkProfile).

    ``key`` is the 1.6 key or ``"<Component>.<Variable>"`` for 2.0.1 (instance appended with ``/``). Secret values
    (AuthorizationKey, BasicAuthPassword, network credentials) arrive as ``"[redacted]"``. Emitted at the CALL: an
    attempt counts whatever the station answers (its answer follows as ``CommandAnswered``).
    """

    ts: datetime
    station: str
    ocpp: str
    source: str
    key: str
    value: str | None
    message_id: str | None = None
    details: Mapping[str, Any] = msgspec.field(default_factory=dict)


class ConfigurationReport(msgspec.Struct, frozen=True, gc=False):
    """A configuration value the station reported (GetConfiguration result, NotifyReport, GetVariables)."""

    ts: datetime
    station: str
    ocpp: str
    key: str
    value: str | None


class SecurityEventReported(msgspec.Struct, frozen=True, gc=False):
    """SecurityEventNotification (1.6 security whitepaper and 2.0.1): ``event_type`` verbatim."""

    ts: datetime
    at: datetime
    station: str
    ocpp: str
    event_type: str
    tech_info: str | None = None


class FirmwareStatusReported(msgspec.Struct, frozen=True, gc=False):
    """FirmwareStatusNotification / SignedFirmwareStatusNotification."""

    ts: datetime
    station: str
    ocpp: str
    status: str


class ClockReading(msgspec.Struct, frozen=True, gc=False):
    """A station timestamp next to the transport time it arrived at (Heartbeat-free messages carry one).

    ``queued`` when the message is known to come from the offline queue (2.0.1 ``offline``) or arrived in the
    replay burst after a reconnect.
    """

    ts: datetime
    at: datetime
    station: str
    action: str
    queued: bool = False


# ------------------------------------------------------------------ commands from the central system


class CommandIssued(msgspec.Struct, frozen=True, gc=False):
    """A CALL from the central system to a station.

    ``urls`` are the locations it points at with credentials removed (``url_credentials`` says whether any were
    present); ``token_refs`` the pseudonyms it carries (SendLocalList, RemoteStart, ReserveNow); ``fingerprint``
    a stable digest of the semantic payload (same charging profile pushed to many stations); ``connector`` where
    the command names one.
    """

    ts: datetime
    station: str
    ocpp: str
    action: str
    message_id: str
    urls: tuple[str, ...] = ()
    url_credentials: bool = False
    token_refs: tuple[str, ...] = ()
    fingerprint: str | None = None
    connector: str | None = None
    details: Mapping[str, Any] = msgspec.field(default_factory=dict)


class CommandAnswered(msgspec.Struct, frozen=True, gc=False):
    """The station's answer to a command (status verbatim, or ``CALLERROR:<code>``)."""

    ts: datetime
    station: str
    ocpp: str
    action: str
    message_id: str
    status: str | None


Event: TypeAlias = (
    FrameSeen
    | ConnectionEvent
    | ProtocolViolation
    | AuthorizationRequested
    | AuthorizationDecision
    | TransactionStarted
    | MeterSample
    | TransactionEnded
    | ConnectorStatus
    | StationBooted
    | ConfigurationChange
    | ConfigurationReport
    | SecurityEventReported
    | FirmwareStatusReported
    | ClockReading
    | CommandIssued
    | CommandAnswered
)

EVENT_TYPES: tuple[type[Event], ...] = (
    FrameSeen,
    ConnectionEvent,
    ProtocolViolation,
    AuthorizationRequested,
    AuthorizationDecision,
    TransactionStarted,
    MeterSample,
    TransactionEnded,
    ConnectorStatus,
    StationBooted,
    ConfigurationChange,
    ConfigurationReport,
    SecurityEventReported,
    FirmwareStatusReported,
    ClockReading,
    CommandIssued,
    CommandAnswered,
)


# ------------------------------------------------------------------ alerts

AlertStatus = Literal["open", "closed"]


@dataclass(frozen=True, slots=True)
class Finding:
    """What a detector emits: one piece of evidence for an incident.

    ``incident`` groups findings of one ongoing incident (for example the token pseudonym for concurrent use, or
    the station for a flood); the engine merges findings with the same kind and incident into one Alert, whose id
    is derived deterministically from kind, incident and the first finding's time.
    """

    kind: str
    severity: Severity
    confidence: float
    ts: datetime
    incident: str
    summary: str
    station: str | None = None
    stations: tuple[str, ...] = ()
    transactions: tuple[str, ...] = ()
    token_ref: str | None = None
    evidence: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Alert:
    """An alert as written to sinks (the public Alerts JSON Lines format, see docs/formats.md)."""

    id: str
    kind: str
    severity: Severity
    confidence: float
    ts: datetime
    station: str | None
    stations: tuple[str, ...]
    transactions: tuple[str, ...]
    token_ref: str | None
    summary: str
    evidence: Mapping[str, Any]
    last_ts: datetime | None = None
    status: AlertStatus = "open"
    count: int = 1
