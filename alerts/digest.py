"""The weekly digest: KPIs vs last week, top failure modes, prompt versions shipped.

``build_weekly_digest(con, data_dir, week_start)`` reads ``analytics.metrics.compute_kpis``
per service for the ISO week starting ``week_start`` (Monday 00:00 UTC) and the week before,
the failure modes persisted by ``analytics.clusters`` (``load_clusters`` /
``list_new_and_growing``; the section says "not computed" when no clustering run exists), and
the prompt versions first seen during the week.  Returns (title, sections) for
``alerts.slack.build_digest_message`` and for the terminal.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl

from analytics.metrics import compute_kpis

_KPIS = (("num_requests", "requests", "{:,.0f}"), ("error_rate", "error rate", "{:.1%}"),
         ("fallback_rate", "fallback rate", "{:.1%}"),
         ("grounded_rate", "grounded rate", "{:.1%}"),
         ("cost_usd_total", "cost", "${:,.2f}"),
         ("total_tokens_per_request", "tokens/request", "{:,.0f}"),
         ("latency_p95_ms", "p95 latency", "{:,.0f} ms"))


def _fmt(pattern: str, value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return pattern.format(value)


def build_weekly_digest(con: duckdb.DuckDBPyConnection, data_dir: Path,
                        week_start: datetime) -> tuple[str, list[tuple[str, list[str]]]]:
    """Title and sections of the digest of the week starting ``week_start``."""
    week_end = week_start + timedelta(days=7)
    this = compute_kpis(con, week_start, week_end, by=["service_name"])
    last = compute_kpis(con, week_start - timedelta(days=7), week_start, by=["service_name"])
    previous = {row["service_name"]: row for row in last.iter_rows(named=True)}
    kpi_lines = []
    for row in this.iter_rows(named=True):
        before = previous.get(row["service_name"], {})
        parts = []
        for column, label, pattern in _KPIS:
            now, then = row.get(column), before.get(column)
            change = ""
            if isinstance(now, (int, float)) and isinstance(then, (int, float)) and then:
                change = f" ({(now - then) / abs(then):+.0%})"
            parts.append(f"{label} {_fmt(pattern, now)}{change}")
        kpi_lines.append(f"• *{row['service_name']}*: " + ", ".join(parts))
    sections = [("KPIs vs last week", kpi_lines),
                ("Top failure modes", _failure_modes(data_dir)),
                ("Prompt versions shipped", _prompt_versions(con, week_start, week_end))]
    iso = week_start.isocalendar()
    return f"tracewatch weekly digest {iso.year}-W{iso.week:02d}", sections


def _failure_modes(data_dir: Path) -> list[str]:
    try:
        from analytics.clusters import list_new_and_growing, load_clusters
    except ImportError:  # clusters not installed in this build
        return ["failure modes not available"]
    clusters = load_clusters(data_dir)
    if clusters.is_empty():
        return ["not computed yet: run `tracewatch clusters`"]
    flagged = set(list_new_and_growing(data_dir)["cluster_id"].to_list())
    lines = []
    for row in clusters.sort("num_traces", descending=True).head(5).iter_rows(named=True):
        tag = " (new or growing)" if row["cluster_id"] in flagged else ""
        lines.append(f"• {row['name']}: {row['num_traces']} traces{tag}")
    return lines


def _prompt_versions(con: duckdb.DuckDBPyConnection, since: datetime,
                     until: datetime) -> list[str]:
    cursor = con.cursor()
    try:
        frame: pl.DataFrame = cursor.sql(
            "SELECT service_name, prompt_version, min(start_time) AS first_seen, count(*) AS n "
            "FROM traces WHERE prompt_version IS NOT NULL GROUP BY ALL "
            "HAVING min(start_time) >= ? AND min(start_time) < ? ORDER BY first_seen",
            params=[since, until]).pl()
    finally:
        cursor.close()
    return [f"• {r['service_name']} `{r['prompt_version']}` first seen "
            f"{r['first_seen']:%Y-%m-%d %H:%M}Z ({r['n']} traces)"
            for r in frame.iter_rows(named=True)]
