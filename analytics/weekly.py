"""The weekly quality review: every figure of the notebook and the report, for one ISO week.

``build_weekly_review(data_dir, week, service=None)`` reads the store through the analytics
API only (``metrics``, ``compare``, ``clusters``) and the ``alerts`` view, and returns a
``WeeklyReview``: plain Polars frames and dicts (the week-over-week changes come from
``analytics.weekly_changes``) that ``analytics.weekly_text`` turns into
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

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import duckdb
import polars as pl

from analytics.compare import Slice, compare_all
from analytics.errors import AnalyticsError
from analytics.filters import NO_FILTERS, Filters
from analytics.metrics import compute_kpis, compute_timeseries, list_trace_metrics
from analytics.views import open_store
from analytics.weekly_changes import alerts_frame, failure_modes_frame, prompt_versions_frame

DEFAULT_DASHBOARD_URL = "http://127.0.0.1:8501/"
_WEEK = re.compile(r"^\s*(\d{4})-?[Ww](\d{1,2})\s*$")
MAX_EXAMPLES = 8
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
    - ``failure_modes``: ``analytics.weekly_changes.failure_modes_frame``.
    - ``prompt_versions``: ``analytics.weekly_changes.prompt_versions_frame``.
    - ``alerts``: ``analytics.weekly_changes.alerts_frame``.
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


def _examples(this_week: pl.DataFrame, modes: pl.DataFrame, alerts: pl.DataFrame,
              versions: pl.DataFrame,
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
