"""The holdout incident set - FROZEN before any detector was tuned (2026-11-26); do not tune detectors on it.

Independent of ``chargeguard.sim.incidents`` (the tuning set): its own building blocks (``kit``), its own shapes,
timings, card formats (decimal, eMAID, 4-byte UIDs), vendor version formats, enumeration patterns and command
mixes for the same behaviours. ``tests/sim/holdout.sha256`` pins every file of this package; changing one is a
deliberate, reviewed act (a new holdout version), never a side effect of tuning. Report its figures separately.
"""

from __future__ import annotations

from functools import partial

from chargeguard.sim.incidents_holdout import access, charging
from chargeguard.sim.injection import IncidentSpec

CATALOGUE: tuple[IncidentSpec, ...] = (
    IncidentSpec("token.concurrent_use", "h_overnight_clone_nearby", charging.overnight_clone),
    IncidentSpec("token.impossible_travel", "h_authorize_only_cross_border", charging.authorize_hops),
    IncidentSpec(
        "token.unauthorized_charging", "h_deauthorised_keeps_charging", charging.deauthorised_keeps_charging
    ),
    IncidentSpec(
        "token.enumeration", "h_decimal_sweep_fast", partial(charging.decimal_sweep, count=18, hours=0.75)
    ),
    IncidentSpec(
        "token.enumeration", "h_decimal_sweep_day", partial(charging.decimal_sweep, count=34, hours=20.0)
    ),
    IncidentSpec("meter.exceeds_capacity", "h_dc_sustained_overpower", charging.sustained_dc_overpower),
    IncidentSpec("meter.exceeds_capacity", "h_kwh_units_overstated", charging.kwh_units_overstated),
    IncidentSpec("meter.rollback", "h_jump_back_mid_session", charging.jump_back),
    IncidentSpec("meter.rollback", "h_stop_below_last_sample", charging.ended_below_last),
    IncidentSpec("meter.inconsistent", "h_start_understated", charging.start_understated),
    IncidentSpec("session.overlap", "h_same_evse_twice", charging.same_evse_twice),
    IncidentSpec("session.phantom", "h_seconds_long_billing", charging.seconds_long_billing),
    IncidentSpec("session.phantom", "h_billed_while_available", charging.billed_while_available),
    IncidentSpec("station.auth_failure", "h_slow_guessing", partial(access.slow_guessing, sources=1)),
    IncidentSpec("station.auth_failure", "h_rotating_sources", partial(access.slow_guessing, sources=4)),
    IncidentSpec("station.duplicate_connection", "h_cellular_twin", access.cellular_twin),
    IncidentSpec("station.duplicate_connection", "h_flapping", access.flapping),
    IncidentSpec("station.identity_change", "h_serial_swap", partial(access.swapped_board, serial_only=True)),
    IncidentSpec("station.identity_change", "h_model_swap", partial(access.swapped_board, serial_only=False)),
    IncidentSpec("station.firmware_downgrade", "h_vendor_formats", access.downgrade_in_format),
    IncidentSpec("station.security_downgrade", "h_authctrlr_201", partial(access.posture, which="auth201")),
    IncidentSpec(
        "station.security_downgrade",
        "h_local_authorize_offline_16",
        partial(access.posture, which="offline16"),
    ),
    IncidentSpec(
        "station.security_downgrade", "h_network_profile_lower", partial(access.posture, which="netprofile")
    ),
    IncidentSpec("station.security_event", "h_serious_events", access.tamper_at_night),
    IncidentSpec(
        "station.clock_skew",
        "h_three_days_behind",
        partial(access.wrong_clock, offset_s=-3 * 86400.0, note="station clock three days behind"),
    ),
    IncidentSpec(
        "station.clock_skew",
        "h_forty_minutes_ahead",
        partial(access.wrong_clock, offset_s=2400.0, note="station clock forty minutes ahead"),
    ),
    IncidentSpec("ocpp.malformed", "h_zoneless_timestamps", partial(access.odd_frames, shape="zoneless")),
    IncidentSpec("ocpp.malformed", "h_unknown_message_type", partial(access.odd_frames, shape="msgtype")),
    IncidentSpec("ocpp.malformed", "h_csms_orphan_results", partial(access.odd_frames, shape="orphans")),
    IncidentSpec("ocpp.flood", "h_status_storm", partial(access.storm, shape="status")),
    IncidentSpec("ocpp.flood", "h_reconnect_every_30s", partial(access.storm, shape="reconnect")),
    IncidentSpec("ocpp.flood", "h_csms_hammering", partial(access.storm, shape="csms")),
    IncidentSpec(
        "command.untrusted_url", "h_http_ip_literal_firmware", partial(access.url_commands, shape="firmware")
    ),
    IncidentSpec(
        "command.untrusted_url", "h_getlog_with_credentials", partial(access.url_commands, shape="getlog")
    ),
    IncidentSpec("command.burst", "h_reset_flurry", partial(access.command_flurry, action="Reset")),
    IncidentSpec(
        "command.burst", "h_availability_flip", partial(access.command_flurry, action="ChangeAvailability")
    ),
    IncidentSpec(
        "command.fleet_synchronised", "h_fleet_reset", partial(access.fleet_command, action="Reset")
    ),
    IncidentSpec(
        "command.fleet_synchronised",
        "h_fleet_config",
        partial(access.fleet_command, action="ChangeConfiguration"),
    ),
    IncidentSpec("command.stale_local_list", "h_relisted_differential", partial(access.relisted, big=False)),
    IncidentSpec(
        "command.stale_local_list", "h_relisted_in_big_full_list", partial(access.relisted, big=True)
    ),
    IncidentSpec("anomaly.token", "h_area_sharing", charging.area_sharing, subtle=True),
    IncidentSpec("anomaly.station", "h_creeping_meter", charging.creeping_meter, subtle=True),
    IncidentSpec("anomaly.session", "h_dc_like_on_ac", charging.dc_like_on_ac, subtle=True),
)
