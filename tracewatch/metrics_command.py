"""``tracewatch metrics``: the KPIs of analytics.metrics, overall or per time window.

    tracewatch metrics [--since T] [--until T] [--window 1h] [--by DIM]...
                       [--format table|json|csv] [--data-dir D] [--prices F]

Without ``--window`` it prints one row per group (``compute_kpis``); with it, one row per
window and group (``compute_timeseries``).  T is ISO-8601 (UTC unless it has an offset),
``now``, or a duration ago (``24h``, ``7d``); without ``--since`` every trace counts.
DIM is service_name, model_name, provider, prompt_version or ``attr:<key>``.  Columns are
those of ``analytics.metrics.KPI_COLUMNS``; the table format rounds floats to 6 significant
digits, json and csv print them in full.
"""

from __future__ import annotations

import argparse
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tracewatch.commands import write_rows


def add_metrics_parser(subparsers: Any) -> None:
    """Register ``tracewatch metrics`` on the CLI's sub-parsers."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "metrics", help="requests, error/fallback/grounded rates, cost, tokens, latency",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="store directory (default: $TRACEWATCH_DATA_DIR or ./data)")
    parser.add_argument("--since", default=None, help="start (ISO-8601, 'now' or e.g. 24h ago)")
    parser.add_argument("--until", default=None, help="end, exclusive (default: no bound)")
    parser.add_argument("--window", default=None,
                        help="time series window, 1m .. 1w (e.g. 5m, 1h, 1d, 1w)")
    parser.add_argument("--by", action="append", default=[], metavar="DIM",
                        help="cut by service_name, model_name, provider, prompt_version or "
                             "attr:<key> (repeatable)")
    parser.add_argument("--format", choices=("table", "json", "csv"), default="table")
    parser.add_argument("--prices", type=Path, default=None, help="prices override file (YAML)")
    parser.set_defaults(handler=run_metrics)


def run_metrics(args: argparse.Namespace) -> int:
    from analytics.filters import parse_time
    from analytics.metrics import compute_kpis, compute_timeseries
    from analytics.views import open_store
    from collector.config import load_collector_config

    now = datetime.now(timezone.utc).replace(tzinfo=None)
    since = parse_time(args.since, now) if args.since else None
    until = parse_time(args.until, now) if args.until else None
    data_dir = load_collector_config(data_dir=args.data_dir).data_dir
    con = open_store(data_dir, args.prices)
    try:
        if args.window:
            frame = compute_timeseries(con, since, until, args.window, by=args.by)
        else:
            frame = compute_kpis(con, since, until, by=args.by)
    finally:
        con.close()
    rows = frame.rows()
    if args.format == "table":
        rows = [tuple(_round(value) for value in row) for row in rows]
    write_rows(frame.columns, rows, args.format)
    return 0


def _round(value: Any) -> Any:
    if isinstance(value, float):
        return float(f"{value:.6g}")
    return value
