"""token.unauthorized_charging from the OCPI side: a CDR on a token its eMSP had marked invalid when charging began.

The kind is shared with the OCPP rule in ``rules/authorization.py`` (energy on a token the central system refused):
one behaviour, two sources. :class:`TokenBook` remembers the eMSP's token updates (``TokenStatus``: ``valid``, the
whitelist type, when the CPO received it) and :meth:`TokenBook.assess` judges a ``CdrReceived``, deciding which
party should have stopped the charging. :class:`OcpiUnauthorizedCharging` is the registered detector.

References: OCPI 2.2.1 mod_tokens (Token.valid, WhitelistType, real-time authorization), mod_cdrs (auth_method,
authorization_reference).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from chargeguard.detectors.base import Detector, DetectorContext, DetectorInfo
from chargeguard.detectors.state import BoundedState
from chargeguard.events import Event, Finding, Severity
from chargeguard.sources.ocpi.events import CdrReceived, TokenStatus

MAX_UPDATES = 16
_CACHEABLE = ("ALWAYS", "ALLOWED")


@dataclass(frozen=True, slots=True)
class _Update:
    ts: datetime
    received_at: datetime
    valid: bool
    whitelist: str


@dataclass(frozen=True, slots=True)
class TokenVerdict:
    """A CDR charged on a token that was invalid at its start, and which party should have stopped it.

    ``cpo_copy`` is what the CPO held at the start: ``invalid`` (it had the invalidation), ``valid`` (it had an
    older, valid copy), or ``assumed_valid`` (no update received before the start is in the input).
    """

    token_ref: str
    cdr_key: str
    blame: str  # "cpo" or "emsp"
    reason: str
    whitelist: str
    invalid_since: datetime
    received_at: datetime
    cpo_copy: str = "assumed_valid"
    cpo_whitelist: str | None = None
    auth_method: str = "WHITELIST"

    def as_evidence(self) -> dict[str, Any]:
        return {
            "source": "ocpi",
            "cdr": self.cdr_key,
            "blame": self.blame,
            "reason": self.reason,
            "auth_method": self.auth_method,
            "whitelist": self.whitelist,
            "invalid_since": self.invalid_since.isoformat(),
            "cpo_received_update": self.received_at.isoformat(),
            "cpo_copy_at_start": self.cpo_copy,
            "cpo_whitelist_at_start": self.cpo_whitelist,
        }


class TokenBook:
    """The eMSP's token updates per token pseudonym (bounded), and the verdict on a CDR."""

    def __init__(self, context: DetectorContext) -> None:
        self._updates: BoundedState[str, list[_Update]] = BoundedState(
            context.limits.max_keys, context.limits.ttl_s
        )

    def __len__(self) -> int:
        return len(self._updates)

    def record(self, status: TokenStatus) -> None:
        if status.token_ref is None:
            return
        updates = self._updates.setdefault(status.token_ref, list, status.ts)
        updates.append(_Update(status.ts, status.received_at or status.ts, status.valid, status.whitelist))
        updates.sort(key=lambda u: u.ts)
        if len(updates) > MAX_UPDATES:
            del updates[0]

    def assess(self, cdr: CdrReceived) -> TokenVerdict | None:
        """None when the token was valid (or unknown) at the CDR's start; else the verdict with the blame.

        The eMSP's truth at the start is its latest update (by ``last_updated``) at or before the start. What the
        CPO could act on is the latest update it had *received* by then. Blame:

        * ``auth_method`` COMMAND or AUTH_REQUEST: the **eMSP** started or authorised the session itself;
        * WHITELIST (the CPO decided from its cache): the **CPO** when its copy said invalid, when the whitelist
          type in force was NEVER (real-time authorisation is mandatory) or ALLOWED_OFFLINE (real-time
          authorisation is mandatory while the eMSP is reachable); the **eMSP** when the CPO's copy was still
          valid on a cacheable type (ALWAYS / ALLOWED) because the invalidation reached it only after the start.
        """
        if cdr.token_ref is None or cdr.start is None:
            return None
        updates = self._updates.get(cdr.token_ref)
        if not updates:
            return None
        start = cdr.start
        truth = None
        for u in updates:
            if u.ts <= start:
                truth = u
        if truth is None or truth.valid:
            return None
        received = [u for u in updates if u.received_at <= start]
        held = max(received, key=lambda u: (u.received_at, u.ts)) if received else None
        copy = "assumed_valid" if held is None else ("valid" if held.valid else "invalid")
        whitelist = truth.whitelist if held is None else held.whitelist
        if cdr.auth_method == "COMMAND":
            blame, reason = "emsp", "the eMSP started the session remotely on a token it had marked invalid"
        elif cdr.auth_method == "AUTH_REQUEST":
            blame, reason = "emsp", "the eMSP authorised in real time a token it had marked invalid"
        elif copy == "invalid":
            blame, reason = "cpo", "the CPO's copy of the token said invalid before the session started"
        elif whitelist == "NEVER":
            blame, reason = "cpo", "whitelist NEVER requires real-time authorisation; the CPO used its cache"
        elif whitelist == "ALLOWED_OFFLINE":
            blame = "cpo"
            reason = (
                "whitelist ALLOWED_OFFLINE requires real-time authorisation while the eMSP is reachable; "
                "the CPO used its cache"
            )
        else:
            blame, reason = "emsp", "the invalidation reached the CPO only after the session had started"
        return TokenVerdict(
            token_ref=cdr.token_ref,
            cdr_key=cdr.key,
            blame=blame,
            reason=reason,
            whitelist=truth.whitelist,
            invalid_since=truth.ts,
            received_at=truth.received_at,
            cpo_copy=copy,
            cpo_whitelist=None if held is None else held.whitelist,
            auth_method=cdr.auth_method,
        )


