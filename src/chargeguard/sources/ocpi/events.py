"""Events built from OCPI objects (CDRs, sessions, tariffs, tokens) for the detectors; tokens only as pseudonyms.

These extend the shared event vocabulary in ``chargeguard.events`` without changing it: the engine routes by type,
so a detector that declares ``consumes = (CdrReceived, ...)`` receives them like any OCPP event. ``ts`` is event
time (for a CDR its ``last_updated``, never before its ``end_date_time``); ``station`` is the OCPP station identity
the Location/EVSE maps to (see ``chargeguard.sources.ocpi.normalize.StationMapping``). Energies are Wh.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from chargeguard.sources.ocpi.models import Cdr, Tariff


@dataclass(frozen=True, slots=True)
class CdrReceived:
    """A CDR as issued by a CPO. ``key`` is ``country_code*party_id*id`` (CDR ids are unique only per party)."""

    ts: datetime
    station: str
    key: str
    party: str  # the CPO: "NL*ABC"
    token_party: str  # the token's eMSP: "DE*XYZ"
    token_ref: str
    contract_ref: str
    location_id: str
    evse_uid: str
    start: datetime
    end: datetime
    energy_wh: float
    currency: str
    cost_excl_vat: Decimal
    session_id: str | None
    credit: bool
    credit_reference_id: str | None
    auth_method: str
    authorization_reference: str | None
    time_zone: str | None
    cdr: Cdr


@dataclass(frozen=True, slots=True)
class SessionReported:
    """An OCPI Session (its latest state): ``status`` ACTIVE, COMPLETED, INVALID, PENDING or RESERVATION."""

    ts: datetime
    station: str
    key: str
    party: str
    token_party: str
    token_ref: str
    location_id: str
    evse_uid: str
    start: datetime
    end: datetime | None
    energy_wh: float
    status: str


@dataclass(frozen=True, slots=True)
class TariffKnown:
    """A Tariff published by a CPO (CDRs may reference tariffs they do not embed)."""

    ts: datetime
    station: str | None
    party: str
    tariff: Tariff


@dataclass(frozen=True, slots=True)
class TokenStatus:
    """The eMSP's view of a token at ``ts`` (its ``last_updated``): valid or not, and its whitelist type.

    ``received_at`` is when the CPO received this update, when known (push logs, a connector); otherwise None
    and the update is taken as received at ``ts``.
    """

    ts: datetime
    station: None
    token_party: str
    token_ref: str
    valid: bool
    whitelist: str
    received_at: datetime | None = None
