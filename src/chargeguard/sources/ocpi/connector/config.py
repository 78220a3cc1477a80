"""The ``chargeguard serve`` configuration file (TOML, ``[ocpi]`` table), validated at the edge with pydantic."""

from __future__ import annotations

import tomllib
from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from chargeguard.errors import ConfigError
from chargeguard.sources.ocpi.connector.context import ConnectorConfig
from chargeguard.sources.ocpi.connector.headers import Party


class PublishFiles(BaseModel):
    """OCPI objects this platform serves on its sender endpoints (JSON array / envelope / JSON Lines files)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    locations: Path | None = None
    sessions: Path | None = None
    cdrs: Path | None = None
    tariffs: Path | None = None
    tokens: Path | None = None


class DetectionConfig(BaseModel):
    """Live detection on what partners push (``[ocpi.detection]``): alerts go to the store and, if set, a file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    alerts_jsonl: Path | None = Field(default=None, description="append alerts as JSON Lines here")
    stations_inventory: Path | None = Field(default=None, description="station inventory CSV")
    station_id: Literal["evse_uid", "evse_id", "location"] = "evse_uid"


class ServeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    base_url: str = Field(description="public URL partners reach this platform at (without /ocpi)")
    country_code: str = Field(min_length=2, max_length=2)
    party_id: str = Field(min_length=3, max_length=3)
    roles: tuple[Literal["CPO", "EMSP"], ...] = Field(default=("CPO", "EMSP"), min_length=1)
    business_name: str = "chargeguard"
    host: str = "127.0.0.1"
    port: int = Field(default=8090, ge=0, le=65535)
    tls_certfile: Path | None = None
    tls_keyfile: Path | None = None
    partners_file: Path | None = Field(default=None, description="partner registry (tokens hashed or sealed)")
    master_key_file: Path | None = Field(default=None, description="seals partner tokens in partners_file")
    page_limit: int = Field(default=100, ge=1, le=1000)
    authorize_budget_ms: float = Field(default=200.0, gt=0, le=10_000)
    require_routing_headers: bool = False
    registration_ttl_h: float = Field(default=168.0, gt=0)
    partner_timeout_s: float = Field(default=10.0, gt=0)
    partner_ca_file: Path | None = None
    publish: PublishFiles = PublishFiles()
    detection: DetectionConfig = DetectionConfig()

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    def connector_config(self) -> ConnectorConfig:
        return ConnectorConfig(
            base_url=self.base_url,
            party=Party(self.country_code, self.party_id),
            roles=frozenset(self.roles),
            business_name=self.business_name,
            page_limit=self.page_limit,
            require_routing_headers=self.require_routing_headers,
            authorize_budget_s=self.authorize_budget_ms / 1000,
            registration_ttl=timedelta(hours=self.registration_ttl_h),
        )


def load_serve_config(path: Path) -> ServeConfig:
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read: {exc.strerror}") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    table = doc.get("ocpi")
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: no [ocpi] table")
    try:
        return ServeConfig(**table)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"{path}: invalid [ocpi] settings: {problems}") from exc
