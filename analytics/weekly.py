"""The weekly quality review: every figure of the notebook and the report, for one ISO week.

``build_weekly_review(data_dir, week, service=None)`` reads the store through the analytics
API only (``metrics``, ``compare``, ``clusters``) and the ``alerts`` view, and returns a
``WeeklyReview``: plain Polars frames and dicts that ``analytics.weekly_text`` turns into
narrative, ``analytics.weekly_charts`` into Plotly figures, and ``tracewatch report`` into an
HTML report and a Slack summary.  It writes nothing (failure modes are clustered with
``persist=False``), so a review never changes what the app or the alerts see.

Periods: the week is Monday 00:00 to the next Monday 00:00 UTC (``2026-W47`` =
2026-11-16 .. 2026-11-23); the previous week is the 7 days before.  With ``service`` every
figure is cut to ``service_name = service``.

Edge cases: a bad week string (``2026-47``, ``2026-W54``) or a week without traces (for that
service) raises ``AnalyticsError``.  An empty previous week is not an error: comparisons say
"insufficient data" and failure-mode movement is "no baseline".
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import duckdb
import polars as pl

from analytics.clusters import compute_clusters
from analytics.compare import COMPARABLE_METRICS, Slice, compare_all, compare_proportions
from analytics.errors import AnalyticsError
from analytics.filters import NO_FILTERS, Filters
from analytics.metrics import compute_kpis, compute_timeseries, list_trace_metrics
from analytics.views import open_store

DEFAULT_DASHBOARD_URL = "http://127.0.0.1:8501/"
_WEEK = re.compile(r"^\s*(\d{4})-?[Ww](\d{1,2})\s*$")
# A failure mode needs this many traces in a week before it is called new or gone.
MIN_MOVEMENT_TRACES = 5
MAX_FAILURE_MODES = 10
MAX_EXAMPLES = 8
# Prompt-version effect: the new version's traces vs the previous version's in the
# PROMPT_BASELINE before the new one was first seen (a before/after comparison).
PROMPT_BASELINE = timedelta(days=7)
COST_COLUMNS = ("num_requests", "cost_usd_total", "cost_usd_per_request",
                "num_unpriced_llm_calls")


@dataclass(frozen=True, slots=True)
class WeeklyReview:
    """Everything the review shows; frames list their columns in ``build_weekly_review``."""

    week: str
    previous_week: str
    service: str | None
    since: datetime
    until: datetime
    previous_since: datetime
    dashboard_url: str
    kpis: dict[str, Any]
    previous_kpis: dict[str, Any]
    comparisons: pl.DataFrame
    cost_by_model: pl.DataFrame
    cost_by_service: pl.DataFrame
    latency_by_service: pl.DataFrame
    daily: pl.DataFrame
    daily_by_service: pl.DataFrame
    failure_modes: pl.DataFrame
    num_failing_traces: int
    prompt_versions: pl.DataFrame
    alerts: pl.DataFrame
    examples: pl.DataFrame

    def trace_link(self, trace_id: str) -> str:
        return build_trace_link(self.dashboard_url, trace_id)


def parse_iso_week(text: str) -> tuple[datetime, datetime]:
    """Monday 00:00 UTC of an ISO week and of the week after (naive UTC datetimes).

    >>> parse_iso_week("2026-W47")
    (datetime.datetime(2026, 11, 16, 0, 0), datetime.datetime(2026, 11, 23, 0, 0))
    """
    match = _WEEK.match(text or "")
    if match is None:
        raise AnalyticsError(f"bad week {text!r}: expected YYYY-Www, e.g. 2026-W47")
    try:
        start = datetime.fromisocalendar(int(match.group(1)), int(match.group(2)), 1)
    except ValueError:
        raise AnalyticsError(f"bad week {text!r}: {match.group(1)} has no week "
                             f"{int(match.group(2))}") from None
    return start, start + timedelta(days=7)


def format_iso_week(moment: datetime) -> str:
    """``2026-W47`` for any time of that week."""
    iso = moment.isocalendar()
    return f"{iso.year}-W{iso.week:02d}"


def build_trace_link(dashboard_url: str, trace_id: str) -> str:
    """The dashboard's deep link to one trace (``http://127.0.0.1:8501/?trace_id=...``)."""
    return dashboard_url.rstrip("/") + "/?" + urlencode({"trace_id": trace_id})


