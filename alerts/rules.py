"""Alert rules: the YAML rule file, validated by pydantic, with errors that name a line.

A rule file holds ``rules:``, a list of rules::

    rules:
      - name: p95-latency                # unique, [a-z0-9_-]
        metric: latency_p95_ms           # see METRICS
        filters: {service_name: support-copilot}   # dimension -> value or list of values
        group_by: [service_name]         # service_name, model_name, provider, prompt_version
        window: 30m                      # evaluation window ending at the evaluation time
        baseline: {kind: previous_window, window: 24h}   # or same_hours (weeks: N), fixed
        detector: {kind: mann_whitney, alpha: 0.001, min_change: 0.3, direction: up}
        min_samples: 20                  # in the window and in the baseline, per group
        pending: 10m                     # condition must hold this long before firing
        cooldown: 30m                    # condition must be clear this long before resolving
        severity: warning                # info, warning, critical
        channel: "#llm-oncall"           # shown in the message (the webhook picks the channel)

Metric kinds decide which detectors apply: ``count`` (requests), ``rate`` (a share of
traces: errors, fallbacks, grounded answers), ``distribution`` (one value per trace: latency,
cost, tokens, prompt length, summarised by the metric's statistic).

Errors: ``load_rules`` raises ``RuleFileError`` whose message is
``rules.yaml:14: rules[2].detector.alpha: Input should be less than 1`` — the line comes
from the YAML node marks of the field (or of its parent mapping when a field is missing).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from alerts.errors import RuleFileError

Dimension = Literal["service_name", "model_name", "provider", "prompt_version"]
MetricKind = Literal["count", "rate", "distribution"]
Statistic = Literal["count", "mean", "p50", "p95", "p99"]


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """How a metric is computed from the per-trace frame (``alerts.frame``)."""

    kind: MetricKind
    column: str  # per-trace column: boolean for rates, numeric for distributions
    statistic: Statistic
    denominator: str | None = None  # boolean column selecting the rate's traces
    unit: str = ""


METRICS: dict[str, MetricSpec] = {
    "requests": MetricSpec("count", "trace_id", "count", unit="traces"),
    "error_rate": MetricSpec("rate", "is_error", "mean"),
    "fallback_rate": MetricSpec("rate", "has_fallback", "mean", denominator="has_llm"),
    "grounded_rate": MetricSpec("rate", "is_grounded", "mean", denominator="is_scored"),
    "latency_p50_ms": MetricSpec("distribution", "duration_ms", "p50", unit="ms"),
    "latency_p95_ms": MetricSpec("distribution", "duration_ms", "p95", unit="ms"),
    "latency_p99_ms": MetricSpec("distribution", "duration_ms", "p99", unit="ms"),
    "cost_usd_per_request": MetricSpec("distribution", "cost_usd", "mean", unit="USD"),
    "total_tokens_per_request": MetricSpec("distribution", "total_tokens", "mean", unit="tokens"),
    "prompt_tokens_per_request": MetricSpec("distribution", "prompt_tokens", "mean",
                                            unit="tokens"),
    "completion_tokens_per_request": MetricSpec("distribution", "completion_tokens", "mean",
                                                unit="tokens"),
    "prompt_length_chars": MetricSpec("distribution", "prompt_length_chars", "mean",
                                      unit="chars"),
}

DetectorKind = Literal[
    "threshold", "relative_change", "mann_whitney", "ks", "tail_share", "two_proportion",
    "cusum", "ewma", "psi",
]
# Which detectors make sense for which metric kind.
DETECTORS_FOR_KIND: dict[MetricKind, frozenset[str]] = {
    "count": frozenset({"threshold", "relative_change"}),
    "rate": frozenset({"threshold", "relative_change", "two_proportion", "cusum", "ewma"}),
    "distribution": frozenset({"threshold", "relative_change", "mann_whitney", "ks",
                               "tail_share", "cusum", "ewma", "psi"}),
}
P_VALUE_DETECTORS = frozenset({"mann_whitney", "ks", "tail_share", "two_proportion"})

_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d|w)\s*$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


def parse_duration(text: str | int) -> timedelta:
    """``30s``, ``5m``, ``1h``, ``7d``, ``2w`` (or a number of seconds) as a timedelta."""
    if isinstance(text, int):
        return timedelta(seconds=text)
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"expected a duration like 30s, 5m, 1h, 7d, got {text!r}")
    return timedelta(seconds=int(match.group(1)) * _UNIT_S[match.group(2)])


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Baseline(_Strict):
    """What the window is compared with."""

    # previous_window: the `window` just before the evaluation window;
    # same_hours: the same hours of the day, 1..`weeks` weeks ago (pooled);
    # fixed: the constant `value`.
    kind: Literal["previous_window", "same_hours", "fixed"]
    window: timedelta | None = None
    weeks: int = Field(default=1, ge=1, le=12)
    # same_hours for counts: the median over the window and `spread` neighbours on each
    # side, so a short burst a week ago does not look like today's drop.
    spread: int = Field(default=0, ge=0, le=6)
    value: float | None = None

    @field_validator("window", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return None if value is None else parse_duration(value)

    @model_validator(mode="after")
    def _check(self) -> Baseline:
        if self.kind == "fixed" and self.value is None:
            raise ValueError("a fixed baseline needs 'value'")
        if self.kind != "fixed" and self.value is not None:
            raise ValueError("'value' is only for kind: fixed")
        return self


class Detector(_Strict):
    """How the window is judged against the baseline."""

    kind: DetectorKind
    # up: fire on increases; down: on decreases; both.
    direction: Literal["up", "down", "both"] = "up"
    # Significance level of p-value tests, after Benjamini-Hochberg across the rule's groups.
    alpha: float = Field(default=0.001, gt=0.0, lt=1.0)
    # Smallest change worth an alert: relative for counts/distributions (0.3 = 30 %),
    # absolute for rates (0.05 = 5 points).
    min_change: float = Field(default=0.0, ge=0.0)
    # threshold: the limit; psi: the PSI limit (0.2 = significant); cusum/ewma: the
    # decision interval h / control limit L in standard errors.
    threshold: float | None = None
    # cusum: allowance k in standard errors; ewma: smoothing lambda in (0, 1].
    k: float = Field(default=0.5, gt=0.0)
    # cusum/ewma: width of the buckets whose means form the series.
    bucket: timedelta = timedelta(hours=1)
    # tail_share: the baseline quantile whose exceedances are counted (0.99 = its p99).
    quantile: float = Field(default=0.99, gt=0.5, lt=1.0)

    @field_validator("bucket", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return parse_duration(value)

    @model_validator(mode="after")
    def _check(self) -> Detector:
        if self.kind in ("threshold", "cusum", "ewma", "psi") and self.threshold is None:
            raise ValueError(f"detector {self.kind} needs 'threshold'")
        if self.kind == "ewma" and self.k > 1.0:
            raise ValueError("ewma: k is the smoothing lambda and must be <= 1")
        return self


class Rule(_Strict):
    """One alert rule."""

    name: str
    metric: str
    description: str = ""
    filters: dict[Dimension, str | list[str]] = Field(default_factory=dict)
    group_by: list[Dimension] = Field(default_factory=list)
    window: timedelta = timedelta(minutes=30)
    baseline: Baseline
    detector: Detector
    min_samples: int = Field(default=20, ge=1)
    pending: timedelta = timedelta(0)
    cooldown: timedelta = timedelta(minutes=30)
    severity: Literal["info", "warning", "critical"] = "warning"
    channel: str | None = None
    enabled: bool = True

    @field_validator("window", "pending", "cooldown", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return parse_duration(value)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("use 1-64 characters a-z, 0-9, '-' and '_'")
        return value

    @field_validator("metric")
    @classmethod
    def _metric(cls, value: str) -> str:
        if value not in METRICS:
            raise ValueError(f"unknown metric {value!r}; expected one of {', '.join(METRICS)}")
        return value

    @model_validator(mode="after")
    def _check(self) -> Rule:
        kind = METRICS[self.metric].kind
        if self.detector.kind not in DETECTORS_FOR_KIND[kind]:
            allowed = ", ".join(sorted(DETECTORS_FOR_KIND[kind]))
            raise ValueError(
                f"detector {self.detector.kind} does not apply to {kind} metric "
                f"{self.metric}; use one of {allowed}"
            )
        if self.detector.kind in ("cusum", "ewma") and self.detector.bucket > self.window:
            raise ValueError("detector.bucket must not be longer than window")
        if self.baseline.kind == "fixed" and self.detector.kind in P_VALUE_DETECTORS | {"psi"}:
            raise ValueError(f"detector {self.detector.kind} needs a data baseline, not fixed")
        if self.window < timedelta(minutes=1):
            raise ValueError("window must be at least 1m")
        return self

    @property
    def spec(self) -> MetricSpec:
        return METRICS[self.metric]

    def baseline_window(self) -> timedelta:
        return self.baseline.window or self.window


class RuleSet(_Strict):
    rules: list[Rule]

    @model_validator(mode="after")
    def _unique(self) -> RuleSet:
        seen: set[str] = set()
        for rule in self.rules:
            if rule.name in seen:
                raise ValueError(f"duplicate rule name {rule.name!r}")
            seen.add(rule.name)
        return self

    def enabled(self) -> list[Rule]:
        return [rule for rule in self.rules if rule.enabled]


def load_rules(path: Path) -> RuleSet:
    """Read and validate a rule file; ``RuleFileError`` names the line and field."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RuleFileError(f"{path}: cannot read rule file: {type(exc).__name__}") from None
    return parse_rules(text, str(path))


