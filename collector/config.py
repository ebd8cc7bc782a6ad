"""Collector configuration: one pydantic model, read once at start-up and passed down.

Precedence: command-line flag > ``TRACEWATCH_*`` environment variable > ``tracewatch.yaml``
(or the file named by ``--config`` / ``TRACEWATCH_CONFIG``) > the defaults below.
Nested fields use ``__`` in the environment: ``TRACEWATCH_REDACTION__ENABLED=false``.
Every field is documented in README.md (a test checks it).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from collector.errors import ConfigError
from collector.redaction_config import DEFAULT_ALLOW_KEYS, DEFAULT_ENTITIES, RedactionConfig
from collector.run_config import RunConfig

__all__ = [
    "DEFAULT_ALLOW_KEYS", "DEFAULT_ENTITIES", "CollectorConfig", "RedactionConfig",
    "load_collector_config", "read_config_file",
]

class CollectorConfig(BaseSettings):
    """Everything a user can set for the collector, the store and `tracewatch ingest`."""

    model_config = SettingsConfigDict(
        env_prefix="TRACEWATCH_", env_nested_delimiter="__", extra="forbid"
    )

    # Store directory (Delta tables, spool, caches). Created if missing.
    data_dir: Path = Path("data")
    # OTLP/HTTP listen address, HOST:PORT (port 0 picks a free port).
    http: str = "127.0.0.1:4318"
    # OTLP/gRPC listen address, HOST:PORT; empty disables gRPC.
    grpc: str = "127.0.0.1:4317"
    # Bearer token clients must send; empty means no authentication (loopback use only).
    auth_token: SecretStr = SecretStr("")
    # Largest accepted request body, bytes, before decompression (413 above it).
    max_request_bytes: int = Field(default=16 * 1024 * 1024, gt=0)
    # Largest body after gzip decompression, bytes; a bigger one is refused, not inflated.
    max_decompressed_bytes: int = Field(default=64 * 1024 * 1024, gt=0)
    # Export requests read and checked at once (HTTP and gRPC together); the others wait
    # unread, HTTP bodies in their sockets and gRPC messages in HTTP/2 flow control.  Each
    # takes ~6 MB of memory while it is checked.
    max_concurrent_requests: int = Field(default=2, ge=1, le=64)
    # Seconds a request body (HTTP) or message (gRPC) may take to arrive once it is read (it
    # holds one of max_concurrent_requests meanwhile); a slower one gets 503 / UNAVAILABLE
    # with Retry-After.
    body_timeout_s: float = Field(default=30.0, gt=0.0)
    # Raw payloads waiting for redaction are spooled here (private, bounded); when the spool
    # holds this many bytes the receivers answer 503 / UNAVAILABLE with Retry-After.
    max_spool_bytes: int = Field(default=512 * 1024 * 1024, gt=0)
    # fsync each spooled request before acknowledging it (durable across power loss).
    spool_fsync: bool = True
    # Seconds between commits to the store (each commit costs ~30 ms; ~1 s keeps files few).
    commit_interval_s: float = Field(default=1.0, gt=0.0)
    # Most spans written in one commit.
    max_batch_spans: int = Field(default=50_000, gt=0)
    # Compact a day partition once it has this many small files.
    compact_min_files: int = Field(default=64, ge=2)
    # Removed files are kept this long for readers with an older snapshot before vacuum.
    vacuum_retention_s: int = Field(default=600, ge=0)
    # Seconds a client is told to wait (Retry-After) under backpressure.
    retry_after_s: int = Field(default=2, ge=1)
    # Processes that decode, normalise and redact (0 = inside the collector process).
    workers: int = Field(default=2, ge=0, le=64)
    # Logging level of the collector: DEBUG, INFO, WARNING, ERROR or CRITICAL (checked at start).
    log_level: str = "INFO"
    redaction: RedactionConfig = Field(default_factory=RedactionConfig)

    def run_config(self) -> RunConfig:
        """These settings as the running collector uses them (collector.run_config)."""
        plain = {name: getattr(self, name) for name in type(self).model_fields
                 if name not in ("redaction", "auth_token")}
        return RunConfig(
            **plain,
            auth_token=self.auth_token.get_secret_value(),
            redaction_json=(self.redaction.model_copy(update={"workers": 0}).model_dump_json()
                            if self.redaction.enabled else None),
        )

    @field_validator("log_level")
    @classmethod
    def _check_log_level(cls, value: str) -> str:
        level = value.upper()
        level = {"WARN": "WARNING", "FATAL": "CRITICAL"}.get(level, level)
        if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise ValueError(f"expected DEBUG, INFO, WARNING, ERROR or CRITICAL, got {value!r}")
        return level

    @field_validator("http", "grpc")
    @classmethod
    def _check_address(cls, value: str) -> str:
        if value == "":
            return value
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or int(port) > 65535:
            raise ValueError(f"expected HOST:PORT, got {value!r}")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _YamlSource(settings_cls))


class _YamlSource(PydanticBaseSettingsSource):
    """Reads the `collector:` section (or the whole file) of tracewatch.yaml."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        path = Path(os.environ.get("TRACEWATCH_CONFIG", "tracewatch.yaml"))
        if not path.is_file():
            return {}
        return read_config_file(path, "collector")


def read_config_file(path: Path, section: str) -> dict[str, Any]:
    """Return one section of a tracewatch.yaml file (or {} when it has none)."""
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read config file {path}: {type(exc).__name__}") from None
    if not isinstance(loaded, dict):
        raise ConfigError(f"config file {path} must hold a mapping")
    value = loaded.get(section, {})
    if not isinstance(value, dict):
        raise ConfigError(f"config file {path}: section '{section}' must be a mapping")
    return value


def load_collector_config(**overrides: Any) -> CollectorConfig:
    """Build the config from flags (``overrides``; None means 'not given'), env and file."""
    given = {key: value for key, value in overrides.items() if value is not None}
    try:
        return CollectorConfig(**given)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ConfigError(f"invalid configuration: {where}: {first['msg']}") from None
