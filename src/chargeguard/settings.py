"""One Settings object for every command (environment prefix ``CHARGEGUARD_``, optional TOML file).

Built once in the CLI or the app factory and passed down; no module reads the environment itself. Secrets are
``SecretStr`` and never printed.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from chargeguard.errors import ConfigError


def default_home() -> Path:
    return Path.home() / ".local" / "share" / "chargeguard"


class Settings(BaseSettings):
    """Everything configurable. See docs/configuration in the README for each field."""

    model_config = SettingsConfigDict(env_prefix="CHARGEGUARD_", extra="forbid", frozen=True)

    home: Path = Field(default_factory=default_home, description="where the default store and key file live")
    db_url: str | None = Field(default=None, description="SQLAlchemy URL; default SQLite file in home")
    pseudonym_key: SecretStr | None = Field(default=None, description="hex/base64 key, or '<version>:<key>'")
    key_file: Path | None = Field(
        default=None, description="pseudonym key file (default <home>/pseudonym.key)"
    )
    decimal_uids: bool = Field(default=False, description="read all-digit tokens as decimal UIDs")
    lateness_s: float = Field(default=5.0, ge=0, le=3600, description="out-of-order tolerance of captures")
    merge_gap_s: float = Field(default=3600.0, gt=0, description="an incident closes after this much quiet")
    max_line_bytes: int = Field(
        default=4 * 1024 * 1024, ge=1024, description="longer capture lines are skipped"
    )
    detectors: dict[str, dict[str, Any]] = Field(default_factory=dict, description="per-detector thresholds")
    disabled_detectors: list[str] = Field(default_factory=list)
    seal_tokens: bool = Field(default=False, description="keep AES-GCM sealed raw tokens for audited reveal")
    master_key_file: Path | None = Field(
        default=None, description="local master key for sealed tokens (0600)"
    )
    vault_request_ttl_s: float = Field(
        default=86_400.0, gt=0, description="how long a reveal approval is valid"
    )
    retention: dict[str, str | int | None] = Field(
        default_factory=dict, description="retention per data kind, e.g. {alerts = '400d', captures = '30d'}"
    )
    log_level: Literal["debug", "info", "warning", "error"] = "warning"
    log_format: Literal["json", "console"] = "json"

    @property
    def effective_key_file(self) -> Path:
        return self.key_file or self.home / "pseudonym.key"

    @property
    def effective_db_url(self) -> str:
        return self.db_url or f"sqlite:///{self.home / 'chargeguard.db'}"


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Settings from (lowest first) defaults, the TOML file, the environment, then explicit overrides."""
    file_values: dict[str, Any] = {}
    if config_file is not None:
        try:
            file_values = tomllib.loads(config_file.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"settings file {config_file} cannot be read: {exc.strerror}") from exc
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"settings file {config_file} is not valid TOML: {exc}") from exc
    try:
        env_only = Settings()
        merged = {
            **file_values,
            **env_only.model_dump(exclude_unset=True),
            **{k: v for k, v in overrides.items() if v is not None},
        }
        return Settings(**merged)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"invalid settings: {problems}") from exc