class OcpiUnauthorizedCharging(Detector[Any]):
    """A CDR billing charging on a token that its eMSP had marked invalid (Token.valid false) when it began.

    Catches: a ``CdrReceived`` whose token's latest eMSP update (``Token`` objects from the tokens module, by
    ``last_updated``) at or before the CDR's ``start_date_time`` says ``valid: false``. The evidence names the
    party that should have stopped it (``blame``: ``cpo`` or ``emsp``) and why, from the CDR's ``auth_method``, the
    whitelist type in force and when the CPO received the invalidation (``received_at``: the connector's receipt
    time live, or a ``received_at`` field on token records in files): the eMSP when it authorised the session in
    real time or started it by command, or when its invalidation of a cacheable (ALWAYS / ALLOWED) token reached
    the CPO only after the start; the CPO when its own copy already said invalid, or when the whitelist type
    (NEVER, ALLOWED_OFFLINE) required real-time authorisation and the CPO charged from its cache instead.

    Why it matters: charging on blocked (stolen, cancelled, unpaid) cards is the commonest roaming fraud; who
    pays for it between CPO and eMSP depends on who let it through.

    False positives: a token whose invalidation and re-validation are not both in the input; ALLOWED_OFFLINE
    sessions started while the eMSP really was unreachable (then the CPO was right to use its cache - the evidence
    says ``ALLOWED_OFFLINE``); clocks of the two parties off by minutes around the start. Credit CDRs are skipped.
    Tokens with no update in the input are never judged. The same kind from OCPP traffic comes from
    ``token-unauthorized-charging``; both use the token pseudonym as incident, so one card's misuse seen on both
    sides becomes one alert.

    References: OCPI 2.2.1 mod_tokens (Token.valid, WhitelistType, real-time authorization), mod_cdrs
    (auth_method, authorization_reference).
    """

    info: ClassVar[DetectorInfo] = DetectorInfo(
        name="token-unauthorized-charging-ocpi",
        kinds=("token.unauthorized_charging",),
        title="CDR for a token its eMSP had marked invalid",
        severity=Severity.HIGH,
        references=("OCPI 2.2.1 mod_tokens Token.valid / WhitelistType", "OCPI 2.2.1 mod_cdrs auth_method"),
    )
    consumes: ClassVar[tuple[type[Any], ...]] = (TokenStatus, CdrReceived)

    def __init__(self, config: Any, context: DetectorContext) -> None:
        super().__init__(config, context)
        self._book = TokenBook(context)

    def state_size(self) -> int:
        return len(self._book)

    def process(self, event: Event) -> Iterable[Finding]:
        if isinstance(event, TokenStatus):
            self._book.record(event)
            return ()
        if not isinstance(event, CdrReceived) or event.credit:
            return ()
        verdict = self._book.assess(event)
        if verdict is None:
            return ()
        energy = f"{event.energy_wh / 1000:.2f} kWh" if event.energy_wh is not None else "charging"
        return (
            self.finding(
                "token.unauthorized_charging",
                ts=event.ts,
                incident=verdict.token_ref.lower(),
                summary=(
                    f"CDR {event.key} bills {energy} on a token its eMSP marked invalid before the session "
                    f"started; blame: {verdict.blame.upper()} ({verdict.reason})"
                ),
                confidence=0.9 if verdict.cpo_copy != "assumed_valid" else 0.8,
                station=event.station,
                transactions=(event.key,),
                token_ref=verdict.token_ref,
                evidence={
                    **verdict.as_evidence(),
                    "cost_excl_vat": None if event.cost_excl_vat is None else str(event.cost_excl_vat),
                    "currency": event.currency,
                },
            ),
        )
