"""The tuning incident set: every rule kind in several realistic variants, plus subtle incidents.

This is the set detectors are tuned on. Its twin, ``chargeguard.sim.incidents_holdout``, is written
independently and frozen; never tune on it.
"""

from __future__ import annotations

from functools import partial

from chargeguard.sim.incidents import commands, metering, station, tokens
from chargeguard.sim.injection import IncidentSpec

RTC_EPOCH = 946_684_800.0  # 2000-01-01T00:00:00Z, where a station whose RTC battery died restarts its clock


def _rtc_reset(scene, t):  # type: ignore[no-untyped-def]
    return station.clock_skew(scene, t, offset_s=RTC_EPOCH - t, what="reset to 2000-01-01 (RTC battery)")


CATALOGUE: tuple[IncidentSpec, ...] = (
    IncidentSpec("token.concurrent_use", "clone_same_city", partial(tokens.cloned_card, far=False)),
    IncidentSpec("token.concurrent_use", "clone_other_region", partial(tokens.cloned_card, far=True)),
    IncidentSpec(
        "token.impossible_travel",
        "far_after_session",
        partial(tokens.travel, gap_min=(20, 90), min_km=300, max_km=5000),
    ),
    IncidentSpec(
        "token.impossible_travel", "short_hop", partial(tokens.travel, gap_min=(3, 8), min_km=45, max_km=200)
    ),
    IncidentSpec(
        "token.impossible_travel",
        "overlapping_sessions",
        partial(tokens.travel, gap_min=(15, 90), min_km=60, max_km=2000, overlap=True),
    ),
    IncidentSpec(
        "token.unauthorized_charging",
        "blocked_charges",
        partial(tokens.charges_despite, status="Blocked", skip_authorize=False),
    ),
    IncidentSpec(
        "token.unauthorized_charging",
        "local_cache_expired",
        partial(tokens.charges_despite, status="Expired", skip_authorize=True),
    ),
    IncidentSpec("token.unauthorized_charging", "offline_unknown", tokens.offline_unknown),
    IncidentSpec(
        "token.unauthorized_charging",
        "deauthorised_mid_session",
        partial(tokens.deauthorised_mid_session, with_id_token=False),
    ),
    IncidentSpec(
        "token.unauthorized_charging",
        "deauthorised_mid_session_id_token_repeated",
        partial(tokens.deauthorised_mid_session, with_id_token=True),
    ),
    IncidentSpec(
        "token.enumeration",
        "burst_random",
        partial(tokens.enumeration, count=25, spread_s=600, sequential=False, nth=10),
    ),
    IncidentSpec(
        "token.enumeration",
        "slow_sequential",
        partial(tokens.enumeration, count=36, spread_s=8 * 3600, sequential=True, nth=30),
    ),
    IncidentSpec("meter.exceeds_capacity", "ac_beyond_rating", metering.beyond_rating),
    IncidentSpec("meter.exceeds_capacity", "dc_power_spike", metering.power_spike),
    IncidentSpec("meter.exceeds_capacity", "stop_only", metering.stop_only),
    IncidentSpec("meter.rollback", "between_transactions", partial(metering.rollback_between, to_zero=False)),
    IncidentSpec("meter.rollback", "reset_to_zero", partial(metering.rollback_between, to_zero=True)),
    IncidentSpec("meter.rollback", "slow_within_transaction", metering.slow_rollback),
    IncidentSpec("meter.rollback", "stop_below_samples", metering.stop_below_samples),
    IncidentSpec(
        "meter.inconsistent",
        "stop_inflated",
        partial(metering.inflated_stop, ratio=(1.25, 1.6), interval_s=300.0),
    ),
    IncidentSpec(
        "meter.inconsistent",
        "stop_inflated_dense_samples",
        partial(metering.inflated_stop, ratio=(1.08, 1.2), interval_s=60.0),
    ),
    IncidentSpec("session.overlap", "ghost_transaction", partial(metering.overlap, remote=False)),
    IncidentSpec("session.overlap", "remote_start_on_busy_connector", partial(metering.overlap, remote=True)),
    IncidentSpec("session.phantom", "no_plug_in", partial(metering.phantom, unavailable=False)),
    IncidentSpec("session.phantom", "connector_unavailable", partial(metering.phantom, unavailable=True)),
    IncidentSpec("session.phantom", "claims_charging_without_meter", metering.phantom_claiming_charging),
    IncidentSpec("station.auth_failure", "password_guessing", station.password_guessing),
    IncidentSpec("station.auth_failure", "identity_spraying", station.identity_spraying),
    IncidentSpec("station.duplicate_connection", "impostor", station.impostor),
    IncidentSpec("station.duplicate_connection", "alternating", station.alternating),
    IncidentSpec("station.identity_change", "other_vendor", station.identity_change),
    IncidentSpec(
        "station.firmware_downgrade", "via_update", partial(station.firmware_downgrade, via_update=True)
    ),
    IncidentSpec(
        "station.firmware_downgrade", "after_reboot", partial(station.firmware_downgrade, via_update=False)
    ),
    IncidentSpec("station.security_downgrade", "security_profile_16", station.security_profile_lowered),
    IncidentSpec("station.security_downgrade", "reconnect_lower", station.reconnect_lower),
    IncidentSpec("station.security_downgrade", "risky_auth_setting", station.risky_auth_setting),
    IncidentSpec("station.security_downgrade", "set_network_profile", station.network_profile),
    IncidentSpec("station.security_event", "serious_event", station.security_event),
    IncidentSpec(
        "station.clock_skew",
        "hours_ahead",
        partial(station.clock_skew, offset_s=2 * 3600.0, what="two hours ahead (time zone applied twice)"),
    ),
    IncidentSpec("station.clock_skew", "rtc_reset", _rtc_reset),
    IncidentSpec(
        "station.clock_skew",
        "days_behind_after_reboot",
        partial(
            station.clock_skew,
            offset_s=-3 * 86_400.0 - 1234.0,
            what="three days behind after a reboot",
            reboot=True,
        ),
    ),
    IncidentSpec(
        "station.clock_skew",
        "hours_behind",
        partial(station.clock_skew, offset_s=-5 * 3600.0, what="five hours behind (wrong time zone)"),
    ),
    IncidentSpec(
        "station.clock_skew",
        "days_ahead",
        partial(station.clock_skew, offset_s=2 * 86_400.0 + 600.0, what="two days ahead (date set by hand)"),
    ),
    IncidentSpec("ocpp.malformed", "schema_violations", partial(commands.malformed, shape="schema")),
    IncidentSpec("ocpp.malformed", "reused_ids_orphans", partial(commands.malformed, shape="ids")),
    IncidentSpec("ocpp.malformed", "unknown_actions", partial(commands.malformed, shape="actions")),
    IncidentSpec("ocpp.flood", "message_flood", partial(commands.flood, shape="messages")),
    IncidentSpec("ocpp.flood", "reconnect_storm", partial(commands.flood, shape="reconnects")),
    IncidentSpec("ocpp.flood", "boot_loop", partial(commands.flood, shape="boots")),
    IncidentSpec("command.untrusted_url", "firmware_url", partial(commands.untrusted_url, diagnostics=False)),
    IncidentSpec(
        "command.untrusted_url", "diagnostics_upload", partial(commands.untrusted_url, diagnostics=True)
    ),
    IncidentSpec("command.burst", "remote_starts", partial(commands.burst, action="start")),
    IncidentSpec("command.burst", "unlocks", partial(commands.burst, action="unlock")),
    IncidentSpec(
        "command.fleet_synchronised", "zero_profile", partial(commands.fleet_push, availability=False)
    ),
    IncidentSpec(
        "command.fleet_synchronised", "inoperative", partial(commands.fleet_push, availability=True)
    ),
    IncidentSpec("command.stale_local_list", "same_station", partial(commands.stale_list, elsewhere=False)),
    IncidentSpec("command.stale_local_list", "other_station", partial(commands.stale_list, elsewhere=True)),
    IncidentSpec("anomaly.token", "token_sharing", tokens.token_sharing, subtle=True),
    IncidentSpec("anomaly.station", "meter_drift", metering.drift, subtle=True),
    IncidentSpec("anomaly.session", "odd_energy_for_type", metering.odd_energy, subtle=True),
)
