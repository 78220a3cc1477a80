"""OCPI 2.2.1 objects as msgspec Structs: field names, types, cardinalities and string lengths from the spec.

Sources: ocpi/ocpi (2.2.1) ``mod_cdrs``, ``mod_sessions``, ``mod_tariffs``, ``mod_locations``, ``mod_tokens`` and
``types``. Cardinality ``1`` is a required field, ``?`` an optional one (``None``), ``*`` a list that may be empty
and ``+`` a list that must not be (checked by :func:`check_nonempty`). ``CiString(n)`` / ``string(n)`` become
``Annotated[str, Meta(max_length=n)]``. Money and volumes are ``Decimal`` (decoded exactly from the JSON number).
OCPI DateTimes without an offset are UTC (types.asciidoc); :func:`utc` makes them aware.

Auxiliary display structures that no chargeguard check reads (images, hours, energy mix, display texts) are
typed as plain JSON objects so they round-trip without being interpreted.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

import msgspec

CiString2 = Annotated[str, msgspec.Meta(min_length=2, max_length=2)]
CiString3 = Annotated[str, msgspec.Meta(min_length=3, max_length=3)]
CiString36 = Annotated[str, msgspec.Meta(max_length=36)]
CiString39 = Annotated[str, msgspec.Meta(max_length=39)]
CiString48 = Annotated[str, msgspec.Meta(max_length=48)]
Currency = Annotated[str, msgspec.Meta(min_length=3, max_length=3)]
String = Annotated[str, msgspec.Meta(max_length=255)]
TimeOfDay = Annotated[str, msgspec.Meta(pattern=r"^([0-1][0-9]|2[0-3]):[0-5][0-9]$")]
Date = Annotated[str, msgspec.Meta(pattern=r"^([12][0-9]{3})-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$")]
JsonObject = dict[str, Any]

TokenType = Literal["AD_HOC_USER", "APP_USER", "OTHER", "RFID"]
AuthMethod = Literal["AUTH_REQUEST", "COMMAND", "WHITELIST"]
WhitelistType = Literal["ALWAYS", "ALLOWED", "ALLOWED_OFFLINE", "NEVER"]
CdrDimensionType = Literal[
    "CURRENT",
    "ENERGY",
    "ENERGY_EXPORT",
    "ENERGY_IMPORT",
    "MAX_CURRENT",
    "MIN_CURRENT",
    "MAX_POWER",
    "MIN_POWER",
    "PARKING_TIME",
    "POWER",
    "RESERVATION_TIME",
    "STATE_OF_CHARGE",
    "TIME",
]
TariffDimensionType = Literal["ENERGY", "FLAT", "PARKING_TIME", "TIME"]
DayOfWeek = Literal["MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY"]
ReservationRestrictionType = Literal["RESERVATION", "RESERVATION_EXPIRES"]
TariffType = Literal["AD_HOC_PAYMENT", "PROFILE_CHEAP", "PROFILE_FAST", "PROFILE_GREEN", "REGULAR"]
SessionStatus = Literal["ACTIVE", "COMPLETED", "INVALID", "PENDING", "RESERVATION"]
ConnectorType = str  # the ConnectorType enum grows between releases; kept verbatim
ConnectorFormat = Literal["SOCKET", "CABLE"]
PowerType = Literal["AC_1_PHASE", "AC_2_PHASE", "AC_2_PHASE_SPLIT", "AC_3_PHASE", "DC"]
Status = Literal[
    "AVAILABLE",
    "BLOCKED",
    "CHARGING",
    "INOPERATIVE",
    "OUTOFORDER",
    "PLANNED",
    "REMOVED",
    "RESERVED",
    "UNKNOWN",
]


class _Base(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Common settings: frozen, keyword-only, unknown fields ignored (OCPI allows custom extensions)."""


class Price(_Base, frozen=True, kw_only=True):
    """types.asciidoc Price: excl_vat 1, incl_vat ?."""

    excl_vat: Decimal
    incl_vat: Decimal | None = None


class GeoLocation(_Base, frozen=True, kw_only=True):
    latitude: Annotated[str, msgspec.Meta(max_length=10)]
    longitude: Annotated[str, msgspec.Meta(max_length=11)]


class PriceComponent(_Base, frozen=True, kw_only=True):
    """mod_tariffs PriceComponent: step_size is in Wh (ENERGY) or seconds (TIME, PARKING_TIME)."""

    type: TariffDimensionType
    price: Decimal
    vat: Decimal | None = None
    step_size: Annotated[int, msgspec.Meta(ge=0)]