def build_weekly_review(
    data_dir: Path,
    week: str,
    service: str | None = None,
    dashboard_url: str = DEFAULT_DASHBOARD_URL,
    con: duckdb.DuckDBPyConnection | None = None,
) -> WeeklyReview:
    """The review of ``week`` (``YYYY-Www``), optionally for one service.

    ``con`` (an ``open_store`` connection over ``data_dir``) is opened and closed here when
    not given.  Frames:

    - ``comparisons``: ``compare_all`` of the previous week (a) vs this week (b).
    - ``cost_by_model``: model_name, provider, then per week (suffix ``_previous`` for the
      week before) num_requests, cost_usd_total, cost_usd_per_request,
      num_unpriced_llm_calls, and share_of_cost (of this week's priced cost); largest first.
    - ``cost_by_service``: the same with service_name.
    - ``latency_by_service``: service_name, num_requests, latency_p50_ms, latency_p95_ms,
      latency_p99_ms, latency_p95_ms_previous.
    - ``daily`` / ``daily_by_service``: ``compute_timeseries`` with a 1-day window over both
      weeks (window_start, [service_name], KPI columns).
    - ``failure_modes``: ``failure_modes_frame`` (see there).
    - ``prompt_versions``: ``prompt_versions_frame`` (see there).
    - ``alerts``: ``alerts_frame`` (see there).
    - ``examples``: trace_id, service_name, start_time, duration_ms, status_code, why, link.
    """
    since, until = parse_iso_week(week)
    previous_since = since - timedelta(days=7)
    owned = con is None
    con = con if con is not None else open_store(Path(data_dir))
    try:
        filters = Filters.of(service_name=service) if service else NO_FILTERS
        kpis = require_week_kpis(con, week, service)
        previous_kpis = compute_kpis(con, previous_since, since, filters).row(0, named=True)
        comparisons = compare_all(con, Slice(previous_since, since, filters, "previous week"),
                                  Slice(since, until, filters, "this week"))
        by_model = _cost_by(con, ["model_name", "provider"], since, until, previous_since,
                            filters)
        by_service = _cost_by(con, ["service_name"], since, until, previous_since, filters)
        latency = _latency_by_service(con, since, until, previous_since, filters)
        daily = compute_timeseries(con, previous_since, until, "1d", filters)
        daily_by_service = compute_timeseries(con, previous_since, until, "1d", filters,
                                              by=["service_name"])
        modes, num_failing = failure_modes_frame(Path(data_dir), since, until, service,
                                                 kpis["num_requests"],
                                                 previous_kpis["num_requests"])
        versions = prompt_versions_frame(con, since, until, service)
        alerts = alerts_frame(con, since, until, service)
        this_week = list_trace_metrics(con, since, until, filters,
                                       by=["service_name", "prompt_version"])
        examples = _examples(this_week, modes, alerts, versions, dashboard_url)
    finally:
        if owned:
            con.close()
    return WeeklyReview(
        week=format_iso_week(since), previous_week=format_iso_week(previous_since),
        service=service, since=since, until=until, previous_since=previous_since,
        dashboard_url=dashboard_url, kpis=kpis, previous_kpis=previous_kpis,
        comparisons=comparisons, cost_by_model=by_model, cost_by_service=by_service,
        latency_by_service=latency, daily=daily, daily_by_service=daily_by_service,
        failure_modes=modes, num_failing_traces=num_failing, prompt_versions=versions,
        alerts=alerts, examples=examples,
    )


def require_week_kpis(con: duckdb.DuckDBPyConnection, week: str,
                      service: str | None = None) -> dict[str, Any]:
    """The week's KPIs (``compute_kpis`` row); AnalyticsError for a bad or empty week."""
    since, until = parse_iso_week(week)
    filters = Filters.of(service_name=service) if service else NO_FILTERS
    kpis: dict[str, Any] = compute_kpis(con, since, until, filters).row(0, named=True)
    if not kpis["num_requests"]:
        where = f" for service {service!r}" if service else ""
        raise AnalyticsError(f"no traces in week {format_iso_week(since)}{where}: "
                             "ingest data or pick another week")
    return kpis


