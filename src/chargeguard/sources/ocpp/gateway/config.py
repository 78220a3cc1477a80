"""Gateway configuration: a TOML file plus environment overrides, validated with pydantic.

Example (top-level keys before the first table)::

    learned_credentials = "gateway-credentials.json"  # password rotations the stations accepted (scrypt hashes)
    enforce_state = "gateway-enforce.json"  # enforce mode: stations owed a ClearCache, kept across restarts
    capture_dir = "captures"

    [listen]
    host = "0.0.0.0"
    plain_port = 8080          # ws://  (security profile 1 only where a station allows it)
    tls_port = 8443            # wss:// (profiles 2 and 3)
    path = "/ocpp"

    [tls]
    cert = "server.pem"
    key = "server.key"
    client_ca = "ca.pem"       # profile 3: client certificates must chain to this CA
    crl = "ca.crl"             # optional, PEM or DER
    operator = "Example CPO"   # profile 3: the O of every client certificate

    [upstream]
    url = "wss://csms.example.net/ocpp"
    basic_auth = "passthrough" # or "none" / "configured" (password from env, see below)
    ca = "csms-ca.pem"

    [stations.CP-0001]
    security_profile = 2
    ocpp = "1.6"               # only needed to accept a station that offers no subprotocol
    password_hash = "scrypt$16384$8$1$<salt>$<hash>"   # chargeguard gateway hash-password

Secrets never live in the file in the clear: ``CHARGEGUARD_GATEWAY_UPSTREAM_PASSWORD`` sets the upstream
password, and ``CHARGEGUARD_GATEWAY_UPSTREAM_URL`` / ``CHARGEGUARD_GATEWAY_HOST`` override the file.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from chargeguard.errors import ConfigError

OcppVersion = Literal["1.6", "2.0.1", "2.1"]
SUBPROTOCOL_OF: dict[str, OcppVersion] = {"ocpp1.6": "1.6", "ocpp2.0.1": "2.0.1", "ocpp2.1": "2.1"}
ENV_PREFIX = "CHARGEGUARD_GATEWAY_"

# OCPP 2.0.1 Part 2 A00.FR.318-319 / OCPP 1.6 security whitepaper: TLS 1.2 suites stations and CSMS must support.
# TLS 1.3 suites are negotiated by OpenSSL independently of this list.
OCPP_TLS12_CIPHERS = (
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:AES128-GCM-SHA256:AES256-GCM-SHA384"
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ListenConfig(_Strict):
    host: str = "127.0.0.1"
    plain_port: int | None = Field(default=None, ge=0, le=65535)
    tls_port: int | None = Field(default=None, ge=0, le=65535)
    path: str = "/ocpp"
    metrics_from: list[str] = Field(
        default_factory=lambda: ["127.0.0.0/8", "::1/128"]
    )  # who may GET /metrics

    @field_validator("metrics_from")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for network in value:
            ipaddress.ip_network(network, strict=False)  # ValueError -> a validation error naming the field
        return value

    @field_validator("path")
    @classmethod
    def _path_shape(cls, value: str) -> str:
        value = "/" + value.strip("/")
        return "" if value == "/" else value


class TlsConfig(_Strict):
    cert: Path
    key: Path
    client_ca: Path | None = None
    crl: Path | None = None
    operator: str | None = None
    ciphers: str = OCPP_TLS12_CIPHERS


class UpstreamConfig(_Strict):
    url: str
    basic_auth: Literal["passthrough", "none", "configured"] = "passthrough"
    username: str | None = None  # "configured": defaults to the station identity
    password: SecretStr | None = None
    ca: Path | None = None
    client_cert: Path | None = None
    client_key: Path | None = None
    open_timeout_s: float = Field(default=5.0, gt=0)
    call_timeout_s: float = Field(default=30.0, gt=0)

    @field_validator("url")
    @classmethod
    def _url_scheme(cls, value: str) -> str:
        if not value.startswith(("ws://", "wss://")):
            raise ValueError("upstream url must start with ws:// or wss://")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _configured_needs_password(self) -> UpstreamConfig:
        if self.basic_auth == "configured" and self.password is None:
            raise ValueError(f"upstream basic_auth = 'configured' needs {ENV_PREFIX}UPSTREAM_PASSWORD")
        return self


class StationConfig(_Strict):
    security_profile: Literal[1, 2, 3]
    ocpp: OcppVersion | None = None
    password_hash: str | None = None
    serial_number: str | None = None
    allow_plain: bool = False  # profile 1 over ws:// must be explicitly allowed per station

    @model_validator(mode="after")
    def _profile_material(self) -> StationConfig:
        if self.security_profile in (1, 2) and not self.password_hash:
            raise ValueError("security profiles 1 and 2 need a password_hash")
        if self.security_profile == 3 and not self.serial_number:
            raise ValueError("security profile 3 needs the station's serial_number (the certificate CN)")
        return self


class PolicyConfig(_Strict):
    max_frame_bytes: int = Field(default=64 * 1024, ge=1024)
    compression: bool = True  # permessage-deflate offered to stations (RFC 7692; OCPP 2.0.1 CSMS requirement)
    # offered to the CSMS too? Off by default: the CSMS leg usually stays in the data centre, and it costs ~20 KiB
    # per idle station (bench/gateway_idle.py: ~58 KiB per station with station-leg compression, ~80 with both)
    upstream_compression: bool = False
    deflate_window_bits: int = Field(default=10, ge=9, le=15)
    deflate_mem_level: int = Field(default=1, ge=1, le=9)
    # false (default): no zlib state kept between messages, so an idle station costs no compressor memory
    # (bench/gateway_idle.py, 2,000 stations: 43 instead of 61 KiB per station, 45 instead of 82 with both legs
    # compressed); true compresses small repetitive frames better across messages, for more memory per station
    deflate_context_takeover: bool = False
    max_message_id_chars: int = 36
    seen_message_ids: int = Field(default=1024, ge=16)
    max_pipelined_calls_16: int = Field(
        default=32, ge=1
    )  # OCPP 1.6 SHOULD NOT pipeline: tolerated up to this
    station_calls_per_s: float = Field(default=10.0, gt=0)
    station_call_burst: float = Field(default=50.0, ge=1)
    address_calls_per_s: float = Field(default=200.0, gt=0)  # many stations may share one address (NAT, APN)
    address_call_burst: float = Field(default=1000.0, ge=1)
    address_handshakes_per_s: float = Field(default=2.0, gt=0)
    address_handshake_burst: float = Field(default=20.0, ge=1)
    hashes_per_s: float = Field(default=20.0, gt=0)  # global budget of slow password hashes
    credential_cache_s: float = Field(default=300.0, ge=0)
    lockout_after_failures: int = Field(default=5, ge=1)
    lockout_base_s: float = Field(default=30.0, gt=0)
    lockout_max_s: float = Field(default=3600.0, gt=0)
    duplicate_ping_timeout_s: float = Field(default=2.0, gt=0)
    # WebSocket keepalive pings (and the time a pong may take) per leg; None: no pings on that leg. Pings are most
    # of the gateway's CPU at rest (bench/gateway_idle.py); the duplicate-connection policy pings on demand anyway
    station_ping_interval_s: float | None = Field(default=20.0, gt=0)
    upstream_ping_interval_s: float | None = Field(default=20.0, gt=0)
    identity_must_equal_serial: bool = False
    drain_timeout_s: float = Field(default=10.0, ge=0)
    max_denied_per_minute: int = Field(default=120, ge=1)  # then the station connection is closed with 1008
    allowed_station_actions: dict[str, list[str]] = Field(default_factory=dict)  # version -> actions
    allowed_csms_actions: dict[str, list[str]] = Field(default_factory=dict)
    schema_validation: bool = True


class DetectionConfig(_Strict):
    """Live detection on the gateway's traffic (the same engine as ``chargeguard scan``) and enforce mode.

    ``mode = "enforce"`` rewrites the CSMS's answer for tokens under an open alert of ``enforce_kinds`` at or above
    ``enforce_severity`` (see gateway/enforce.py for exactly what that does and does not achieve). Alerts go to the
    store (``db_url``, default the SQLite store in CHARGEGUARD_HOME), to ``alerts_jsonl`` and to ``webhook_url``
    (signed with the secret in CHARGEGUARD_GATEWAY_WEBHOOK_SECRET).
    """

    enabled: bool = True
    mode: Literal["monitor", "enforce"] = "monitor"
    enforce_kinds: tuple[str, ...] = (
        "token.concurrent_use",
        "token.impossible_travel",
        "token.unauthorized_charging",
    )
    enforce_severity: Literal["medium", "high", "critical"] = "high"
    stations_inventory: Path | None = None
    alerts_jsonl: Path | None = None
    db_url: str | None = None
    webhook_url: str | None = None


class GatewayConfig(_Strict):
    listen: ListenConfig = ListenConfig()
    tls: TlsConfig | None = None
    upstream: UpstreamConfig
    stations: dict[str, StationConfig] = Field(default_factory=dict)
    policy: PolicyConfig = PolicyConfig()
    capture_dir: Path | None = None
    capture_max_bytes: int = Field(default=256 * 1024 * 1024, ge=1024)
    capture_max_age_s: float = Field(default=86400.0, gt=0)
    # learned password rotations (scrypt hashes only, see gateway/credentials.py); None: kept in memory only
    learned_credentials: Path | None = None
    # enforce mode's ClearCache debts (token pseudonyms and station ids, see gateway/cache_clear.py); None: in
    # memory only, so a restart forgets which station caches hold a rewritten answer
    enforce_state: Path | None = None
    detection: DetectionConfig = DetectionConfig()

    @model_validator(mode="after")
    def _listeners_match_profiles(self) -> GatewayConfig:
        if self.listen.plain_port is None and self.listen.tls_port is None:
            raise ValueError("configure at least one of listen.plain_port and listen.tls_port")
        if self.listen.tls_port is not None and self.tls is None:
            raise ValueError("listen.tls_port needs a [tls] section")
        needs_mtls = any(s.security_profile == 3 for s in self.stations.values())
        if needs_mtls and (self.tls is None or self.tls.client_ca is None or not self.tls.operator):
            raise ValueError("security profile 3 stations need tls.client_ca and tls.operator")
        return self


def _section(data: Mapping[str, object], name: str) -> dict[str, object]:
    value = data.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"gateway configuration: [{name}] must be a table")
    return dict(value)


def parse_config(data: Mapping[str, object], env: Mapping[str, str] | None = None) -> GatewayConfig:
    """Validate a configuration mapping (as read from TOML), applying environment overrides."""
    env = os.environ if env is None else env
    upstream, listen = _section(data, "upstream"), _section(data, "listen")
    if "password" in upstream:
        raise ConfigError(f"put the upstream password in {ENV_PREFIX}UPSTREAM_PASSWORD, not in the file")
    if url := env.get(ENV_PREFIX + "UPSTREAM_URL"):
        upstream["url"] = url
    if password := env.get(ENV_PREFIX + "UPSTREAM_PASSWORD"):
        upstream["password"] = password
    if host := env.get(ENV_PREFIX + "HOST"):
        listen["host"] = host
    merged = {**data, "upstream": upstream, "listen": listen}
    try:
        return GatewayConfig.model_validate(merged)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"invalid gateway configuration: {problems}") from exc


def load_config(path: Path, env: Mapping[str, str] | None = None) -> GatewayConfig:
    """Read and validate a TOML configuration file; relative paths inside it are relative to the file."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read gateway configuration {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"gateway configuration {path} is not valid TOML: {exc}") from exc
    config = parse_config(data, env)
    return _resolve_paths(config, path.parent)


def _resolve_paths(config: GatewayConfig, base: Path) -> GatewayConfig:
    def fix(p: Path | None) -> Path | None:
        return None if p is None or p.is_absolute() else base / p

    updates: dict[str, object] = {}
    if config.tls is not None:
        tls_fix = {k: fix(getattr(config.tls, k)) for k in ("cert", "key", "client_ca", "crl")}
        updates["tls"] = config.tls.model_copy(update={k: v for k, v in tls_fix.items() if v is not None})
    up_fix = {k: fix(getattr(config.upstream, k)) for k in ("ca", "client_cert", "client_key")}
    updates["upstream"] = config.upstream.model_copy(
        update={k: v for k, v in up_fix.items() if v is not None}
    )
    if (capture := fix(config.capture_dir)) is not None:
        updates["capture_dir"] = capture
    if (learned := fix(config.learned_credentials)) is not None:
        updates["learned_credentials"] = learned
    if (state := fix(config.enforce_state)) is not None:
        updates["enforce_state"] = state
    return config.model_copy(update=updates)