class TariffRestrictions(_Base, frozen=True, kw_only=True):
    start_time: TimeOfDay | None = None
    end_time: TimeOfDay | None = None
    start_date: Date | None = None
    end_date: Date | None = None
    min_kwh: Decimal | None = None
    max_kwh: Decimal | None = None
    min_current: Decimal | None = None
    max_current: Decimal | None = None
    min_power: Decimal | None = None
    max_power: Decimal | None = None
    min_duration: int | None = None
    max_duration: int | None = None
    day_of_week: list[DayOfWeek] = []
    reservation: ReservationRestrictionType | None = None


class TariffElement(_Base, frozen=True, kw_only=True):
    price_components: list[PriceComponent]
    restrictions: TariffRestrictions | None = None


class Tariff(_Base, frozen=True, kw_only=True):
    country_code: CiString2
    party_id: CiString3
    id: CiString36
    currency: Currency
    type: TariffType | None = None
    tariff_alt_text: list[JsonObject] = []
    tariff_alt_url: String | None = None
    min_price: Price | None = None
    max_price: Price | None = None
    elements: list[TariffElement]
    start_date_time: datetime | None = None
    end_date_time: datetime | None = None
    energy_mix: JsonObject | None = None
    last_updated: datetime


class CdrToken(_Base, frozen=True, kw_only=True):
    """mod_cdrs CdrToken: uid and contract_id are pseudonymised by the importer before anything else sees them."""

    country_code: CiString2
    party_id: CiString3
    uid: CiString36
    type: TokenType
    contract_id: CiString36


class CdrLocation(_Base, frozen=True, kw_only=True):
    id: CiString36
    name: String | None = None
    address: String
    city: Annotated[str, msgspec.Meta(max_length=45)]
    postal_code: Annotated[str, msgspec.Meta(max_length=10)] | None = None
    state: Annotated[str, msgspec.Meta(max_length=20)] | None = None
    country: Currency
    coordinates: GeoLocation
    evse_uid: CiString36
    evse_id: CiString48
    connector_id: CiString36
    connector_standard: ConnectorType
    connector_format: ConnectorFormat
    connector_power_type: PowerType


class CdrDimension(_Base, frozen=True, kw_only=True):
    type: CdrDimensionType
    volume: Decimal


class ChargingPeriod(_Base, frozen=True, kw_only=True):
    start_date_time: datetime
    dimensions: list[CdrDimension]
    tariff_id: CiString36 | None = None


class SignedValue(_Base, frozen=True, kw_only=True):
    nature: Annotated[str, msgspec.Meta(max_length=32)]
    plain_data: Annotated[str, msgspec.Meta(max_length=512)]
    signed_data: Annotated[str, msgspec.Meta(max_length=5000)]


class SignedData(_Base, frozen=True, kw_only=True):
    encoding_method: CiString36
    encoding_method_version: int | None = None
    public_key: Annotated[str, msgspec.Meta(max_length=512)] | None = None
    signed_values: list[SignedValue]
    url: Annotated[str, msgspec.Meta(max_length=512)] | None = None


class Cdr(_Base, frozen=True, kw_only=True):
    country_code: CiString2
    party_id: CiString3
    id: CiString39
    start_date_time: datetime
    end_date_time: datetime
    session_id: CiString36 | None = None
    cdr_token: CdrToken
    auth_method: AuthMethod
    authorization_reference: CiString36 | None = None
    cdr_location: CdrLocation
    meter_id: String | None = None
    currency: Currency
    tariffs: list[Tariff] = []
    charging_periods: list[ChargingPeriod]
    signed_data: SignedData | None = None
    total_cost: Price
    total_fixed_cost: Price | None = None
    total_energy: Decimal
    total_energy_cost: Price | None = None
    total_time: Decimal
    total_time_cost: Price | None = None
    total_parking_time: Decimal | None = None
    total_parking_cost: Price | None = None
    total_reservation_cost: Price | None = None
    remark: String | None = None
    invoice_reference_id: CiString39 | None = None
    credit: bool | None = None
    credit_reference_id: CiString39 | None = None
    home_charging_compensation: bool | None = None
    last_updated: datetime


class Session(_Base, frozen=True, kw_only=True):
    country_code: CiString2
    party_id: CiString3
    id: CiString36
    start_date_time: datetime
    end_date_time: datetime | None = None
    kwh: Decimal
    cdr_token: CdrToken
    auth_method: AuthMethod
    authorization_reference: CiString36 | None = None
    location_id: CiString36
    evse_uid: CiString36
    connector_id: CiString36
    meter_id: String | None = None
    currency: Currency
    charging_periods: list[ChargingPeriod] = []
    total_cost: Price | None = None
    status: SessionStatus
    last_updated: datetime


