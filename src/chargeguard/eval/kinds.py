"""The detection kind names evaluation accepts: the foundation catalogue plus registered detectors' kinds."""

from __future__ import annotations

from functools import lru_cache

# The stable kind catalogue of the foundation issue (docs/formats.md). Never rename; more may be added.
CATALOGUE: frozenset[str] = frozenset(
    {
        "token.concurrent_use",
        "token.impossible_travel",
        "token.unauthorized_charging",
        "token.enumeration",
        "token.high_velocity",
        "meter.exceeds_capacity",
        "meter.rollback",
        "meter.inconsistent",
        "session.overlap",
        "session.phantom",
        "cdr.duplicate",
        "cdr.orphan",
        "cdr.energy_mismatch",
        "cdr.price_mismatch",
        "session.unbilled",
        "cdr.party_mismatch",
        "station.auth_failure",
        "station.duplicate_connection",
        "station.identity_change",
        "station.firmware_downgrade",
        "station.security_downgrade",
        "station.security_event",
        "station.clock_skew",
        "ocpp.malformed",
        "ocpp.flood",
        "command.untrusted_url",
        "command.burst",
        "command.fleet_synchronised",
        "command.stale_local_list",
        "pnc.certificate_invalid",
        "pnc.contract_misuse",
        "anomaly.session",
        "anomaly.token",
        "anomaly.station",
    }
)


@lru_cache(maxsize=1)
def known_kinds() -> frozenset[str]:
    """The catalogue plus whatever the registered detectors (including plugins) declare."""
    from chargeguard.detectors.registry import all_kinds
    from chargeguard.errors import ConfigError

    try:
        registered = set(all_kinds())
    except ConfigError:  # a broken plugin must not stop an evaluation; the catalogue still applies
        registered = set()
    return CATALOGUE | registered
