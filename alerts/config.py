"""Alerts configuration (``AlertsConfig``): read once at start-up and passed down.

Precedence: command-line flag > ``TRACEWATCH_*`` environment variable > the ``alerts:``
section of ``tracewatch.yaml`` (or the file named by ``TRACEWATCH_CONFIG``) > defaults.
The Slack webhook URL is a secret: it comes from ``TRACEWATCH_SLACK_WEBHOOK_URL`` or from a
file named by ``slack_webhook_url_file``, is held as ``SecretStr`` and is never logged.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from alerts.errors import AlertsError

DEFAULT_RULES_FILE = Path(__file__).with_name("rules.yaml")


class AlertsConfig(BaseSettings):
    """What users set for the alerts (``tracewatch.yaml`` section ``alerts:``)."""

    model_config = SettingsConfigDict(env_prefix="TRACEWATCH_", extra="ignore")

    # Store directory; the alert state, history table and Slack outbox live here.
    data_dir: Path = Path("data")
    # Rule file; the defaults shipped in alerts/rules.yaml when not set.
    rules_file: Path = DEFAULT_RULES_FILE
    # Slack incoming-webhook URL (secret, never logged); empty means "no Slack": alerts
    # are still recorded and undelivered messages wait in the outbox.
    slack_webhook_url: SecretStr = SecretStr("")
    # File holding the webhook URL (first line), used when slack_webhook_url is empty.
    slack_webhook_url_file: Path | None = None
    # Base URL of the dashboard that alert links open (query keys: service, model,
    # provider, prompt_version, from, to, trace_id).
    dashboard_url: str = "http://127.0.0.1:8501/"
    # Attempts per Slack message before it is kept in the outbox (>= 1).
    slack_max_attempts: int = Field(default=4, ge=1)
    # First retry delay, seconds; doubles each attempt (a 429's Retry-After wins).
    slack_backoff_s: float = Field(default=1.0, ge=0.0)
    # Longest wait honoured for a 429 Retry-After before giving up to the outbox, seconds.
    slack_max_retry_after_s: float = Field(default=60.0, ge=0.0)
    # HTTP timeout of one Slack request, seconds.
    slack_timeout_s: float = Field(default=10.0, gt=0.0)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _YamlSection(settings_cls))

    def webhook_url(self) -> str:
        """The webhook URL from the setting or its file; '' when none is configured."""
        url = self.slack_webhook_url.get_secret_value().strip()
        if url or self.slack_webhook_url_file is None:
            return url
        try:
            lines = self.slack_webhook_url_file.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            # The path is configuration, not a secret; its content is never shown.
            raise AlertsError(
                f"cannot read slack_webhook_url_file {self.slack_webhook_url_file}: "
                f"{type(exc).__name__}"
            ) from None
        return lines[0].strip() if lines else ""


class _YamlSection(PydanticBaseSettingsSource):
    """The ``alerts:`` section of tracewatch.yaml."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        path = Path(os.environ.get("TRACEWATCH_CONFIG", "tracewatch.yaml"))
        if not path.is_file():
            return {}
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise AlertsError(f"cannot read config file {path}: {type(exc).__name__}") from None
        section = loaded.get("alerts", {}) if isinstance(loaded, dict) else None
        if not isinstance(section, dict):
            raise AlertsError(f"config file {path}: section 'alerts' must be a mapping")
        return section


def load_alerts_config(**overrides: Any) -> AlertsConfig:
    """The config from flags (``overrides``; None means 'not given'), env and file."""
    given = {key: value for key, value in overrides.items() if value is not None}
    try:
        return AlertsConfig(**given)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise AlertsError(f"invalid alerts configuration: {where}: {first['msg']}") from None
