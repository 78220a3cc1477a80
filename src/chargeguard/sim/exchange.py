"""One charging session as realistic OCPP 1.6J / 2.0.1 capture lines (the capture format of docs/formats.md).

``session_lines(plan, rng=..., ids=...)`` is the public entry point: importers of real session datasets and
the network simulator both turn a :class:`SessionPlan` into the frames a station and its central system would
have exchanged. Odd plans (negative or zero energy, an end before the start, an energy beyond the connector)
never raise: they produce the traffic they imply (a meterStop below meterStart, a StopTransaction stamped
before its start, ...).

Conventions of the generated traffic:

* 1.6: StatusNotification Preparing -> Authorize -> StartTransaction -> StatusNotification Charging ->
  MeterValues every ``sample_interval_s`` (Energy.Active.Import.Register in Wh, Power.Active.Import in W) ->
  (SuspendedEV when the car is full) -> StopTransaction with meterStop and reason -> StatusNotification
  Finishing, Available.
* 2.0.1: StatusNotification Occupied, Authorize and TransactionEvent Started/Updated/Ended with seqNo,
  triggerReason, chargingState, evse and meterValue; the transaction starts either at plug-in or at
  authorisation (both TxStartPoint settings occur in the field).
* Every CALL is answered by its CALLRESULT from the csms a few milliseconds later.
* A plan without a token is a free-vend / no-authorisation session: 2.0.1 sends idToken type
  NoAuthorization; 1.6 (whose StartTransaction requires an idTag) uses an idTag unique to that transaction,
  so it can never look like one card used twice.
* A plan whose ``auth_status`` is not Accepted and whose energy is zero is a refused attempt: only the
  Authorize exchange happens. With energy, the station charged anyway (the csms's answers say the status).
* Transport ``ts`` never goes backwards within a session; payload timestamps say what the plan says.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

from chargeguard.sim.session_traffic import Session16, Session201
from chargeguard.sim.wire import (
    AUTH_16,
    AUTH_201,
    REASONS_16,
    REASONS_201,
    Emit,
    Line,
    MessageIds,
    SessionPlan,
    call,
    finish,
    wire_transaction_id,
)

__all__ = [
    "AUTH_16",
    "AUTH_201",
    "REASONS_16",
    "REASONS_201",
    "Emit",
    "Line",
    "MessageIds",
    "SessionPlan",
    "call",
    "finish",
    "session_emits",
    "session_lines",
    "wire_transaction_id",
]


def session_lines(plan: SessionPlan, *, rng: random.Random, ids: MessageIds) -> list[Line]:
    """The capture lines of ``plan`` in ts order (see the module docstring for the shape of the traffic)."""
    return finish(list(session_emits(plan, rng=rng, ids=ids)))


def session_emits(
    plan: SessionPlan, *, rng: random.Random, ids: MessageIds, clock_offset_s: float = 0.0
) -> Iterator[Emit]:
    """Lazily, the ``(t, line)`` pairs of :func:`session_lines` in ``t`` order (lines' "ts" not yet filled).

    Payload clocks run ``clock_offset_s`` ahead of true time.
    """
    if plan.ocpp == "1.6":
        return Session16(plan, rng, ids, clock_offset_s).run()
    return Session201(plan, rng, ids, clock_offset_s).run()
