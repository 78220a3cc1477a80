"""Gateway metrics in the Prometheus text exposition format (no global registry: one instance per gateway)."""

from __future__ import annotations

import http
import ipaddress
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from websockets.asyncio.server import ServerConnection
from websockets.http11 import Response

_HELP = {
    "chargeguard_gateway_connections_total": ("counter", "Station connections accepted."),
    "chargeguard_gateway_auth_failures_total": ("counter", "Refused upgrades by reason."),
    "chargeguard_gateway_frames_total": ("counter", "Frames relayed by sender."),
    "chargeguard_gateway_frames_denied_total": ("counter", "Frames denied by guard reason."),
    "chargeguard_gateway_frames_flagged_total": (
        "counter",
        "Frames forwarded but flagged by a policy guard.",
    ),
    "chargeguard_gateway_upstream_failures_total": ("counter", "CSMS connection failures by reason."),
    "chargeguard_gateway_password_hashes_total": ("counter", "Slow password hashes computed."),
    "chargeguard_gateway_pipelined_calls_total": (
        "counter",
        "OCPP 1.6 CALLs sent while one was outstanding.",
    ),
    "chargeguard_gateway_open_connections": ("gauge", "Station connections currently open."),
}


def _labels(labels: tuple[tuple[str, str], ...]) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
    return "{" + inner + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def http_endpoint(
    connection: ServerConnection,
    path: str,
    metrics: GatewayMetrics,
    metrics_from: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network],
    *,
    draining: bool,
) -> Response:
    """``/healthz`` (503 while draining) and ``/metrics`` (only for ``metrics_from`` addresses)."""
    if path == "/healthz":
        if draining:
            return connection.respond(http.HTTPStatus.SERVICE_UNAVAILABLE, "draining\n")
        return connection.respond(http.HTTPStatus.OK, "ok\n")
    address = connection.remote_address
    try:
        ip = ipaddress.ip_address(str(address[0] if isinstance(address, tuple) and address else ""))
    except ValueError:
        ip = None
    if ip is None or not any(ip in network for network in metrics_from):
        return connection.respond(http.HTTPStatus.FORBIDDEN, "forbidden\n")
    response = connection.respond(http.HTTPStatus.OK, metrics.render())
    response.headers["Content-Type"] = "text/plain; version=0.0.4; charset=utf-8"
    return response


@dataclass
class GatewayMetrics:
    """Counters and gauges keyed by (name, labels); label values are never tokens (reasons, directions)."""

    counters: Counter[tuple[str, tuple[tuple[str, str], ...]]] = field(default_factory=Counter)
    gauges: dict[tuple[str, tuple[tuple[str, str], ...]], float] = field(default_factory=dict)

    def inc(self, name: str, amount: float = 1.0, **labels: str) -> None:
        self.counters[(name, tuple(sorted(labels.items())))] += amount  # type: ignore[assignment]

    @staticmethod
    def key(name: str, **labels: str) -> tuple[str, tuple[tuple[str, str], ...]]:
        """A precomputed series key for :meth:`inc_key` (the per-frame hot path)."""
        return (name, tuple(sorted(labels.items())))

    def inc_key(self, key: tuple[str, tuple[tuple[str, str], ...]]) -> None:
        self.counters[key] += 1

    def set(self, name: str, value: float, **labels: str) -> None:
        self.gauges[(name, tuple(sorted(labels.items())))] = value

    def value(self, name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return float(self.counters.get(key, 0) or self.gauges.get(key, 0.0))

    def render(self) -> str:
        lines: list[str] = []
        samples: dict[str, list[str]] = {}
        for (name, labels), value in self.counters.items():
            samples.setdefault(name, []).append(f"{name}{_labels(labels)} {float(value)!r}")
        for (name, labels), gauge in self.gauges.items():
            samples.setdefault(name, []).append(f"{name}{_labels(labels)} {float(gauge)!r}")
        for name in sorted(set(samples) | set(_HELP)):
            kind, text = _HELP.get(name, ("untyped", name))
            lines.append(f"# HELP {name} {text}")
            lines.append(f"# TYPE {name} {kind}")
            lines.extend(sorted(samples.get(name, [])))
        return "\n".join(lines) + "\n"
