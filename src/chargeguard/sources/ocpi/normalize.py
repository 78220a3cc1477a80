"""OCPI objects -> chargeguard events; how an OCPI Location/EVSE maps onto an OCPP station identity.

``StationMapping.mode`` (configurable, default ``evse_uid``):

* ``evse_uid``: the station is the EVSE's ``uid`` (CdrLocation.evse_uid, Session.evse_uid) - right when the CPO
  names its OCPP charge stations by EVSE uid, the common case for one-EVSE stations.
* ``evse_id``: the station is the eMI3 EVSE ID (``NL*ABC*E123``) - from CdrLocation.evse_id, and for Sessions
  (which carry only the uid) from the Locations given; falls back to the uid when unknown.
* ``location``: the station is the Location id - right when one OCPP charge station serves a whole site.
* ``explicit``: ``table`` maps ``"<location_id>/<evse_uid>"`` to the station identity; unmapped EVSEs fall back
  to the uid.

Locations also give the time zone that tariff restrictions are evaluated in (Location.time_zone).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from chargeguard.sources.ocpi.events import CdrReceived, SessionReported, TariffKnown, TokenStatus
from chargeguard.sources.ocpi.models import Cdr, Location, Session, Tariff, Token, utc

MappingMode = Literal["evse_uid", "evse_id", "location", "explicit"]


def party_of(country_code: str, party_id: str) -> str:
    """The party code ``CC*PID`` (upper case: OCPI CiStrings are case-insensitive)."""
    return f"{country_code.upper()}*{party_id.upper()}"


def object_key(party: str, ident: str) -> str:
    """``CC*PID/id``: a CDR or Session id made unique (ids are unique per party only). Not ``CC*PID*id``: with a
    9-character id that is an eMAID's shape, and the redaction net would blank it out of alerts."""
    return f"{party}/{ident}"


@dataclass(frozen=True, slots=True)
class StationMapping:
    mode: MappingMode = "evse_uid"
    table: Mapping[str, str] = field(default_factory=dict)
    evse_ids: Mapping[str, str] = field(default_factory=dict)  # "<location_id>/<evse_uid>" -> evse_id
    time_zones: Mapping[str, str] = field(default_factory=dict)  # location_id -> IANA zone

    @classmethod
    def from_locations(
        cls,
        locations: Iterable[Location],
        mode: MappingMode = "evse_uid",
        table: Mapping[str, str] | None = None,
    ) -> StationMapping:
        evse_ids: dict[str, str] = {}
        zones: dict[str, str] = {}
        for loc in locations:
            zones[loc.id] = loc.time_zone
            for evse in loc.evses:
                if evse.evse_id:
                    evse_ids[f"{loc.id}/{evse.uid}"] = evse.evse_id
        return cls(mode=mode, table=dict(table or {}), evse_ids=evse_ids, time_zones=zones)

    def station(self, location_id: str, evse_uid: str, evse_id: str | None = None) -> str:
        key = f"{location_id}/{evse_uid}"
        if self.mode == "location":
            return location_id
        if self.mode == "evse_id":
            return evse_id or self.evse_ids.get(key) or evse_uid
        if self.mode == "explicit":
            return self.table.get(key, evse_uid)
        return evse_uid


def cdr_event(cdr: Cdr, mapping: StationMapping) -> CdrReceived:
    """A pseudonymised CDR as an event (the importer has already replaced its token fields)."""
    loc = cdr.cdr_location
    end = utc(cdr.end_date_time)
    return CdrReceived(
        ts=max(utc(cdr.last_updated), end),
        station=mapping.station(loc.id, loc.evse_uid, loc.evse_id),
        key=object_key(party_of(cdr.country_code, cdr.party_id), cdr.id),
        party=party_of(cdr.country_code, cdr.party_id),
        token_party=party_of(cdr.cdr_token.country_code, cdr.cdr_token.party_id),
        token_ref=cdr.cdr_token.uid,
        contract_ref=cdr.cdr_token.contract_id,
        location_id=loc.id,
        evse_uid=loc.evse_uid,
        start=utc(cdr.start_date_time),
        end=end,
        energy_wh=float(cdr.total_energy) * 1000.0,
        currency=cdr.currency,
        cost_excl_vat=cdr.total_cost.excl_vat,
        session_id=cdr.session_id,
        credit=bool(cdr.credit),
        credit_reference_id=cdr.credit_reference_id,
        auth_method=cdr.auth_method,
        authorization_reference=cdr.authorization_reference,
        time_zone=mapping.time_zones.get(loc.id),
        cdr=cdr,
    )


def session_event(session: Session, mapping: StationMapping) -> SessionReported:
    return SessionReported(
        ts=utc(session.last_updated),
        station=mapping.station(session.location_id, session.evse_uid),
        key=object_key(party_of(session.country_code, session.party_id), session.id),
        party=party_of(session.country_code, session.party_id),
        token_party=party_of(session.cdr_token.country_code, session.cdr_token.party_id),
        token_ref=session.cdr_token.uid,
        location_id=session.location_id,
        evse_uid=session.evse_uid,
        start=utc(session.start_date_time),
        end=utc(session.end_date_time) if session.end_date_time else None,
        energy_wh=float(session.kwh) * 1000.0,
        status=session.status,
    )


def tariff_event(tariff: Tariff) -> TariffKnown:
    return TariffKnown(
        ts=utc(tariff.last_updated),
        station=None,
        party=party_of(tariff.country_code, tariff.party_id),
        tariff=tariff,
    )


def token_event(token: Token, received_at: datetime | None = None) -> TokenStatus:
    """``received_at``: when the CPO received this version of the token (a connector's receipt time, a push log)."""
    return TokenStatus(
        ts=utc(token.last_updated),
        station=None,
        token_party=party_of(token.country_code, token.party_id),
        token_ref=token.uid,
        valid=token.valid,
        whitelist=token.whitelist,
        received_at=None if received_at is None else utc(received_at),
    )
