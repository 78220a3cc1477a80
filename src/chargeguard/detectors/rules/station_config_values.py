"""Configuration values that weaken station security: the risky-settings table and tolerant value parsing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chargeguard.events import Severity

TRUE_VALUES = frozenset({"true", "1", "yes", "on"})
FALSE_VALUES = frozenset({"false", "0", "no", "off"})


@dataclass(frozen=True, slots=True)
class Risk:
    """A configuration value that weakens authorization, with its severity when the CSMS sets it."""

    key: str
    risky_when: bool | None  # None: numeric, compared with max_energy_on_invalid_id_wh
    severity: Severity
    why: str


RISKS: dict[str, Risk] = {
    r.key.lower(): r
    for r in (
        Risk(
            "AllowOfflineTxForUnknownId", True, Severity.HIGH, "unknown tokens may charge while offline (#6)"
        ),
        Risk(
            "AuthCtrlr.OfflineTxForUnknownIdEnabled",
            True,
            Severity.HIGH,
            "unknown tokens may charge while offline (#6)",
        ),
        Risk(
            "LocalAuthorizeOffline",
            True,
            Severity.LOW,
            "cached tokens, even revoked ones, authorize offline (#5)",
        ),
        Risk(
            "AuthCtrlr.LocalAuthorizeOffline",
            True,
            Severity.LOW,
            "cached tokens, even revoked ones, authorize offline",
        ),
        Risk(
            "AuthCtrlr.LocalPreAuthorize",
            True,
            Severity.LOW,
            "cached tokens start charging before the CSMS answers",
        ),
        Risk("AuthorizeRemoteTxRequests", False, Severity.MEDIUM, "remote starts skip authorization (#9)"),
        Risk(
            "AuthCtrlr.AuthorizeRemoteStart", False, Severity.MEDIUM, "remote starts skip authorization (#9)"
        ),
        Risk(
            "AuthCtrlr.DisableRemoteAuthorization",
            True,
            Severity.MEDIUM,
            "the station never asks the CSMS (#5)",
        ),
        Risk(
            "StopTransactionOnInvalidId",
            False,
            Severity.MEDIUM,
            "charging goes on after a token is rejected (#22)",
        ),
        Risk(
            "TxCtrlr.StopTxOnInvalidId",
            False,
            Severity.MEDIUM,
            "charging goes on after a token is rejected (#22)",
        ),
        Risk("TxCtrlr.MaxEnergyOnInvalidId", None, Severity.MEDIUM, "energy allowed after a rejection (#22)"),
    )
}


def config_key(raw: str) -> str:
    """``Component.Variable/instance`` or a 1.6 key, lower-cased, without the instance."""
    return raw.split("/", 1)[0].strip().lower()


def parse_bool(value: str | None) -> bool | None:
    """OCPP booleans, case-insensitively; None for anything else."""
    text = (value or "").strip().lower()
    return True if text in TRUE_VALUES else False if text in FALSE_VALUES else None


def parse_profile(value: Any) -> int | None:
    """A security profile number 0..9, else None."""
    try:
        number = int(str(value).strip())
    except ValueError:
        return None
    return number if 0 <= number <= 9 else None


def parse_float(value: str | None) -> float | None:
    """A number, else None."""
    try:
        return float((value or "").strip())
    except ValueError:
        return None


def one_level_lower(severity: Severity) -> Severity:
    """The next lower severity (info stays info)."""
    return Severity(max(int(severity) - 1, int(Severity.INFO)))
