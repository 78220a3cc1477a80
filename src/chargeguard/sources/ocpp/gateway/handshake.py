"""Authentication of one WebSocket upgrade against the station's security profile (steps 2-3 of ``proxy``).

Refusals (each becomes an ``auth_failed`` capture line with the reason in ``detail`` and counts towards the
lockout of the (address, identity) pair, except rate-limit and busy refusals, which never hash):

* ``unknown_station`` (401), ``security_profile_downgrade`` (401: a profile 2/3 station on the plain listener,
  or a profile 1 station not allowed on it), ``locked`` / ``rate_limited`` (429), ``hash_budget_exhausted`` (503);
* profile 1/2: ``missing_credentials``, ``username_mismatch`` (the username must be the identity),
  ``bad_credentials`` (401);
* profile 3: the certificate reasons of :mod:`chargeguard.sources.ocpp.gateway.tls` (401).
"""

from __future__ import annotations

import http
from typing import TYPE_CHECKING

import structlog
from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response

from chargeguard.sources.ocpp.gateway.auth import AuthOutcome, parse_basic_auth

if TYPE_CHECKING:
    from chargeguard.sources.ocpp.gateway.proxy import Gateway

log = structlog.get_logger("chargeguard.gateway.auth")


def authenticate(
    gateway: Gateway, connection: ServerConnection, request: Request, identity: str, remote: str, *, tls: bool
) -> Response | None:
    """None when the upgrade may proceed; otherwise the refusal response (already recorded)."""
    address = remote.rsplit(":", 1)[0]
    station = gateway.config.stations.get(identity)
    profile = gateway.profile_of(connection, tls)
    authenticator = gateway.authenticator

    def refuse(
        reason: str, outcome: AuthOutcome = AuthOutcome.BAD_CREDENTIALS, *, counts: bool = True
    ) -> Response:
        if counts:
            gateway.lockout.failure(address, identity)
        gateway.metrics.inc("chargeguard_gateway_auth_failures_total", reason=reason)
        gateway.observer.on_connection(
            gateway.connection_line(identity, "auth_failed", remote, profile, {"reason": reason})
        )
        log.info("gateway.auth.refused", station=identity, remote=remote, reason=reason)
        return _refusal(connection, outcome)

    admitted = authenticator.admit(address, identity)
    if admitted is not AuthOutcome.OK:
        return refuse(admitted.reason, admitted, counts=False)
    if station is None:
        return refuse("unknown_station")
    if not tls and not (station.security_profile == 1 and station.allow_plain):
        return refuse("security_profile_downgrade")
    if station.security_profile == 3:
        verifier = gateway.cert_verifier
        ssl_object = connection.transport.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        if verifier is None or station.serial_number is None:
            return refuse("no_client_certificate")
        check = verifier.check(
            der,
            serial_number=station.serial_number,
            identity=identity,
            identity_must_equal_serial=gateway.config.policy.identity_must_equal_serial,
            now=gateway.wall_clock(),
        )
        if check.reason is not None:
            return refuse(check.reason)
        gateway.lockout.success(address, identity)
        return None
    credentials = parse_basic_auth(request.headers.get("Authorization"))
    if credentials is None:
        return refuse("missing_credentials")
    username, password = credentials
    if username != identity:
        return refuse("username_mismatch")
    outcome = authenticator.verify(address, identity, password)
    if outcome is AuthOutcome.BUSY:
        return refuse(outcome.reason, outcome, counts=False)
    if outcome is not AuthOutcome.OK:
        return refuse(outcome.reason, outcome, counts=False)  # verify() has counted the failure itself
    return None


def _refusal(connection: ServerConnection, outcome: AuthOutcome) -> Response:
    status = http.HTTPStatus(outcome.status)
    response = connection.respond(status, f"{status.phrase.lower()}\n")
    if status == http.HTTPStatus.UNAUTHORIZED:
        response.headers["WWW-Authenticate"] = 'Basic realm="chargeguard", charset="UTF-8"'
    return response