def parse_rules(text: str, source: str = "rules.yaml") -> RuleSet:
    """Validate rule-file text (``source`` names it in messages)."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 0
        raise RuleFileError(f"{source}:{line}: invalid YAML: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise RuleFileError(f"{source}: invalid YAML: {type(exc).__name__}") from None
    if not isinstance(data, dict):
        raise RuleFileError(f"{source}:1: the rule file must be a mapping with 'rules:'")
    try:
        return RuleSet.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = tuple(first["loc"])
        line = line_of(node, loc)
        message = str(first["msg"]).removeprefix("Value error, ")
        raise RuleFileError(f"{source}:{line}: {format_loc(loc, data)}: {message}") from None


def format_loc(loc: tuple[Any, ...], data: Any) -> str:
    """``('rules', 2, 'detector', 'alpha')`` -> ``rules[2] (p95-latency).detector.alpha``."""
    text = ""
    current = data
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
            if isinstance(current, list) and 0 <= part < len(current):
                current = current[part]
                if isinstance(current, dict) and isinstance(current.get("name"), str):
                    text += f" ({current['name']})"
                continue
        else:
            text += ("." if text else "") + str(part)
        current = current.get(part) if isinstance(current, dict) else None
    return text or "file"


def line_of(node: yaml.Node | None, loc: tuple[Any, ...]) -> int:
    """1-based line of the YAML node at ``loc`` (the deepest existing ancestor if missing)."""
    if node is None:
        return 1
    line: int = node.start_mark.line + 1
    current: yaml.Node = node
    for part in loc:
        child: yaml.Node | None = None
        if isinstance(current, yaml.MappingNode):
            for key, value in current.value:
                if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                    child = value
                    # A scalar value sits on its key's line; a block collection starts below.
                    line = int(key.start_mark.line) + 1
                    break
        elif isinstance(current, yaml.SequenceNode) and isinstance(part, int):
            if 0 <= part < len(current.value):
                child = current.value[part]
                line = int(child.start_mark.line) + 1
        if child is None:
            break  # pydantic locations like a model-level check or a missing field
        current = child
    return line
