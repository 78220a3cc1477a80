"""Enforce mode: rewrite the central system's answer for a token that is under an open enforceable alert.

What this really does (and does not) - operators must read this before turning it on:

* Only the answers that carry an authorisation verdict are rewritten: 1.6 ``Authorize`` and ``StartTransaction``
  (``idTagInfo.status``), 2.0.1/2.1 ``Authorize`` and ``TransactionEvent`` (``idTokenInfo.status``). Only an
  ``Accepted`` status is turned into ``Blocked``; every rewrite is recorded as an ``action`` capture line
  (``detail.action = "rewritten"``) with the alert id, so a replay of the capture shows it.
* The central system still believes the token was accepted (it never sees the rewrite): its own records and CDRs
  will say Accepted - reconcile with the action lines.
* A ``Blocked`` answer to a transaction that already started stops charging only where the station is configured
  to: 1.6 ``StopTransactionOnInvalidId = true``, 2.0.1 ``TxCtrlr.StopTxOnInvalidId = true``. Otherwise the
  station keeps charging, up to ``TxCtrlr.MaxEnergyOnInvalidId`` in 2.0.1 (station.security_downgrade reports
  stations configured that way).
* A rewritten answer lands in the station's authorisation cache and would outlive the alert: when the alert
  closes (or the operator allow-lists the token), the gateway itself sends ``ClearCache`` to every station that
  received a rewritten answer for that token (gateway/cache_clear.py; ``clear_cache_sent`` /
  ``clear_cache_answered`` action lines; a station offline at that moment gets it when it reconnects).
* Local authorisation lists, ``LocalPreAuthorize`` and offline authorisation skip ``Authorize`` altogether:
  enforcement cannot stop a token the station accepts locally; only the StartTransaction/TransactionEvent answer
  (and StopTxOnInvalidId) can.
* Transaction messages themselves are never refused: the answer is rewritten, the billing data still flows.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from chargeguard.events import Alert

ENFORCED_ACTIONS = frozenset({"Authorize", "StartTransaction", "TransactionEvent"})


def request_token(action: str, payload: Any) -> str | None:
    """The raw token a station CALL asks about (never stored beyond the answer)."""
    if not isinstance(payload, Mapping) or action not in ENFORCED_ACTIONS:
        return None
    tag = payload.get("idTag")
    if isinstance(tag, str) and tag:
        return tag
    token = payload.get("idToken")
    if isinstance(token, Mapping):
        value = token.get("idToken")
        if isinstance(value, str) and value:
            return value
    return None


class AnswerRewriter(Protocol):
    """Decides whether the central system's answer to a station CALL is replaced."""

    def rewrite(
        self, station: str, action: str, token: str, answer: Mapping[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """None to forward as is, or (the new answer payload, the action line's detail)."""


class BlockTokensUnderAlert:
    """Turns ``Accepted`` into ``Blocked`` for tokens with an open enforceable alert (``verdict`` decides)."""

    def __init__(self, verdict: Callable[[str], Alert | None]) -> None:
        self._verdict = verdict
        self.rewrites = 0

    def rewrite(
        self, station: str, action: str, token: str, answer: Mapping[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any]] | None:
        key = "idTagInfo" if "idTagInfo" in answer else "idTokenInfo"
        info = answer.get(key)
        if not isinstance(info, Mapping) or info.get("status") != "Accepted":
            return None
        alert = self._verdict(token)
        if alert is None:
            return None
        self.rewrites += 1
        new_answer = {**answer, key: {**info, "status": "Blocked"}}
        detail = {
            "action": "rewritten",
            "reason": "token_under_alert",
            "call": action,
            "field": f"{key}.status",
            "from": "Accepted",
            "to": "Blocked",
            "alert": alert.id,
            "kind": alert.kind,
            "token_ref": alert.token_ref,
        }
        return new_answer, detail
