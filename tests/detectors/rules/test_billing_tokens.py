"""The OCPI half of token.unauthorized_charging: which party is blamed, near misses, and its registration."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from chargeguard.detectors.registry import SHARED_KINDS, all_kinds, detector_classes
from chargeguard.detectors.rules.billing_tokens import OcpiUnauthorizedCharging
from chargeguard.sources.ocpi.events import TokenStatus
from chargeguard.testing import make_detector, run_detector
from detectors.rules.test_billing import T0, TOKEN, a_cdr, status

HOUR = timedelta(hours=1)


def alerts_for(*updates: TokenStatus, auth: str = "WHITELIST", **cdr: Any) -> list[Any]:
    events = sorted([*updates, a_cdr(auth_method=auth, **cdr)], key=lambda e: e.ts)
    return run_detector(make_detector(OcpiUnauthorizedCharging), events)


def blame(*updates: TokenStatus, auth: str = "WHITELIST") -> tuple[str, str] | None:
    alerts = alerts_for(*updates, auth=auth)
    if not alerts:
        return None
    assert len(alerts) == 1 and alerts[0].kind == "token.unauthorized_charging"
    return alerts[0].evidence["blame"], alerts[0].evidence["cpo_copy_at_start"]


@pytest.mark.parametrize(
    ("updates", "auth", "expected"),
    [
        # the CPO had the invalidation an hour before the start and charged from its cache
        ([status(True, "ALLOWED", T0 - 3 * HOUR), status(False, "ALLOWED", T0 - HOUR)], "WHITELIST",
         ("cpo", "invalid")),
        # the invalidation reached the CPO after the start; ALLOWED lets it use its (valid) cached copy
        ([status(True, "ALLOWED", T0 - 3 * HOUR), status(False, "ALLOWED", T0 - HOUR, received=T0 + HOUR)],
         "WHITELIST", ("emsp", "valid")),
        # same lateness, but ALLOWED_OFFLINE obliges the CPO to ask in real time while the eMSP is reachable
        ([status(True, "ALLOWED_OFFLINE", T0 - 3 * HOUR),
          status(False, "ALLOWED_OFFLINE", T0 - HOUR, received=T0 + HOUR)], "WHITELIST", ("cpo", "valid")),
        # NEVER: real-time authorisation is mandatory, whatever the cache said
        ([status(True, "NEVER", T0 - 3 * HOUR), status(False, "NEVER", T0 - HOUR, received=T0 + HOUR)],
         "WHITELIST", ("cpo", "valid")),
        # the eMSP answered a real-time request, or started the session by command, on its own invalid token
        ([status(False, "NEVER", T0 - HOUR)], "AUTH_REQUEST", ("emsp", "invalid")),
        ([status(False, "ALLOWED", T0 - HOUR)], "COMMAND", ("emsp", "invalid")),
        # no update received before the start is in the input: the CPO's copy is assumed valid
        ([status(False, "ALWAYS", T0 - HOUR, received=T0 + HOUR)], "WHITELIST", ("emsp", "assumed_valid")),
    ],
)  # fmt: skip
def test_blame_lands_on_the_party_that_could_have_stopped_it(
    updates: list[TokenStatus], auth: str, expected: tuple[str, str]
) -> None:
    assert blame(*updates, auth=auth) == expected


def test_the_whitelist_type_the_cpo_held_decides_not_the_new_one() -> None:
    # the CPO held ALLOWED (cacheable); the eMSP's late update switched to NEVER and invalid at once
    updates = [status(True, "ALLOWED", T0 - 3 * HOUR), status(False, "NEVER", T0 - HOUR, received=T0 + HOUR)]
    alerts = alerts_for(*updates)
    assert alerts[0].evidence["blame"] == "emsp"
    assert (
        alerts[0].evidence["whitelist"] == "NEVER"
        and alerts[0].evidence["cpo_whitelist_at_start"] == "ALLOWED"
    )


@pytest.mark.parametrize(
    "updates",
    [
        [status(True, "ALLOWED", T0 - HOUR)],  # valid
        [status(False, "ALLOWED", T0 + timedelta(minutes=10))],  # invalidated only after the start
        [status(False, "ALLOWED", T0 - 2 * HOUR), status(True, "ALLOWED", T0 - HOUR)],  # re-validated
        [],  # token unknown to the input: never judged
    ],
)
def test_near_misses(updates: list[TokenStatus]) -> None:
    assert alerts_for(*updates) == []


def test_evidence_summary_and_credit_cdrs() -> None:
    alerts = alerts_for(status(False, "ALLOWED", T0 - HOUR), kwh=12.5)
    (alert,) = alerts
    assert alert.token_ref == TOKEN and alert.station == "EVSE-1"
    assert alert.transactions == ("BE*BEC/C1",)
    assert "12.50 kWh" in alert.summary and "blame: CPO" in alert.summary
    assert alert.evidence["source"] == "ocpi" and alert.evidence["invalid_since"] == (T0 - HOUR).isoformat()
    credit = alerts_for(status(False, "ALLOWED", T0 - HOUR), credit=True, credit_reference_id="C0")
    assert credit == []


def test_registered_next_to_the_ocpp_rule_under_the_shared_kind() -> None:
    owners = [cls.info.name for cls in detector_classes() if "token.unauthorized_charging" in cls.info.kinds]
    assert sorted(owners) == ["token-unauthorized-charging", "token-unauthorized-charging-ocpi"]
    assert "token.unauthorized_charging" in SHARED_KINDS
    assert all_kinds().count("token.unauthorized_charging") == 1
