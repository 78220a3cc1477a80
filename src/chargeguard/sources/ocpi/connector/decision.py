"""Real-time authorisation: chargeguard's fraud decision on a token pseudonym, pluggable, with a time budget."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import structlog

from chargeguard.sources.ocpi.models import Token

log = structlog.get_logger("chargeguard.ocpi.authorize")

Allowed = Literal["ALLOWED", "BLOCKED", "EXPIRED", "NO_CREDIT", "NOT_ALLOWED"]


@dataclass(frozen=True, slots=True)
class AuthorizeRequest:
    """What the decision sees: never the raw uid, only its pseudonym."""

    token: str
    token_type: str
    location: dict[str, Any] | None
    partner: str


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: Allowed
    reason: str


# returns None when the token is unknown (answered with OCPI 2004)
FraudDecision = Callable[[AuthorizeRequest], Decision | None]
TokenLookup = Callable[[str, str], Token | None]
OpenAlerts = Callable[[str], Sequence[str]]


def _no_alerts(_token: str) -> Sequence[str]:
    return ()


class TokenStatusDecision:
    """Default decision: the token's own status, then open token alerts (alert kinds) for its pseudonym.

    Unknown -> None; ``valid`` false -> BLOCKED; whitelist NEVER is still answered from status (the CPO asked,
    so it wants a real-time answer); any open alert -> BLOCKED naming the alert kinds; otherwise ALLOWED.
    """

    def __init__(self, lookup: TokenLookup, open_alerts: OpenAlerts = _no_alerts) -> None:
        self._lookup = lookup
        self._open_alerts = open_alerts

    def __call__(self, request: AuthorizeRequest) -> Decision | None:
        token = self._lookup(request.token, request.token_type)
        if token is None:
            return None
        if not token.valid:
            return Decision("BLOCKED", "token is marked invalid by its eMSP")
        alerts = sorted(set(self._open_alerts(request.token)))
        if alerts:
            return Decision("BLOCKED", "open fraud alerts: " + ", ".join(alerts)[:200])
        return Decision("ALLOWED", "token valid, no open alerts")


async def decide_within(
    decide: FraudDecision, fallback: FraudDecision, request: AuthorizeRequest, budget_s: float
) -> Decision | None:
    """Run the (possibly blocking) decision in a worker thread; past the budget answer from ``fallback``."""
    try:
        return await asyncio.wait_for(asyncio.to_thread(decide, request), timeout=budget_s)
    except TimeoutError:
        log.warning("ocpi.authorize.over_budget", token=request.token, budget_s=budget_s)
        result = fallback(request)
        if result is None:
            return None
        return Decision(result.allowed, "fraud decision over time budget; " + result.reason)
