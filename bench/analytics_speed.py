"""Query latency of the analytics API on a store (issue 4 speed targets).

    python bench/analytics_speed.py DATA_DIR [--repeat 10]

DATA_DIR holds a store built from the samples generator (``tracewatch samples generate
--scale N`` then ``tracewatch ingest``).  Prints, per query, p50 / p95 over ``--repeat`` runs
on one open connection against the issue 4 target for the store's size (PASS / FAIL), then
the peak RSS of the process.  Timed separately: ``open_store`` and the first metrics query
of a connection, which builds the per-trace metrics table that every later query reuses
(``analytics.views.trace_metrics_table``; it is what a dashboard page's first render pays).

Targets (issue 4): at 1M spans any single aggregate p95 <= 150 ms, the overview set (7 days,
hourly, all KPIs, by prompt version) <= 0.3 s, one trace with its spans <= 50 ms; at 10M:
1 s, 1 s, 100 ms; the process <= 1 GB.  Stores up to 1M spans are held to the 1M targets,
larger ones to the 10M targets.  The machine's load skews wall-clock figures (the load
average is printed): run it on a quiet machine, and repeat; the CPU time per query (all
threads of the process) is printed too, as it depends less on other processes.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from analytics.metrics import compute_kpis, compute_timeseries
from analytics.views import open_store, trace_metrics_table

# (aggregate, overview set, one trace) p95 targets in seconds, per store size.
TARGETS_1M = {"aggregate": 0.150, "overview": 0.300, "trace": 0.050}
TARGETS_10M = {"aggregate": 1.0, "overview": 1.0, "trace": 0.100}
RSS_TARGET_MB = 1024


def _time(func: Callable[[], object], repeat: int) -> tuple[float, float, float]:
    """Wall-clock p50 and p95, and the p50 of the process's CPU time (all threads)."""
    runs, cpu = [], []
    for _ in range(repeat):
        started, started_cpu = time.perf_counter(), time.process_time()
        func()
        runs.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
    runs.sort()
    p95 = runs[min(len(runs) - 1, round(0.95 * (len(runs) - 1)))]
    return statistics.median(runs), p95, statistics.median(cpu)


def _verdict(seconds: float, target: float) -> str:
    return f"target {target * 1000:6.0f} ms  {'PASS' if seconds <= target else 'FAIL'}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args(argv)

    started = time.perf_counter()
    con = open_store(args.data_dir)
    open_s = time.perf_counter() - started
    cursor = con.cursor()
    num_spans, last = cursor.execute(
        "SELECT count(*), max(start_time) FROM _spans_raw").fetchone() or (0, None)
    if not num_spans or last is None:
        print("empty store")
        return 1
    targets = TARGETS_1M if num_spans <= 1_100_000 else TARGETS_10M
    since_7d, since_30d = last - timedelta(days=7), last - timedelta(days=30)
    trace_id = cursor.execute(
        "SELECT trace_id FROM _spans_raw WHERE start_time >= ? LIMIT 1", [since_7d]).fetchone()
    assert trace_id is not None
    cursor.close()

    # What a fresh connection's first query pays: building the per-trace table for its
    # range (7 days: the day partitions of the range only; 30 days: here the whole store).
    fresh = open_store(args.data_dir)
    started = time.perf_counter()
    compute_timeseries(fresh, since_7d, window="1h", by=["prompt_version"])
    first_7d_s = time.perf_counter() - started
    fresh.close()
    started = time.perf_counter()
    table = trace_metrics_table(con, since_30d)
    first_s = time.perf_counter() - started
    num_traces = con.cursor().execute(
        f"SELECT count(*) FROM {table}").fetchone()[0]  # type: ignore[index]

    def one_trace() -> object:
        cur = con.cursor()
        try:
            return cur.execute("SELECT * FROM spans WHERE trace_id = ? ORDER BY start_time",
                               [trace_id[0]]).fetchall()
        finally:
            cur.close()

    queries: dict[str, tuple[str, Callable[[], object]]] = {
        "kpis 30 days": ("aggregate", lambda: compute_kpis(con, since_30d)),
        "kpis 30 days by model_name":
            ("aggregate", lambda: compute_kpis(con, since_30d, by=["model_name"])),
        "timeseries 30 days daily by service_name": (
            "aggregate",
            lambda: compute_timeseries(con, since_30d, window="1d", by=["service_name"])),
        "overview 7 days hourly by prompt_version": (
            "overview",
            lambda: compute_timeseries(con, since_7d, window="1h", by=["prompt_version"])),
        "one trace with its spans": ("trace", one_trace),
    }
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"store {args.data_dir}: {num_spans:,} spans, {num_traces:,} traces "
          f"(targets of {'1M' if targets is TARGETS_1M else '10M'}); "
          f"load average {load:.1f} on {os.cpu_count()} CPUs")
    print(f"open_store {open_s * 1000:.0f} ms; first query of a connection (builds the "
          f"per-trace table): overview 7 days {first_7d_s * 1000:.0f} ms, "
          f"30 days {first_s * 1000:.0f} ms")
    failed = 0
    for name, (kind, func) in queries.items():
        p50, p95, cpu = _time(func, args.repeat)
        verdict = _verdict(p95, targets[kind])
        failed += verdict.endswith("FAIL")
        print(f"{name:42s} p50 {p50 * 1000:7.1f} ms  p95 {p95 * 1000:7.1f} ms  "
              f"(cpu p50 {cpu * 1000:6.1f} ms)  {verdict}")
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rss_ok = rss_mb <= RSS_TARGET_MB
    failed += not rss_ok
    print(f"peak RSS {rss_mb:.0f} MB  target {RSS_TARGET_MB} MB  {'PASS' if rss_ok else 'FAIL'}")
    con.close()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
