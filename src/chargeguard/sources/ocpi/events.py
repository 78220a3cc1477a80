"""Events built from OCPI objects (CDRs, sessions, tariffs, tokens) for the detectors; tokens only as pseudonyms.

These extend the shared event vocabulary in ``chargeguard.events`` without changing it: frozen msgspec Structs like
the shared ones, routed by type, so a detector that declares ``consumes = (CdrReceived, ...)`` receives them like
any OCPP event. ``ts`` is event time (for a CDR its ``last_updated``, never before its ``end_date_time``);
``station`` is the OCPP station identity the Location/EVSE maps to (``normalize.StationMapping``). Energies in Wh.

Fields after ``ts``/``station``/``key`` have defaults so that test factories and generated events can build them;
the normaliser always fills them, and detectors skip an event that lacks what they need.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import msgspec

from chargeguard.sources.ocpi.models import Cdr, Tariff


class CdrReceived(msgspec.Struct, frozen=True):
    """A CDR as issued by a CPO. ``key`` is ``country_code*party_id/id`` (CDR ids are unique only per party)."""

    ts: datetime
    station: str
    key: str
    token_ref: str | None = None
    party: str = ""  # the CPO: "NL*ABC"
    token_party: str = ""  # the token's eMSP: "DE*XYZ"
    contract_ref: str | None = None
    location_id: str = ""
    evse_uid: str = ""
    start: datetime | None = None
    end: datetime | None = None
    energy_wh: float | None = None
    currency: str = ""
    cost_excl_vat: Decimal | None = None
    session_id: str | None = None
    credit: bool = False
    credit_reference_id: str | None = None
    auth_method: str = "WHITELIST"
    authorization_reference: str | None = None
    time_zone: str | None = None
    cdr: Cdr | None = None


class SessionReported(msgspec.Struct, frozen=True):
    """An OCPI Session (its latest state): ``status`` ACTIVE, COMPLETED, INVALID, PENDING or RESERVATION."""

    ts: datetime
    station: str
    key: str
    token_ref: str | None = None
    party: str = ""
    token_party: str = ""
    location_id: str = ""
    evse_uid: str = ""
    start: datetime | None = None
    end: datetime | None = None
    energy_wh: float | None = None
    status: str = "COMPLETED"


class TariffKnown(msgspec.Struct, frozen=True):
    """A Tariff published by a CPO (CDRs may reference tariffs they do not embed)."""

    ts: datetime
    station: str | None = None
    party: str = ""
    tariff: Tariff | None = None


class TokenStatus(msgspec.Struct, frozen=True):
    """The eMSP's view of a token at ``ts`` (its ``last_updated``): valid or not, and its whitelist type.

    ``received_at`` is when the CPO received this update, when known (push logs, a connector); otherwise None
    and the update is taken as received at ``ts``.
    """

    ts: datetime
    station: str | None = None
    token_ref: str | None = None
    token_party: str = ""
    valid: bool = True
    whitelist: str = "ALLOWED"
    received_at: datetime | None = None
