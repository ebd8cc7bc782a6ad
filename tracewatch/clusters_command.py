"""``tracewatch clusters``: group the failing traces of a window into failure modes and print them.

``tracewatch clusters [--since T] [--until T] [--format table|json|csv] [--data-dir D]``
clusters the traces that start in ``[since, until)``, persists the run under
``<data_dir>/analytics/clusters/`` (what the app and the alerts read) and prints one row per
cluster.  T is an ISO date or datetime (UTC when no zone is given) or a duration back from
now (``7d``, ``24h``, ``90m``).  Defaults: the last 7 days.  ``--filter COLUMN=VALUE`` restricts
to a service, model, prompt version or root span name.
"""

from __future__ import annotations

import argparse
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from analytics.errors import AnalyticsError

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
DEFAULT_WINDOW = timedelta(days=7)
COLUMNS = ("cluster_id", "name", "num_traces", "share_of_traffic", "trend", "slices",
           "representative_trace_id", "is_new", "growth_ratio", "first_seen_at")


def parse_time(text: str, now: datetime) -> datetime:
    """An ISO date/datetime (UTC if naive) or a duration back from ``now``, as naive UTC."""
    match = _DURATION.match(text.strip())
    if match:
        return now - timedelta(seconds=float(match.group(1)) * _UNIT_S[match.group(2)])
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise AnalyticsError(f"bad time {text!r}: use an ISO date/datetime or a duration like 7d") from None
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc).replace(tzinfo=None)
    return value


def _parse_filters(items: list[str] | None) -> dict[str, str]:
    filters: dict[str, str] = {}
    for item in items or []:
        column, sep, value = item.partition("=")
        if not sep or not column:
            raise AnalyticsError(f"bad --filter {item!r}: use COLUMN=VALUE")
        filters[column.strip()] = value
    return filters


def _cell(column: str, value: Any, fmt: str) -> Any:
    if fmt == "json":
        return value
    if column == "trend" and value is not None:
        return " ".join(str(day["num_traces"]) for day in value)
    if column == "slices" and value is not None:
        return "; ".join(f"{s['dimension']}={s['value']} ({s['cluster_share']:.0%})" for s in value)
    if column == "share_of_traffic" and value is not None:
        return f"{value:.2%}"
    return value


def run_clusters(args: argparse.Namespace) -> int:
    from analytics.clusters import compute_clusters
    from collector.config import load_collector_config
    from tracewatch.commands import write_rows

    data_dir = load_collector_config(data_dir=args.data_dir).data_dir
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    until = parse_time(args.until, now) if args.until else now
    since = parse_time(args.since, now) if args.since else until - DEFAULT_WINDOW
    if not data_dir.exists():
        raise AnalyticsError(f"no store at {data_dir}")
    result = compute_clusters(data_dir, since, until, _parse_filters(args.filter))
    rows = [tuple(_cell(c, record[c], args.format) for c in COLUMNS)
            for record in result.clusters.iter_rows(named=True)]
    write_rows(list(COLUMNS), rows, args.format)
    return 0


def add_clusters_parser(subparsers: Any) -> None:
    """Register ``tracewatch clusters`` on the CLI's subparsers."""
    parser = subparsers.add_parser("clusters", help="group failing traces into failure modes")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="store directory (default: $TRACEWATCH_DATA_DIR or ./data)")
    parser.add_argument("--since", default=None, help="start (ISO time or duration back, e.g. 7d)")
    parser.add_argument("--until", default=None, help="end, exclusive (default: now)")
    parser.add_argument("--filter", action="append", metavar="COLUMN=VALUE",
                        help="service_name, model_name, prompt_version or root_name (repeatable)")
    parser.add_argument("--format", choices=("table", "json", "csv"), default="table")
    parser.set_defaults(handler=run_clusters)
