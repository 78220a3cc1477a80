"""OCPI evidence for token.unauthorized_charging: a CDR whose token the eMSP had marked invalid when charging began.

The kind ``token.unauthorized_charging`` belongs to the OCPP detector in ``rules/authorization.py`` (one kind, one
detector). This module gives it the OCPI half as plain functions: :class:`TokenBook` remembers the eMSP's token
updates (``TokenStatus``), and :meth:`TokenBook.assess` judges a ``CdrReceived``, deciding who is to blame:

* the update reached the CPO only after the session started (``received_at`` > start) and the whitelist let the
  CPO use its cached copy (ALWAYS / ALLOWED / ALLOWED_OFFLINE): the **eMSP** (late update);
* whitelist NEVER, or the CPO knew of the update before the start: the CPO had to ask the eMSP in real time or
  refuse. With ``auth_method`` AUTH_REQUEST (or COMMAND: the eMSP started it remotely) the **eMSP** authorised an
  invalid token; with WHITELIST the **CPO** let it charge on a cache entry that said invalid (or did not ask
  although the whitelist type required it).

References: OCPI 2.2.1 mod_tokens (Token.valid, WhitelistType, real-time authorization), mod_cdrs (auth_method,
authorization_reference).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from chargeguard.detectors.base import DetectorContext
from chargeguard.detectors.state import BoundedState
from chargeguard.sources.ocpi.events import CdrReceived, TokenStatus

MAX_UPDATES = 16


@dataclass(frozen=True, slots=True)
class _Update:
    ts: datetime
    received_at: datetime
    valid: bool
    whitelist: str


@dataclass(frozen=True, slots=True)
class TokenVerdict:
    """A CDR charged on a token that was invalid at its start, and which party should have stopped it."""

    token_ref: str
    cdr_key: str
    blame: str  # "cpo" or "emsp"
    reason: str
    whitelist: str
    invalid_since: datetime
    received_at: datetime

    def as_evidence(self) -> dict[str, Any]:
        return {
            "source": "ocpi",
            "cdr": self.cdr_key,
            "blame": self.blame,
            "reason": self.reason,
            "whitelist": self.whitelist,
            "invalid_since": self.invalid_since.isoformat(),
            "cpo_received_update": self.received_at.isoformat(),
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
        """None when the token was valid (or unknown) at the CDR's start; else the verdict with the blame."""
        if cdr.token_ref is None or cdr.start is None:
            return None
        updates = self._updates.get(cdr.token_ref)
        if not updates:
            return None
        start = cdr.start
        before = [u for u in updates if u.ts <= start]
        if not before or before[-1].valid:
            return None
        last = before[-1]
        late = last.received_at > start
        cached_ok = last.whitelist in ("ALWAYS", "ALLOWED", "ALLOWED_OFFLINE")
        if late and cached_ok:
            blame, reason = "emsp", "the invalidation reached the CPO only after the session had started"
        elif cdr.auth_method in ("AUTH_REQUEST", "COMMAND"):
            blame = "emsp"
            reason = (
                "the eMSP started the session remotely on an invalid token"
                if cdr.auth_method == "COMMAND"
                else "the eMSP authorised an invalid token in real time"
            )
        elif last.whitelist == "NEVER":
            blame, reason = "cpo", "whitelist NEVER requires real-time authorisation; the CPO used its cache"
        else:
            blame, reason = "cpo", "the CPO's token cache said invalid before the session started"
        return TokenVerdict(cdr.token_ref, cdr.key, blame, reason, last.whitelist, last.ts, last.received_at)
