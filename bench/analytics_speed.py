"""Query latency of the analytics API on a store (issue 4 speed targets).

    python bench/analytics_speed.py DATA_DIR [--repeat 10]

DATA_DIR holds a store built from the samples generator (``tracewatch samples generate
--scale N`` then ``tracewatch ingest``).  Prints p50 / p95 per query over ``--repeat`` runs
on one open connection (``open_store`` timed separately), the span count and the peak RSS.
Targets at 1M spans: any single aggregate p95 <= 150 ms, the overview set (7 days, hourly,
all KPIs, by prompt version) <= 0.3 s, one trace with its spans <= 50 ms; at 10M: 1 s, 1 s,
100 ms; the process <= 1 GB.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from analytics.metrics import compute_kpis, compute_timeseries
from analytics.views import open_store


def _time(func: Callable[[], object], repeat: int) -> tuple[float, float]:
    runs = []
    for _ in range(repeat):
        started = time.perf_counter()
        func()
        runs.append(time.perf_counter() - started)
    runs.sort()
    p95 = runs[min(len(runs) - 1, round(0.95 * (len(runs) - 1)))]
    return statistics.median(runs), p95


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args(argv)

    started = time.perf_counter()
    con = open_store(args.data_dir)
    open_s = time.perf_counter() - started
    num_spans, last = con.execute("SELECT count(*), max(start_time) FROM spans").fetchone() or (0, None)
    if not num_spans or last is None:
        print("empty store")
        return 1
    since_7d, since_30d = last - timedelta(days=7), last - timedelta(days=30)
    trace_id = con.execute(
        "SELECT trace_id FROM spans WHERE start_time >= ? LIMIT 1", [since_7d]).fetchone()
    assert trace_id is not None
    queries: dict[str, Callable[[], object]] = {
        "kpis 30 days": lambda: compute_kpis(con, since_30d),
        "kpis 30 days by model_name": lambda: compute_kpis(con, since_30d, by=["model_name"]),
        "overview 7 days hourly by prompt_version":
            lambda: compute_timeseries(con, since_7d, window="1h", by=["prompt_version"]),
        "timeseries 30 days daily by service_name":
            lambda: compute_timeseries(con, since_30d, window="1d", by=["service_name"]),
        "one trace with its spans": lambda: con.execute(
            "SELECT * FROM spans WHERE trace_id = ? ORDER BY start_time", [trace_id[0]]
        ).fetchall(),
    }
    print(f"store {args.data_dir}: {num_spans:,} spans; open_store {open_s * 1000:.0f} ms")
    for name, func in queries.items():
        p50, p95 = _time(func, args.repeat)
        print(f"{name:45s} p50 {p50 * 1000:8.1f} ms   p95 {p95 * 1000:8.1f} ms")
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {rss_mb:.0f} MB")
    con.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
