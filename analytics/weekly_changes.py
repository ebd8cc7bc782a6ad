"""What changed in a week: failure modes that moved, prompt versions shipped, alerts fired.

The three "changes" sections of the weekly review (``analytics.weekly``), each a function
of the store returning a Polars frame whose columns its docstring lists.  Read-only: failure
modes are clustered with ``persist=False``, alerts are read from the ``alerts`` view.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from analytics.clusters import compute_clusters
from analytics.compare import COMPARABLE_METRICS, Slice, compare_all, compare_proportions
from analytics.filters import Filters
from analytics.metrics import list_trace_metrics

# A failure mode needs this many traces in a week before it is called new or gone.
MIN_MOVEMENT_TRACES = 5
MAX_FAILURE_MODES = 10
# Prompt-version effect: the new version's traces vs the previous version's in the
# PROMPT_BASELINE before the new one was first seen (a before/after comparison).
PROMPT_BASELINE = timedelta(days=7)


FAILURE_MODE_SCHEMA: dict[str, Any] = {
    "cluster_id": pl.String, "name": pl.String, "num_traces": pl.Int64,
    "num_traces_previous": pl.Int64, "share": pl.Float64, "share_previous": pl.Float64,
    "movement": pl.String, "p_value": pl.Float64, "reasons": pl.List(pl.String),
    "where": pl.String, "representative_trace_id": pl.String,
}


def failure_modes_frame(data_dir: Path, since: datetime, until: datetime, service: str | None,
                        num_requests: int, num_requests_previous: int
                        ) -> tuple[pl.DataFrame, int]:
    """Failure modes of both weeks and how they moved; and the number of failing traces.

    The traces of the previous week and this week are clustered together (one run, not
    persisted), so a mode has the same id in both weeks.  Per mode: num_traces (this week),
    num_traces_previous, share / share_previous (of all requests of that week), movement,
    p_value (two-proportion z-test of the shares), reasons, where (the slice the mode
    concentrates in, e.g. ``service_name=doc-extraction (100%)``) and a representative trace
    of this week.  Movement: ``new`` (none the week before, at least MIN_MOVEMENT_TRACES
    now), ``gone`` (the reverse), ``growing`` / ``shrinking`` (share changed, p < 0.05),
    ``steady``; ``no baseline`` when the previous week has no traffic.  Sorted by this week's
    traces; modes absent this week come last.  At most MAX_FAILURE_MODES rows (the largest).
    """
    result = compute_clusters(data_dir, since - timedelta(days=7), until,
                              {"service_name": service} if service else None, persist=False)
    members = result.members.with_columns(
        (pl.col("day") >= since.date()).alias("this_week"))
    counts = members.group_by("cluster_id").agg(
        pl.col("this_week").sum().cast(pl.Int64).alias("num_traces"),
        (~pl.col("this_week")).sum().cast(pl.Int64).alias("num_traces_previous"))
    representatives = (members.filter(pl.col("this_week")).group_by("cluster_id")
                       .agg(pl.col("trace_id").first().alias("member_trace_id")))
    rows: list[dict[str, Any]] = []
    info = {r["cluster_id"]: r for r in result.clusters.iter_rows(named=True)}
    rep_of = dict(representatives.iter_rows())
    for cluster_id, n_this, n_before in counts.iter_rows():
        row = info[cluster_id]
        movement, p_value = _movement(n_before, num_requests_previous, n_this, num_requests)
        rep = row["representative_trace_id"]
        if rep not in set(members.filter(pl.col("this_week") & (pl.col("cluster_id") == cluster_id))
                          ["trace_id"].to_list()):
            rep = rep_of.get(cluster_id)  # the run's representative may be last week's
        rows.append({
            "cluster_id": cluster_id, "name": row["name"], "num_traces": n_this,
            "num_traces_previous": n_before,
            "share": n_this / num_requests if num_requests else None,
            "share_previous": (n_before / num_requests_previous
                               if num_requests_previous else None),
            "movement": movement, "p_value": p_value, "reasons": row["reasons"],
            "where": "; ".join(f"{s['dimension']}={s['value']} ({s['cluster_share']:.0%})"
                               for s in (row["slices"] or [])[:2]) or None,
            "representative_trace_id": rep,
        })
    frame = pl.DataFrame(rows, schema=FAILURE_MODE_SCHEMA)
    frame = frame.sort(["num_traces", "num_traces_previous"], descending=True).head(
        MAX_FAILURE_MODES)
    num_failing = int(members["this_week"].sum()) if members.height else 0
    return frame, num_failing


def _movement(n_before: int, total_before: int, n_this: int, total_this: int
              ) -> tuple[str, float | None]:
    if not total_before:
        return "no baseline", None
    comparison = compare_proportions(n_before, total_before, n_this, total_this,
                                     metric="share_of_traffic")
    if n_before == 0 and n_this >= MIN_MOVEMENT_TRACES:
        return "new", comparison.p_value
    if n_this == 0 and n_before >= MIN_MOVEMENT_TRACES:
        return "gone", comparison.p_value
    if comparison.significant and comparison.difference is not None:
        return ("growing" if comparison.difference > 0 else "shrinking"), comparison.p_value
    return "steady", comparison.p_value


PROMPT_EFFECT_METRICS = ("error_rate", "fallback_rate", "grounded_rate", "groundedness_mean",
                         "latency_p50_ms", "latency_p95_ms", "cost_usd_per_request")


def prompt_versions_frame(con: duckdb.DuckDBPyConnection, since: datetime, until: datetime,
                          service: str | None) -> pl.DataFrame:
    """Prompt versions first seen this week and their measured effect, one row per metric.

    A version is *shipped* this week when its first trace (of its service) starts in the
    week.  Its effect: its traces from first seen to the week's end (b) against the
    previous version's (the service's busiest other version in the PROMPT_BASELINE before)
    in that PROMPT_BASELINE (a): ``compare_all`` over PROMPT_EFFECT_METRICS.

    Columns: service_name, prompt_version, first_seen, num_traces (this week),
    previous_version (NULL when there is none: then no metric rows, metric NULL), then the
    ``compare_all`` columns (metric, value_a, value_b, num_a, num_b, difference, ci_low,
    ci_high, p_value, significant, status).
    """
    metric_cols: dict[str, Any] = {
        "metric": pl.String, "value_a": pl.Float64, "value_b": pl.Float64, "num_a": pl.Int64,
        "num_b": pl.Int64, "difference": pl.Float64, "ci_low": pl.Float64,
        "ci_high": pl.Float64, "p_value": pl.Float64, "significant": pl.Boolean,
        "status": pl.String}
    schema: dict[str, Any] = {"service_name": pl.String, "prompt_version": pl.String,
                              "first_seen": pl.Datetime("us"), "num_traces": pl.Int64,
                              "previous_version": pl.String, **metric_cols}
    versions = list_trace_metrics(con, None, until, by=["service_name", "prompt_version"])
    if service:
        versions = versions.filter(pl.col("service_name") == service)
    versions = versions.filter(pl.col("prompt_version").is_not_null())
    firsts = (versions.group_by("service_name", "prompt_version")
              .agg(pl.col("start_time").min().alias("first_seen"),
                   pl.col("start_time").filter(pl.col("start_time") >= since).len()
                   .cast(pl.Int64).alias("num_traces"))
              .filter(pl.col("first_seen") >= since).sort("first_seen"))
    rows: list[dict[str, Any]] = []
    for svc, version, first_seen, num_traces in firsts.iter_rows():
        base = {"service_name": svc, "prompt_version": version, "first_seen": first_seen,
                "num_traces": num_traces}
        before = versions.filter(
            (pl.col("service_name") == svc) & (pl.col("prompt_version") != version)
            & (pl.col("start_time") >= first_seen - PROMPT_BASELINE)
            & (pl.col("start_time") < first_seen))
        if before.is_empty():
            rows.append({**base, "previous_version": None})
            continue
        previous = before.group_by("prompt_version").len().sort(
            ["len", "prompt_version"], descending=[True, False])["prompt_version"][0]
        filters = Filters.of(service_name=svc)
        effect = compare_all(
            con,
            Slice(first_seen - PROMPT_BASELINE, first_seen,
                  filters.with_("prompt_version", previous), str(previous)),
            Slice(first_seen, until, filters.with_("prompt_version", version), str(version)),
            metrics=[m for m in PROMPT_EFFECT_METRICS if m in COMPARABLE_METRICS])
        for metric_row in effect.iter_rows(named=True):
            rows.append({**base, "previous_version": previous,
                         **{k: metric_row[k] for k in metric_cols}})
    return pl.DataFrame(rows, schema=schema)


ALERT_SCHEMA: dict[str, Any] = {
    "alert_id": pl.String, "rule": pl.String, "severity": pl.String, "metric": pl.String,
    "group_key": pl.String, "state": pl.String, "started_at": pl.Datetime("us"),
    "resolved_at": pl.Datetime("us"), "value": pl.Float64, "baseline": pl.Float64,
    "verdict": pl.String, "cause": pl.String, "example_trace_ids": pl.List(pl.String),
}


def alerts_frame(con: duckdb.DuckDBPyConnection, since: datetime, until: datetime,
                 service: str | None) -> pl.DataFrame:
    """Alerts that started this week (the ``alerts`` history view), oldest first.

    With ``service``, only the alerts whose group or cause names that service.  Columns:
    alert_id, rule, severity, metric, group_key, state, started_at, resolved_at, value,
    baseline, verdict, cause (the slice and what changed, in words), example_trace_ids.
    """
    cursor = con.cursor()
    try:
        raw = cursor.sql(
            "SELECT alert_id, rule, severity, metric, group_key, state, started_at, "
            "resolved_at, value, baseline, detail FROM alerts "
            "WHERE started_at >= ? AND started_at < ? ORDER BY started_at, alert_id",
            params=[since, until]).fetchall()
    finally:
        cursor.close()
    rows = []
    for (alert_id, rule, severity, metric, group_key, state, started_at, resolved_at, value,
         baseline, detail_text) in raw:
        try:
            detail = json.loads(detail_text or "{}")
        except ValueError:
            detail = {}
        cause = detail.get("cause") or {}
        slice_ = cause.get("slice") or {}
        group = detail.get("group") or {}
        if service and service not in (slice_.get("service_name"), group.get("service_name")):
            continue
        rows.append({
            "alert_id": alert_id, "rule": rule, "severity": severity, "metric": metric,
            "group_key": group_key, "state": state, "started_at": started_at,
            "resolved_at": resolved_at, "value": value, "baseline": baseline,
            "verdict": detail.get("verdict"), "cause": _describe_cause(cause),
            "example_trace_ids": [str(t) for t in cause.get("example_trace_ids") or []],
        })
    return pl.DataFrame(rows, schema=ALERT_SCHEMA)


def _describe_cause(cause: dict[str, Any]) -> str | None:
    if not cause:
        return None
    slice_ = cause.get("slice") or {}
    text = ", ".join(f"{k}={v}" for k, v in slice_.items()) or "all traffic"
    share = cause.get("explained_share")
    if isinstance(share, (int, float)):
        text += f" (explains {share:.0%} of the change)"
    for change in cause.get("changes") or []:
        text += (f"; new {change.get('dimension')} {change.get('value')} first seen "
                 f"{change.get('first_seen')}")
    return text
