"""Calls chargeguard makes to a registered partner's modules: paginated pulls into models, real-time authorisation."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import msgspec
import orjson
import structlog

from chargeguard.errors import InputError
from chargeguard.sources.ocpi.connector.context import Connector
from chargeguard.sources.ocpi.connector.envelope import NO_MATCHING_ENDPOINTS, PartnerError, drop_nulls
from chargeguard.sources.ocpi.connector.headers import Party
from chargeguard.sources.ocpi.connector.repository import KIND_OF
from chargeguard.sources.ocpi.importer import decode_record

log = structlog.get_logger("chargeguard.ocpi.calls")


@dataclass(slots=True)
class PullResult:
    """Objects pulled (pseudonymised models) and the records that could not be used (named, counted)."""

    objects: list[Any] = field(default_factory=list)
    errors: list[InputError] = field(default_factory=list)


def _target(connector: Connector, partner_id: str, module: str, role: str) -> tuple[str, str, Party | None]:
    partner = connector.store.get(partner_id)
    url = partner.endpoint(module, role)
    if url is None:
        raise PartnerError(
            f"partner {partner.name} lists no {module} {role} endpoint", status_code=NO_MATCHING_ENDPOINTS
        )
    parties = partner.parties
    return url, connector.store.outgoing(partner_id), parties[0] if parties else None


async def iter_module(
    connector: Connector,
    partner_id: str,
    module: str,
    *,
    limit: int | None = None,
    params: dict[str, str] | None = None,
) -> AsyncIterator[dict[str, Any]]:
    """Raw objects of a partner's sender endpoint, every page (loops detected by the client)."""
    url, token, to = _target(connector, partner_id, module, "SENDER")
    async for item in connector.client.pull(url, token=token, to=to, limit=limit, params=params):
        yield item


async def pull_module(
    connector: Connector,
    partner_id: str,
    module: str,
    *,
    limit: int | None = None,
    params: dict[str, str] | None = None,
) -> PullResult:
    """Every object of a partner module decoded into its 2.2.1 model and pseudonymised; bad records named."""
    result = PullResult()
    index = 0
    async for item in iter_module(connector, partner_id, module, limit=limit, params=params):
        try:
            result.objects.append(
                decode_record(
                    orjson.dumps(drop_nulls(item)),
                    KIND_OF[module],
                    connector.pseudonymiser,
                    source=f"{module} record {index}",
                )
            )
        except InputError as exc:
            result.errors.append(exc)
            log.warning("ocpi.pull.bad_record", module=module, record=index)
        index += 1
    return result


@dataclass(frozen=True, slots=True)
class AuthorizationAnswer:
    """The eMSP's answer, with its token already pseudonymised."""

    allowed: str
    token: str
    authorization_reference: str | None
    info: str | None


async def request_authorization(
    connector: Connector,
    partner_id: str,
    token_uid: str,
    *,
    token_type: str = "RFID",  # noqa: S107 - an OCPI TokenType, not a secret
    location: dict[str, Any] | None = None,
    timeout_s: float = 5.0,
) -> AuthorizationAnswer:
    """As CPO: ``POST {tokens}/{uid}/authorize?type=...`` at the eMSP. The raw uid leaves only in that URL."""
    base, token, to = _target(connector, partner_id, "tokens", "SENDER")
    url = f"{base.rstrip('/')}/{token_uid}/authorize?type={token_type}"
    data = await connector.client.call(
        "POST", url, token=token, to=to, json=location, idempotent=True, timeout_s=timeout_s
    )
    if isinstance(data, list) and len(data) == 1:  # some peers wrap the object in a list
        data = data[0]
    if not isinstance(data, dict) or not isinstance(data.get("allowed"), str):
        raise PartnerError("authorize: the answer carries no AuthorizationInfo")
    answered = data.get("token") if isinstance(data.get("token"), dict) else {}
    uid = answered.get("uid") if isinstance(answered, dict) else None
    info = data.get("info")
    try:
        reference = msgspec.convert(data.get("authorization_reference"), type=str | None)
    except msgspec.ValidationError:
        reference = None
    return AuthorizationAnswer(
        allowed=data["allowed"],
        token=connector.pseudonymiser(uid if isinstance(uid, str) else token_uid),
        authorization_reference=reference,
        info=str(info.get("text"))[:255] if isinstance(info, dict) else None,
    )
