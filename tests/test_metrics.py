"""analytics.metrics against an independent plain-Python computation (tests/metrics_store.py)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest

from analytics.errors import AnalyticsError
from analytics.filters import Filters, parse_time, parse_window
from analytics.metrics import KPI_COLUMNS, compute_kpis, compute_timeseries, list_trace_metrics
from analytics.views import open_store
from tests.metrics_store import (
    PRICED_MODEL,
    T0,
    UNKNOWN_MODEL,
    build_metrics_store,
    expected_kpis,
    group_traces,
    read_trace_oracle,
)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = tmp_path_factory.mktemp("metrics") / "store"
    build_metrics_store(data_dir)
    return data_dir


@pytest.fixture()
def con(store: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    connection = open_store(store)
    yield connection
    connection.close()


@pytest.fixture(scope="module")
def oracle(store: Path) -> dict[str, dict[str, Any]]:
    connection = open_store(store)
    try:
        return read_trace_oracle(connection)
    finally:
        connection.close()


def assert_row_matches(row: dict[str, Any], expected: dict[str, Any]) -> None:
    for column in KPI_COLUMNS:
        got, want = row[column], expected[column]
        if want is None:
            assert got is None, f"{column}: {got} != None"
        elif isinstance(want, float):
            assert got is not None and math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-12), (
                f"{column}: {got} != {want}")
        else:
            assert got == want, f"{column}: {got} != {want}"


def test_every_kpi_matches_the_oracle(con: duckdb.DuckDBPyConnection,
                                      oracle: dict[str, dict[str, Any]]) -> None:
    frame = compute_kpis(con)
    assert frame.columns == list(KPI_COLUMNS)
    assert frame.height == 1
    assert_row_matches(frame.row(0, named=True), expected_kpis(list(oracle.values())))


@pytest.mark.parametrize("dim", ["service_name", "model_name", "provider", "prompt_version",
                                 "attr:tenant"])
def test_cut_by_each_dimension(con: duckdb.DuckDBPyConnection, oracle: dict[str, dict[str, Any]],
                               dim: str) -> None:
    frame = compute_kpis(con, by=[dim])
    groups = group_traces(oracle, lambda t: t[dim])
    assert frame.height == len(groups) >= 2
    for row in frame.iter_rows(named=True):
        assert_row_matches(row, expected_kpis(groups[row[dim]]))


def test_cut_by_two_dimensions_and_filters(con: duckdb.DuckDBPyConnection,
                                           oracle: dict[str, dict[str, Any]]) -> None:
    since, until = T0 + timedelta(hours=12), T0 + timedelta(days=2)
    filters = Filters.from_mapping({"service_name": "copilot", "attr:tenant": ["t1", "t2"]})
    frame = compute_kpis(con, since, until, filters, by=["prompt_version", "model_name"])
    kept = {k: t for k, t in oracle.items()
            if since <= t["start_time"] < until and t["service_name"] == "copilot"
            and t["attr:tenant"] in ("t1", "t2")}
    groups = group_traces(kept, lambda t: (t["prompt_version"], t["model_name"]))
    assert frame.height == len(groups)
    for row in frame.iter_rows(named=True):
        assert_row_matches(row, expected_kpis(groups[(row["prompt_version"], row["model_name"])]))


def test_filter_on_null_value(con: duckdb.DuckDBPyConnection,
                              oracle: dict[str, dict[str, Any]]) -> None:
    frame = compute_kpis(con, filters=Filters.of(model_name=None))
    no_model = [t for t in oracle.values() if t["model_name"] is None]
    assert frame["num_requests"][0] == len(no_model) > 0


@pytest.mark.parametrize("window", ["1m", "15m", "1h", "6h", "1d", "1w"])
def test_timeseries_matches_the_oracle(con: duckdb.DuckDBPyConnection,
                                       oracle: dict[str, dict[str, Any]], window: str) -> None:
    width = parse_window(window)
    frame = compute_timeseries(con, window=window, by=["service_name"])
    assert frame.columns[:2] == ["window_start", "service_name"]
    origin = datetime(2000, 1, 3)  # time_bucket's origin: a Monday

    def bucket(t: dict[str, Any]) -> tuple[datetime, str]:
        start = origin + ((t["start_time"] - origin) // width) * width
        return start, t["service_name"]

    groups = group_traces(oracle, bucket)
    assert frame.height == len(groups)
    for row in frame.iter_rows(named=True):
        assert_row_matches(row, expected_kpis(groups[(row["window_start"], row["service_name"])]))
    assert frame["num_requests"].sum() == len(oracle)


def test_edge_cases_per_trace(con: duckdb.DuckDBPyConnection) -> None:
    per_trace = {r["trace_id"]: r for r in list_trace_metrics(con).iter_rows(named=True)}
    skew, orphan = per_trace["a" * 32], per_trace["b" * 32]
    # Clock skew: latency is the root's own duration, not the envelope.
    assert skew["duration_ms"] == pytest.approx(1000.0)
    assert skew["start_time"] == T0 + timedelta(hours=5)
    # Root never arrived: the envelope of the spans, no status (not an error).
    assert orphan["duration_ms"] == pytest.approx(1300.0)
    assert orphan["status_code"] is None and orphan["is_error"] is False
    # One unknown model in the orphan trace: counted unpriced, the priced call still costs.
    assert orphan["num_unpriced_llm_calls"] == 1 and orphan["cost_usd"] > 0
    after_orphan = T0 + timedelta(hours=7)  # the other unknown-model traces call nothing else
    only_unknown = compute_kpis(con, since=after_orphan,
                                filters=Filters.of(model_name=UNKNOWN_MODEL[0]))
    assert only_unknown["num_requests"][0] > 0
    assert only_unknown["cost_usd_total"][0] is None  # NULL, never 0
    assert only_unknown["num_unpriced_llm_calls"][0] == only_unknown["num_requests"][0]
    no_llm = [r for r in per_trace.values() if r["llm_calls"] == 0]
    assert no_llm and all(r["cost_usd"] is None and r["total_tokens"] is None for r in no_llm)
    missing_tokens = [r for r in per_trace.values()
                      if r["llm_calls"] == 1 and r["prompt_tokens"] is None]
    assert missing_tokens


def test_empty_slice_gives_one_row_of_zero_and_nulls(con: duckdb.DuckDBPyConnection) -> None:
    frame = compute_kpis(con, T0 - timedelta(days=10), T0 - timedelta(days=9))
    row = frame.row(0, named=True)
    assert row["num_requests"] == 0 and row["error_rate"] is None
    assert row["latency_p95_ms"] is None and row["cost_usd_total"] is None
    assert compute_kpis(con, T0 - timedelta(days=10), T0 - timedelta(days=9),
                        by=["service_name"]).height == 0


def test_aware_datetimes_are_converted_to_utc(con: duckdb.DuckDBPyConnection) -> None:
    plus2 = timezone(timedelta(hours=2))
    naive = compute_kpis(con, T0, T0 + timedelta(days=1))
    aware = compute_kpis(con, (T0 + timedelta(hours=2)).replace(tzinfo=plus2),
                         (T0 + timedelta(days=1, hours=2)).replace(tzinfo=plus2))
    assert naive.equals(aware)


def test_prices_file_prices_the_unknown_model(store: Path, tmp_path: Path) -> None:
    prices = tmp_path / "prices.yaml"
    prices.write_text(f"models:\n  - model: {UNKNOWN_MODEL[0]}\n    input_per_mtok: 1.0\n"
                      "    output_per_mtok: 2.0\n")
    con = open_store(store, prices)
    try:
        frame = compute_kpis(con, filters=Filters.of(model_name=UNKNOWN_MODEL[0]))
        assert frame["num_requests"][0] > 0 and frame["num_unpriced_llm_calls"][0] == 0
        assert frame["cost_usd_total"][0] > 0
        row = list_trace_metrics(con, filters=Filters.of(model_name=UNKNOWN_MODEL[0])).row(
            0, named=True)
        # 800 prompt (200 cached at the input price) + 120 completion tokens
        assert row["cost_usd"] == pytest.approx(800 * 1e-6 + 120 * 2e-6)
    finally:
        con.close()


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda c: compute_kpis(c, by=["colour"]), "unknown dimension"),
        (lambda c: compute_kpis(c, by=["attr:a'b"]), "bad attribute key"),
        (lambda c: compute_timeseries(c, window="30s"), "out of range"),
        (lambda c: compute_timeseries(c, window="2w"), "out of range"),
        (lambda c: compute_timeseries(c, window="soon"), "bad duration"),
        (lambda c: compute_kpis(c, T0, T0 - timedelta(hours=1)), "before"),
    ],
)
def test_bad_input_raises_analytics_error(con: duckdb.DuckDBPyConnection, call: Any,
                                          message: str) -> None:
    with pytest.raises(AnalyticsError, match=message):
        call(con)


def test_parse_time() -> None:
    now = datetime(2025, 3, 3, 12, 0)
    assert parse_time("24h", now) == datetime(2025, 3, 2, 12, 0)
    assert parse_time("2025-03-01T10:00+02:00", now) == datetime(2025, 3, 1, 8, 0)
    assert parse_time("2025-03-01T10:00Z", now) == datetime(2025, 3, 1, 10, 0)
    assert parse_time("now", now) == now
    with pytest.raises(AnalyticsError):
        parse_time("yesterday-ish", now)


def test_priced_model_cost_uses_cached_price(con: duckdb.DuckDBPyConnection,
                                             oracle: dict[str, dict[str, Any]]) -> None:
    frame = list_trace_metrics(con, filters=Filters.of(model_name=PRICED_MODEL[0]))
    assert frame.height > 0
    for row in frame.iter_rows(named=True):
        want = oracle[row["trace_id"]]["cost_usd"]
        assert row["cost_usd"] == pytest.approx(want, rel=1e-9)
    assert isinstance(frame, pl.DataFrame)


# --------------------------------------------------------------------------- tracewatch metrics


def _run_metrics_command(argv: list[str]) -> int:
    import argparse

    from tracewatch.metrics_command import add_metrics_parser

    parser = argparse.ArgumentParser(prog="tracewatch")
    add_metrics_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    result: int = args.handler(args)
    return result


def test_metrics_command_json_matches_api(store: Path, con: duckdb.DuckDBPyConnection,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    import json

    since, until = "2025-03-03T00:00Z", "2025-03-05T00:00Z"
    assert _run_metrics_command(["metrics", "--data-dir", str(store), "--since", since,
                                 "--until", until, "--by", "prompt_version",
                                 "--format", "json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    frame = compute_kpis(con, parse_time(since), parse_time(until), by=["prompt_version"])
    assert [r["prompt_version"] for r in printed] == frame["prompt_version"].to_list()
    for got, want in zip(printed, frame.iter_rows(named=True)):
        assert got["num_requests"] == want["num_requests"]
        assert got["latency_p95_ms"] == pytest.approx(want["latency_p95_ms"])
        assert got["cost_usd_total"] == pytest.approx(want["cost_usd_total"])


def test_metrics_command_window_table_and_csv(store: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert _run_metrics_command(["metrics", "--data-dir", str(store), "--window", "1d"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:2] == ["window_start", "num_requests"]
    assert table[-1] == "(3 rows)"
    assert _run_metrics_command(["metrics", "--data-dir", str(store), "--window", "1d",
                                 "--by", "attr:tenant", "--format", "csv"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("window_start,attr:tenant,num_requests,")
    assert len(lines) > 3


@pytest.mark.parametrize("argv", [["--window", "10s"], ["--by", "colour"], ["--since", "soonish"]])
def test_metrics_command_bad_input(store: Path, argv: list[str]) -> None:
    with pytest.raises(AnalyticsError):
        _run_metrics_command(["metrics", "--data-dir", str(store), *argv])


# --------------------------------------------------------------------------- comparisons

from analytics.compare import (  # noqa: E402
    Slice,
    compare_all,
    compare_distributions,
    compare_proportions,
    compare_slices,
    wilson_interval,
)


def test_newcombe_interval_matches_the_published_example() -> None:
    # Newcombe (1998), Statistics in Medicine 17:873, method 10: 56/70 vs 48/80.
    result = compare_proportions(48, 80, 56, 70)
    assert result.difference == pytest.approx(0.2)
    assert result.ci_low == pytest.approx(0.0524, abs=5e-4)
    assert result.ci_high == pytest.approx(0.3339, abs=5e-4)
    low, high = wilson_interval(0, 10)
    assert low == 0.0 and high == pytest.approx(0.2775, abs=5e-4)


@pytest.mark.parametrize(
    ("counts", "status", "significant"),
    [
        ((10, 200, 40, 200), "ok", True),
        ((20, 200, 24, 200), "ok", False),
        ((0, 100, 0, 100), "ok", False),
        ((5, 10, 9, 10), "insufficient data", None),
        ((3, 29, 20, 400), "insufficient data", None),
    ],
)
def test_compare_proportions_table(counts: tuple[int, int, int, int], status: str,
                                   significant: bool | None) -> None:
    result = compare_proportions(*counts)
    assert result.status == status
    assert result.significant is significant
    if status == "ok":
        assert result.ci_low is not None and result.ci_high is not None
        assert result.ci_low <= result.difference <= result.ci_high  # type: ignore[operator]
        assert (result.ci_low > 0 or result.ci_high < 0) == significant
    else:
        assert result.difference is None and result.p_value is None


def _lognormal(seed: int, n: int, scale: float = 1.0, slow_share: float = 0.0) -> Any:
    import numpy as np

    rng = np.random.default_rng(seed)
    values = rng.lognormal(6.5, 0.4, n) * scale
    slow = rng.random(n) < slow_share
    values[slow] *= 4.0
    return values


@pytest.mark.parametrize(
    ("b", "statistic", "status", "significant"),
    [
        (lambda: _lognormal(2, 400, scale=1.3), "median", "ok", True),
        (lambda: _lognormal(2, 400), "median", "ok", False),
        (lambda: _lognormal(2, 400, scale=1.3), "mean", "ok", True),
        (lambda: _lognormal(2, 400, slow_share=0.1), "p95", "ok", True),
        (lambda: _lognormal(2, 400), "p95", "ok", False),
        (lambda: _lognormal(2, 15), "median", "insufficient data", None),
        (lambda: _lognormal(2, 99), "p95", "insufficient data", None),
        (lambda: _lognormal(2, 400), "p99", "insufficient data", None),
    ],
)
def test_compare_distributions_table(b: Any, statistic: str, status: str,
                                     significant: bool | None) -> None:
    a = _lognormal(1, 400)
    result = compare_distributions(a, b(), statistic=statistic)
    assert result.status == status
    assert result.significant is significant
    if status == "ok":
        assert result.ci_low < result.difference < result.ci_high  # type: ignore[operator]


def test_compare_slices_uses_the_kpi_definitions(con: duckdb.DuckDBPyConnection) -> None:
    v1, v2 = Slice(filters=Filters.of(prompt_version="v1")), Slice(
        filters=Filters.of(prompt_version="v2"))
    kpis = {r["prompt_version"]: r for r in compute_kpis(con, by=["prompt_version"])
            .iter_rows(named=True)}
    frame = compare_all(con, v1, v2)
    rows = {r["metric"]: r for r in frame.iter_rows(named=True)}
    for metric in ("error_rate", "fallback_rate", "grounded_rate", "latency_p50_ms",
                   "latency_p95_ms", "cost_usd_per_request", "groundedness_mean"):
        assert rows[metric]["value_a"] == pytest.approx(kpis["v1"][metric]), metric
        assert rows[metric]["value_b"] == pytest.approx(kpis["v2"][metric]), metric
    assert rows["error_rate"]["num_a"] == kpis["v1"]["num_requests"]
    assert rows["latency_p99_ms"]["status"] == "insufficient data"  # ~120 traces < 500
    single = compare_slices(con, "error_rate", v1, v2)
    assert single.p_value == pytest.approx(rows["error_rate"]["p_value"])
    with pytest.raises(AnalyticsError):
        compare_slices(con, "vibes", v1, v2)