class Connector(_Base, frozen=True, kw_only=True):
    id: CiString36
    standard: ConnectorType
    format: ConnectorFormat
    power_type: PowerType
    max_voltage: int
    max_amperage: int
    max_electric_power: int | None = None
    tariff_ids: list[CiString36] = []
    terms_and_conditions: String | None = None
    last_updated: datetime


class Evse(_Base, frozen=True, kw_only=True):
    uid: CiString36
    evse_id: CiString48 | None = None
    status: Status
    status_schedule: list[JsonObject] = []
    capabilities: list[str] = []
    connectors: list[Connector]
    floor_level: Annotated[str, msgspec.Meta(max_length=4)] | None = None
    coordinates: GeoLocation | None = None
    physical_reference: Annotated[str, msgspec.Meta(max_length=16)] | None = None
    directions: list[JsonObject] = []
    parking_restrictions: list[str] = []
    images: list[JsonObject] = []
    last_updated: datetime


class Location(_Base, frozen=True, kw_only=True):
    country_code: CiString2
    party_id: CiString3
    id: CiString36
    publish: bool
    publish_allowed_to: list[JsonObject] = []
    name: String | None = None
    address: String
    city: Annotated[str, msgspec.Meta(max_length=45)]
    postal_code: Annotated[str, msgspec.Meta(max_length=10)] | None = None
    state: Annotated[str, msgspec.Meta(max_length=20)] | None = None
    country: Currency
    coordinates: GeoLocation
    related_locations: list[JsonObject] = []
    parking_type: str | None = None
    evses: list[Evse] = []
    directions: list[JsonObject] = []
    operator: JsonObject | None = None
    suboperator: JsonObject | None = None
    owner: JsonObject | None = None
    facilities: list[str] = []
    time_zone: String
    opening_times: JsonObject | None = None
    charging_when_closed: bool | None = None
    images: list[JsonObject] = []
    energy_mix: JsonObject | None = None
    last_updated: datetime


class Token(_Base, frozen=True, kw_only=True):
    """mod_tokens Token: uid, contract_id and visual_number are pseudonymised by the importer."""

    country_code: CiString2
    party_id: CiString3
    uid: CiString36
    type: TokenType
    contract_id: CiString36
    visual_number: Annotated[str, msgspec.Meta(max_length=64)] | None = None
    issuer: Annotated[str, msgspec.Meta(max_length=64)]
    group_id: CiString36 | None = None
    valid: bool
    whitelist: WhitelistType
    language: Annotated[str, msgspec.Meta(max_length=2)] | None = None
    default_profile_type: str | None = None
    energy_contract: JsonObject | None = None
    last_updated: datetime


OcpiObject = Cdr | Session | Tariff | Location | Token


def utc(value: datetime) -> datetime:
    """OCPI DateTime: UTC when no offset is given (types.asciidoc); any offset is converted to UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def check_nonempty(obj: OcpiObject) -> str | None:
    """The ``+`` cardinalities msgspec cannot express: the name of the first empty required list, or None."""
    if isinstance(obj, Cdr) and not obj.charging_periods:
        return "charging_periods"
    if isinstance(obj, Cdr | Session):
        for period in obj.charging_periods:
            if not period.dimensions:
                return "charging_periods[].dimensions"
    if isinstance(obj, Cdr):
        for tariff in obj.tariffs:
            if not tariff.elements:
                return "tariffs[].elements"
    if isinstance(obj, Tariff):
        if not obj.elements:
            return "elements"
        for element in obj.elements:
            if not element.price_components:
                return "elements[].price_components"
    if isinstance(obj, Location):
        for evse in obj.evses:
            if not evse.connectors:
                return "evses[].connectors"
    return None


def check_consistent(obj: OcpiObject) -> str | None:
    """What the spec's types cannot say but no real CDR or Session does: the first problem, or None.

    An end before the start, and a negative energy (allowed on a credit CDR, which reverses its original).
    """
    ended = obj.end_date_time if isinstance(obj, Cdr | Session) else None
    if isinstance(obj, Cdr | Session) and ended is not None and utc(ended) < utc(obj.start_date_time):
        return "end_date_time is before start_date_time"
    if isinstance(obj, Cdr) and obj.total_energy < 0 and not obj.credit:
        return "total_energy is negative on a CDR that is not a credit"
    if isinstance(obj, Session) and obj.kwh < 0:
        return "kwh is negative"
    return None
