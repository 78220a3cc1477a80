"""The CSMS leg: opening it with the station's identity and offer, its credentials and compression, and how its
failures are answered to the station."""

from __future__ import annotations

import asyncio
import http
import ssl
from dataclasses import dataclass

import structlog
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.exceptions import InvalidHandshake, InvalidStatus
from websockets.extensions.base import ClientExtensionFactory, ServerExtensionFactory
from websockets.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    ServerPerMessageDeflateFactory,
)
from websockets.headers import build_authorization_basic
from websockets.typing import Subprotocol

from chargeguard.sources.ocpp.gateway.config import PolicyConfig, UpstreamConfig

log = structlog.get_logger("chargeguard.gateway.upstream")

# CSMS answers to the upgrade that are passed on to the station as they are (anything else becomes 503)
MIRRORED_REFUSALS = frozenset({401, 403, 404})


@dataclass(frozen=True, slots=True)
class UpstreamRefusal:
    """Why the CSMS leg could not be opened: the HTTP status for the station and the action-line reason."""

    status: int
    reason: str  # upstream_refused | upstream_unavailable | upstream_no_subprotocol
    metric: str


async def open_upstream(
    config: UpstreamConfig,
    policy: PolicyConfig,
    context: ssl.SSLContext | None,
    *,
    identity: str,
    offer: list[Subprotocol],
    station_authorization: str | None,
) -> ClientConnection | UpstreamRefusal:
    """Open ``<upstream url>/<identity>`` offering ``offer``; the CSMS must select one of them."""
    headers = Headers()
    if config.basic_auth == "passthrough" and station_authorization:
        headers["Authorization"] = station_authorization
    elif config.basic_auth == "configured" and config.password is not None:
        headers["Authorization"] = build_authorization_basic(
            config.username or identity, config.password.get_secret_value()
        )
    try:
        upstream = await connect(
            f"{config.url}/{identity}",
            subprotocols=offer,
            additional_headers=headers,
            ssl=context,
            open_timeout=config.open_timeout_s,
            max_size=policy.max_frame_bytes,
            compression=None,
            extensions=upstream_deflate(policy) or None,  # [] would send an empty header
            proxy=None,
            user_agent_header=None,
            ping_interval=policy.upstream_ping_interval_s,
            ping_timeout=policy.upstream_ping_interval_s,
        )
    except InvalidStatus as exc:
        status = exc.response.status_code
        log.warning("gateway.upstream.refused", station=identity, status=status)
        if status in MIRRORED_REFUSALS:
            return UpstreamRefusal(status, "upstream_refused", f"http_{status}")
        return UpstreamRefusal(http.HTTPStatus.SERVICE_UNAVAILABLE, "upstream_unavailable", f"http_{status}")
    except (OSError, TimeoutError, InvalidHandshake) as exc:
        log.warning("gateway.upstream.unavailable", station=identity, error=type(exc).__name__)
        return UpstreamRefusal(http.HTTPStatus.SERVICE_UNAVAILABLE, "upstream_unavailable", "connect")
    if upstream.subprotocol is None or upstream.subprotocol not in offer:
        await upstream.close(1002, "no subprotocol selected")
        return UpstreamRefusal(http.HTTPStatus.BAD_GATEWAY, "upstream_no_subprotocol", "no_subprotocol")
    return upstream


def station_deflate(policy: PolicyConfig) -> list[ServerExtensionFactory]:
    """permessage-deflate for station legs with small windows (memory per idle station; frames are small).

    The station is asked to keep its window to ``deflate_window_bits`` when it offers the parameter (a station
    that does not still gets compression, with its own window; inflated sizes are bounded by ``max_size``).
    With ``deflate_context_takeover = false`` both ends start every message afresh (RFC 7692 section 7.1.1):
    an idle connection then holds no zlib state at all, for a few microseconds per message and a lower ratio.
    """
    if not policy.compression:
        return []
    bits = policy.deflate_window_bits
    settings = {"memLevel": policy.deflate_mem_level}
    fresh = not policy.deflate_context_takeover
    return [
        ServerPerMessageDeflateFactory(
            server_no_context_takeover=fresh,
            client_no_context_takeover=fresh,
            server_max_window_bits=bits,
            client_max_window_bits=bits,
            compress_settings=settings,
        )
    ]


def upstream_deflate(policy: PolicyConfig) -> list[ClientExtensionFactory]:
    """permessage-deflate offered to the CSMS with the same small windows (a CSMS that cannot honour them
    declines compression on that leg)."""
    if not policy.compression or not policy.upstream_compression:
        return []
    bits = policy.deflate_window_bits
    settings = {"memLevel": policy.deflate_mem_level}
    fresh = not policy.deflate_context_takeover
    return [
        ClientPerMessageDeflateFactory(
            server_no_context_takeover=fresh,
            client_no_context_takeover=fresh,
            server_max_window_bits=bits,
            client_max_window_bits=bits,
            compress_settings=settings,
        )
    ]


async def force_close(
    connection: ServerConnection | ClientConnection, code: int, reason: str, timeout_s: float = 1.0
) -> None:
    """Close with a close frame, but do not wait for a peer that stopped reading: abort after ``timeout_s``."""
    try:
        await asyncio.wait_for(connection.close(code, reason), timeout_s)
    except TimeoutError:
        connection.transport.abort()