def _cost_by(con: duckdb.DuckDBPyConnection, by: list[str], since: datetime, until: datetime,
             previous_since: datetime, filters: Filters) -> pl.DataFrame:
    this = compute_kpis(con, since, until, filters, by=by).select(*by, *COST_COLUMNS)
    before = compute_kpis(con, previous_since, since, filters, by=by).select(
        *by, *(pl.col(c).alias(c + "_previous") for c in COST_COLUMNS))
    total = this["cost_usd_total"].sum() or None
    joined = this.join(before, on=by, how="left", nulls_equal=True)
    return joined.with_columns(
        (pl.col("cost_usd_total") / total if total else pl.lit(None, pl.Float64))
        .alias("share_of_cost")
    ).sort("cost_usd_total", "num_requests", descending=True, nulls_last=True)


def _latency_by_service(con: duckdb.DuckDBPyConnection, since: datetime, until: datetime,
                        previous_since: datetime, filters: Filters) -> pl.DataFrame:
    cols = ["num_requests", "latency_p50_ms", "latency_p95_ms", "latency_p99_ms"]
    this = compute_kpis(con, since, until, filters, by=["service_name"]).select(
        "service_name", *cols)
    before = compute_kpis(con, previous_since, since, filters, by=["service_name"]).select(
        "service_name", pl.col("latency_p95_ms").alias("latency_p95_ms_previous"))
    return (this.join(before, on="service_name", how="left", nulls_equal=True)
            .sort("latency_p95_ms", descending=True, nulls_last=True))


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


def _examples(this_week: pl.DataFrame, modes: pl.DataFrame, alerts: pl.DataFrame, versions: pl.DataFrame,
              dashboard_url: str) -> pl.DataFrame:
    """A short reading list: why each trace is worth opening, and its dashboard link."""
    picks: list[tuple[str, str]] = []
    moved = modes.filter(pl.col("num_traces") > 0).sort(
        pl.col("movement").is_in(["new", "growing"]), "num_traces", descending=True)
    for row in moved.head(3).iter_rows(named=True):
        if row["representative_trace_id"]:
            picks.append((row["representative_trace_id"],
                          f"failure mode {row['cluster_id']} ({row['movement']}): {row['name']}"))
    severity_rank = pl.col("severity").replace_strict(
        {"critical": 0, "warning": 1}, default=2, return_dtype=pl.Int64)
    for row in alerts.sort(severity_rank, "started_at").head(2).iter_rows(named=True):
        if row["example_trace_ids"]:
            picks.append((row["example_trace_ids"][0],
                          f"example of alert {row['rule']} ({row['group_key']})"))
    if this_week.height:
        slowest = this_week.sort("duration_ms", descending=True, nulls_last=True).row(
            0, named=True)
        picks.append((slowest["trace_id"],
                      f"slowest trace of the week ({slowest['duration_ms']:,.0f} ms)"))
        priced = this_week.filter(pl.col("cost_usd").is_not_null())
        if priced.height:
            costly = priced.sort("cost_usd", descending=True).row(0, named=True)
            picks.append((costly["trace_id"],
                          f"most expensive trace of the week (${costly['cost_usd']:.4f})"))
        shipped = set(versions["prompt_version"].drop_nulls().to_list())
        scored = this_week.filter(pl.col("groundedness").is_not_null())
        if shipped:
            scored = scored.filter(pl.col("prompt_version").is_in(sorted(shipped)))
        if scored.height:
            worst = scored.sort("groundedness", "trace_id").row(0, named=True)
            where = f" on new prompt version {worst['prompt_version']}" if shipped else ""
            picks.append((worst["trace_id"],
                          f"least grounded answer{where} (groundedness "
                          f"{worst['groundedness']:.2f})"))
    seen: dict[str, str] = {}
    for trace_id, why in picks:
        seen.setdefault(trace_id, why)
    ids = list(seen)[:MAX_EXAMPLES]
    meta = this_week.filter(pl.col("trace_id").is_in(ids)).select(
        "trace_id", "service_name", "start_time", "duration_ms", "status_code")
    order = pl.DataFrame({"trace_id": ids, "why": [seen[i] for i in ids],
                          "link": [build_trace_link(dashboard_url, i) for i in ids]},
                         schema={"trace_id": pl.String, "why": pl.String, "link": pl.String})
    return order.join(meta, on="trace_id", how="left", maintain_order="left").select(
        "trace_id", "service_name", "start_time", "duration_ms", "status_code", "why", "link")
