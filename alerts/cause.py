"""The likely cause of an alert: the slice that explains the change, what changed, examples.

``find_cause(rows, rule, group, window, baseline)`` works on the rule's per-trace rows
(``alerts.series.select_rule_rows``) of the alert's group:

1. For every value ``v`` of service_name, prompt_version, requested model and requested
   provider (dimensions the group does not already fix), it compares the slice's change
   (window mean vs the slice's baseline mean; the group's baseline when the slice is new)
   with the change of the rest of the group.  A slice is *distinctive* when its change is in
   the alert's direction and the rest changed less than half as much (or the rest is too
   small to say).  Its explained share = share of window traces x slice change / total
   change.  The named cause is the distinctive slice with the best score (explained share times
   1 - rest's change / slice's change); near-ties (within 5 %) go to the first dimension in
   the order service, prompt version, provider, model.  When no slice is
   distinctive, the cause is the group itself (e.g. the whole service).
2. What changed shortly before onset: a prompt version, model or provider of the group whose
   first trace (in the loaded data) falls within ``CHANGE_LOOKBACK`` before the window end.
3. Example traces: two or three trace ids of the cause slice in the window with the most
   extreme per-trace values in the alert's direction.

Attribution compares means of per-trace values (medians for quantile metrics such as p95
latency, so one timeout does not move a slice).  For error and fallback rates the provider
whose LLM calls failed in >= 90 % of the failed traces is added to the slice ("fallbacks away from
openai").
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import polars as pl

from alerts.rules import Rule
from alerts.series import Group

CAUSE_DIMENSIONS = {
    "service_name": "service_name",
    "prompt_version": "prompt_version",
    "requested_provider": "provider",
    "requested_model": "model_name",
}
CHANGE_LOOKBACK = timedelta(hours=6)
MIN_SLICE_TRACES = 5
# Link query keys the dashboard reads.
_LINK_KEYS = {"service_name": "service", "model_name": "model", "provider": "provider",
              "prompt_version": "prompt_version"}


@dataclass(frozen=True, slots=True)
class Cause:
    """Where the change is: ``slice`` maps dimension names of DESIGN.md to values."""

    slice: dict[str, str]
    explained_share: float
    changes: list[dict[str, str]] = field(default_factory=list)
    example_trace_ids: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"slice": self.slice, "explained_share": round(self.explained_share, 3),
                "changes": self.changes, "example_trace_ids": self.example_trace_ids}

    def describe(self) -> str:
        where = ", ".join(f"{k}={v}" for k, v in self.slice.items()) or "all traffic"
        text = f"{where} (explains {self.explained_share:.0%} of the change)"
        for change in self.changes:
            text += f"; {change['dimension']} {change['value']} first seen {change['first_seen']}"
        return text


def _centre(frame: pl.DataFrame, column: str, robust: bool = False) -> float:
    if frame.is_empty():
        return math.nan
    series = frame[column].cast(pl.Float64)
    value = series.median() if robust else series.mean()
    return float(value) if isinstance(value, (int, float)) else math.nan


def find_cause(rows: pl.DataFrame, rule: Rule, group: Group, window: tuple[datetime, datetime],
               baseline: tuple[datetime, datetime] | None) -> Cause:
    """The cause of an alert of ``rule`` on ``group``; see the module docstring."""
    column = "_value"
    spec = rule.spec
    robust = spec.statistic in ("p50", "p95", "p99")

    def _mean(frame: pl.DataFrame, column: str) -> float:
        return _centre(frame, column, robust)

    value_expr = pl.lit(1.0) if spec.kind == "count" else pl.col(spec.column).cast(pl.Float64)
    in_group = rows
    for dim, value in group:
        in_group = in_group.filter(pl.col(dim).is_null() if value is None
                                   else pl.col(dim) == value)
    in_group = in_group.with_columns(value_expr.alias(column))
    start, end = window
    current = in_group.filter((pl.col("start_time") >= start) & (pl.col("start_time") < end))
    if baseline is not None:
        reference = in_group.filter((pl.col("start_time") >= baseline[0])
                                    & (pl.col("start_time") < baseline[1]))
    else:
        reference = in_group.clear()
    group_slice = {CAUSE_DIMENSIONS.get(d, d): v for d, v in group if v is not None}
    for dim, accepted in rule.filters.items():
        if isinstance(accepted, str):
            group_slice.setdefault(dim, accepted)
    direction = -1.0 if rule.detector.direction == "down" else 1.0
    best: tuple[float, float, str, str] | None = None
    candidates: list[tuple[float, float, str, str]] = []
    total_cur = _mean(current, column)
    total_ref = _mean(reference, column) if not reference.is_empty() else math.nan
    total_change = total_cur - total_ref
    fixed = {d for d, _ in group} | set(rule.filters)
    if spec.kind != "count" and not math.isnan(total_change) and total_change * direction > 0:
        for dim in CAUSE_DIMENSIONS:
            if CAUSE_DIMENSIONS[dim] in fixed or dim in fixed:
                continue
            for value in current[dim].drop_nulls().unique().to_list():
                cur_in = current.filter(pl.col(dim) == value)
                if cur_in.height < MIN_SLICE_TRACES:
                    continue
                cur_out = current.filter(pl.col(dim) != value)
                ref_in = reference.filter(pl.col(dim) == value)
                ref_out = reference.filter(pl.col(dim) != value)
                base_in = (_mean(ref_in, column) if ref_in.height >= MIN_SLICE_TRACES
                           else total_ref)
                change_in = _mean(cur_in, column) - base_in
                if not change_in * direction > 0:
                    continue
                if cur_out.height >= MIN_SLICE_TRACES and ref_out.height >= MIN_SLICE_TRACES:
                    change_out = _mean(cur_out, column) - _mean(ref_out, column)
                    if change_out * direction > 0.5 * change_in * direction:
                        continue  # the rest moved too: not this slice alone
                    # Score: explained share, discounted by how much the rest moved too.
                    purity = 1.0 - max(0.0, change_out / change_in)
                elif cur_out.height < MIN_SLICE_TRACES:
                    continue  # the slice is (almost) the whole group: nothing to single out
                else:
                    purity = 1.0
                share = cur_in.height / current.height
                explained = min(1.0, share * change_in / total_change)
                candidates.append((explained * purity, share, dim, str(value)))
        if candidates:
            top = max(c[0] for c in candidates)
            order = list(CAUSE_DIMENSIONS)
            near = [c for c in candidates if c[0] >= 0.95 * top]
            best = min(near, key=lambda c: (order.index(c[2]), c[1]))
    cause_slice = dict(group_slice)
    explained = 1.0
    selection = current
    if best is not None:
        explained, _, dim, value = best
        cause_slice[CAUSE_DIMENSIONS[dim]] = value
        selection = current.filter(pl.col(dim) == value)
    examples = (selection.sort(column, descending=direction > 0)
                .head(3)["trace_id"].to_list())
    if rule.metric in ("fallback_rate", "error_rate"):
        provider = _failing_provider(selection.filter(pl.col(column) > 0))
        if provider is not None:
            cause_slice.setdefault("provider", provider)
    changes = _recent_changes(in_group, end)
    return Cause(cause_slice, explained, changes, examples)


def _failing_provider(failed: pl.DataFrame) -> str | None:
    """The provider whose LLM calls failed in >= 90 % of the failed / fallen-back traces."""
    if failed.height < MIN_SLICE_TRACES:
        return None
    counts = failed["failed_provider"].drop_nulls().value_counts(sort=True)
    if counts.is_empty():
        return None
    value, count = counts.row(0)
    return str(value) if count >= 0.9 * failed.height else None


def _recent_changes(in_group: pl.DataFrame, end: datetime) -> list[dict[str, str]]:
    """Prompt versions, models and providers first seen within CHANGE_LOOKBACK before end."""
    if in_group.is_empty():
        return []
    data_start = in_group["start_time"].min()
    changes = []
    for dim in ("prompt_version", "requested_model", "requested_provider"):
        firsts = (in_group.filter(pl.col(dim).is_not_null() & (pl.col("start_time") < end))
                  .group_by(dim).agg(pl.col("start_time").min().alias("first")))
        for value, first in firsts.iter_rows():
            if first > data_start and end - CHANGE_LOOKBACK <= first:
                changes.append({"dimension": CAUSE_DIMENSIONS[dim], "value": str(value),
                                "first_seen": first.strftime("%Y-%m-%dT%H:%M:%SZ")})
    return changes


def build_dashboard_link(base_url: str, slice_: dict[str, str], since: datetime,
                         until: datetime, trace_id: str | None = None,
                         extra: dict[str, str] | None = None) -> str:
    """``http://127.0.0.1:8501/?service=..&prompt_version=..&from=..&to=..``.

    ``extra`` adds other dashboard keys, e.g. ``{"page": "prompt_versions", "b": "v4"}``
    to open the prompt diff of a new version against the one before it.
    """
    params = {_LINK_KEYS[k]: v for k, v in slice_.items() if k in _LINK_KEYS}
    params.update(extra or {})
    params["from"] = since.strftime("%Y-%m-%dT%H:%M:%SZ")
    params["to"] = until.strftime("%Y-%m-%dT%H:%M:%SZ")
    if trace_id:
        params["trace_id"] = trace_id
    return base_url.rstrip("/") + "/?" + urlencode(params)
