"""Is a change real?  Compare one metric between two slices (two periods, two prompt versions).

A ``Slice`` is a time range plus filters (``analytics.filters``).  ``compare_slices`` reads the
per-trace values of both slices (``metrics.list_trace_metrics``, so the same definitions as
the KPIs) and returns a ``Comparison``: both values, the difference **b - a** (b is the
candidate, a the baseline), its confidence interval, a p-value and whether the difference is
significant at ``1 - confidence``.

Tests by kind of metric:

- rates (``error_rate``, ``fallback_rate``, ``grounded_rate``): two-proportion z-test (pooled
  standard error; p = 1 when both slices are all 0 or all 1) and the Newcombe hybrid score
  interval (from Wilson intervals, good for small counts and rates near 0).  Significant when
  p < alpha.  Denominators: all traces, traces with an LLM call, scored traces.
- centre of a distribution (``latency_p50_ms``, ``cost_usd_per_request``,
  ``groundedness_mean``): Mann-Whitney U (two-sided) and a percentile bootstrap interval of
  the difference of the statistic (median; mean; mean).  Significant when p < alpha.
  Per-request cost counts a trace without priced calls as 0, as ``cost_usd_per_request``
  does.
- tails (``latency_p95_ms``, ``latency_p99_ms``): percentile bootstrap only (a rank test says
  nothing about a tail); the p-value is the bootstrap's two-sided share of resampled
  differences on the other side of 0, and significant means the interval excludes 0.

Minimum sample sizes per slice (below them the status is ``"insufficient data"`` and the
difference, interval and p-value are NULL): rates 30 (denominator), medians and means 20,
p95 100, p99 500 (at least 5 observations beyond the quantile).  Bootstrap: 2,000 resamples
with a fixed seed.  Quantiles (median, p95, p99) are bootstrapped exactly without drawing the
resamples: with the slice's values sorted, the k-th smallest value of a resample of size n
drawn with replacement is the sorted value at ``floor(n * U)`` where ``U`` is the k-th smallest
of n uniforms, i.e. ``U ~ Beta(k, n + 1 - k)``, and the (k+1)-th is
``U + (1 - U) * Beta(1, n - k)``; the resample's interpolated quantile (as ``np.quantile``)
follows from these two, so a resample costs O(1) and no slice is subsampled.  Means draw the
resamples (in chunks); slices larger than 20,000 traces are then subsampled (without
replacement) to bound time and memory, which can only widen the interval.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Literal

import duckdb
import numpy as np
import numpy.typing as npt
import polars as pl
from scipy import stats  # type: ignore[import-untyped]

from analytics.errors import AnalyticsError
from analytics.filters import NO_FILTERS, Filters
from analytics.metrics import GROUNDED_THRESHOLD, list_trace_metrics

Status = Literal["ok", "insufficient data"]
FloatArray = npt.NDArray[np.float64]

MIN_RATE_N = 30
MIN_CENTRE_N = 20
MIN_TAIL_N = {0.95: 100, 0.99: 500}
NUM_RESAMPLES = 2000
MAX_BOOTSTRAP_N = 20_000


@dataclass(frozen=True, slots=True)
class Slice:
    """Traces started in ``[since, until)`` that match ``filters``."""

    since: datetime | None = None
    until: datetime | None = None
    filters: Filters = NO_FILTERS
    label: str = ""


@dataclass(frozen=True, slots=True)
class Comparison:
    """The difference ``value_b - value_a`` of one metric between two slices."""

    metric: str
    test: str
    value_a: float | None
    value_b: float | None
    num_a: int
    num_b: int
    difference: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    significant: bool | None
    status: Status
    confidence: float


RATE_METRICS = ("error_rate", "fallback_rate", "grounded_rate")
CENTRE_METRICS = ("latency_p50_ms", "cost_usd_per_request", "groundedness_mean")
TAIL_METRICS = ("latency_p95_ms", "latency_p99_ms")
COMPARABLE_METRICS = RATE_METRICS + CENTRE_METRICS + TAIL_METRICS


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion."""
    if n == 0:
        return 0.0, 1.0
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def compare_proportions(successes_a: int, n_a: int, successes_b: int, n_b: int, *,
                        metric: str = "rate", confidence: float = 0.95,
                        min_n: int = MIN_RATE_N) -> Comparison:
    """Two-proportion z-test and Newcombe (hybrid score) interval of ``p_b - p_a``.

    >>> c = compare_proportions(10, 200, 40, 200)
    >>> c.significant, round(c.difference, 2), c.ci_low > 0
    (True, 0.15, True)
    """
    p_a = successes_a / n_a if n_a else None
    p_b = successes_b / n_b if n_b else None
    if n_a < min_n or n_b < min_n or p_a is None or p_b is None:
        return _insufficient(metric, "two-proportion z-test", p_a, p_b, n_a, n_b, confidence)
    l_a, u_a = wilson_interval(successes_a, n_a, confidence)
    l_b, u_b = wilson_interval(successes_b, n_b, confidence)
    diff = p_b - p_a
    low = diff - math.sqrt((p_b - l_b) ** 2 + (u_a - p_a) ** 2)
    high = diff + math.sqrt((u_b - p_b) ** 2 + (p_a - l_a) ** 2)
    pooled = (successes_a + successes_b) / (n_a + n_b)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    p_value = 1.0 if se == 0 else float(2 * stats.norm.sf(abs(diff) / se))
    return Comparison(metric, "two-proportion z-test, Newcombe CI", p_a, p_b, n_a, n_b, diff,
                      low, high, p_value, p_value < 1 - confidence, "ok", confidence)


def compare_distributions(a: Sequence[float] | FloatArray, b: Sequence[float] | FloatArray, *,
                          metric: str = "value", statistic: str = "median",
                          confidence: float = 0.95, seed: int = 0,
                          num_resamples: int = NUM_RESAMPLES) -> Comparison:
    """Difference of a statistic (``median``, ``mean``, ``p95``, ``p99``) with a bootstrap CI.

    Median and mean are also tested with Mann-Whitney U; tails with the bootstrap alone.

    >>> import numpy as np
    >>> rng = np.random.default_rng(1)
    >>> c = compare_distributions(rng.normal(100, 10, 200), rng.normal(110, 10, 200))
    >>> c.significant, 5 < c.difference < 15
    (True, True)
    """
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    x, y = x[~np.isnan(x)], y[~np.isnan(y)]
    func, min_n, is_tail, quantile = _statistic(statistic)
    value_a = float(func(x[None, :])[0]) if x.size else None
    value_b = float(func(y[None, :])[0]) if y.size else None
    test = "bootstrap" if is_tail else "Mann-Whitney U, bootstrap CI"
    if x.size < min_n or y.size < min_n or value_a is None or value_b is None:
        return _insufficient(metric, test, value_a, value_b, int(x.size), int(y.size), confidence)
    rng = np.random.default_rng(seed)
    diffs = (_bootstrap(y, func, quantile, rng, num_resamples)
             - _bootstrap(x, func, quantile, rng, num_resamples))
    alpha = 1 - confidence
    low, high = (float(v) for v in np.quantile(diffs, [alpha / 2, 1 - alpha / 2]))
    if is_tail:
        share = min(float(np.mean(diffs <= 0)), float(np.mean(diffs >= 0)))
        p_value = min(1.0, 2 * share)
        significant = low > 0 or high < 0
    else:
        p_value = float(stats.mannwhitneyu(x, y, alternative="two-sided").pvalue)
        significant = p_value < alpha
    return Comparison(metric, test, value_a, value_b, int(x.size), int(y.size),
                      value_b - value_a, low, high, p_value, significant, "ok", confidence)


def compare_slices(con: duckdb.DuckDBPyConnection, metric: str, a: Slice, b: Slice, *,
                   confidence: float = 0.95, seed: int = 0) -> Comparison:
    """Compare one of ``COMPARABLE_METRICS`` between slice ``a`` (baseline) and ``b``."""
    if metric not in COMPARABLE_METRICS:
        raise AnalyticsError(
            f"cannot compare {metric!r}: expected one of {', '.join(COMPARABLE_METRICS)}")
    frame_a = list_trace_metrics(con, a.since, a.until, a.filters)
    frame_b = list_trace_metrics(con, b.since, b.until, b.filters)
    return _compare_frames(metric, frame_a, frame_b, confidence, seed)


def compare_all(con: duckdb.DuckDBPyConnection, a: Slice, b: Slice, *,
                metrics: Sequence[str] = COMPARABLE_METRICS, confidence: float = 0.95,
                seed: int = 0) -> pl.DataFrame:
    """Every metric of ``metrics`` between two slices, one row each.

    Columns: metric, test, value_a, value_b, num_a, num_b, difference, ci_low, ci_high,
    p_value, significant, status, confidence (see ``Comparison``).
    """
    for metric in metrics:
        if metric not in COMPARABLE_METRICS:
            raise AnalyticsError(f"cannot compare {metric!r}")
    frame_a = list_trace_metrics(con, a.since, a.until, a.filters)
    frame_b = list_trace_metrics(con, b.since, b.until, b.filters)
    rows = [asdict(_compare_frames(m, frame_a, frame_b, confidence, seed)) for m in metrics]
    return pl.DataFrame(rows, schema={
        "metric": pl.String, "test": pl.String, "value_a": pl.Float64, "value_b": pl.Float64,
        "num_a": pl.Int64, "num_b": pl.Int64, "difference": pl.Float64,
        "ci_low": pl.Float64, "ci_high": pl.Float64, "p_value": pl.Float64,
        "significant": pl.Boolean, "status": pl.String, "confidence": pl.Float64,
    })


def _compare_frames(metric: str, a: pl.DataFrame, b: pl.DataFrame, confidence: float,
                    seed: int) -> Comparison:
    if metric in RATE_METRICS:
        xa, na = _rate_counts(metric, a)
        xb, nb = _rate_counts(metric, b)
        return compare_proportions(xa, na, xb, nb, metric=metric, confidence=confidence)
    column, statistic = {
        "latency_p50_ms": ("duration_ms", "median"),
        "latency_p95_ms": ("duration_ms", "p95"),
        "latency_p99_ms": ("duration_ms", "p99"),
        "cost_usd_per_request": ("cost_usd", "mean"),
        "groundedness_mean": ("groundedness", "mean"),
    }[metric]
    return compare_distributions(_values(a, column), _values(b, column), metric=metric,
                                 statistic=statistic, confidence=confidence, seed=seed)


def _rate_counts(metric: str, frame: pl.DataFrame) -> tuple[int, int]:
    if metric == "error_rate":
        return int(frame["is_error"].sum()), frame.height
    if metric == "fallback_rate":
        llm = frame.filter(pl.col("llm_calls") > 0)
        return int(llm["has_fallback"].sum()), llm.height
    scored = frame["groundedness"].drop_nulls()
    return int((scored >= GROUNDED_THRESHOLD).sum()), scored.len()


def _values(frame: pl.DataFrame, column: str) -> FloatArray:
    series = frame[column]
    if column == "cost_usd":
        series = series.fill_null(0.0)  # as cost_usd_per_request: total / all requests
    return series.drop_nulls().cast(pl.Float64).to_numpy()


def _statistic(name: str) -> tuple[Callable[[FloatArray], FloatArray], int, bool, float | None]:
    """The statistic (over axis 1), its minimum sample size, whether it is a tail, and its
    quantile (None for the mean)."""
    if name == "median":
        return (lambda m: np.median(m, axis=1)), MIN_CENTRE_N, False, 0.5
    if name == "mean":
        return (lambda m: np.mean(m, axis=1)), MIN_CENTRE_N, False, None
    if name in ("p95", "p99"):
        q = 0.95 if name == "p95" else 0.99
        return (lambda m: np.quantile(m, q, axis=1)), MIN_TAIL_N[q], True, q
    raise AnalyticsError(f"unknown statistic {name!r}: expected median, mean, p95 or p99")


def _bootstrap(values: FloatArray, func: Callable[[FloatArray], FloatArray],
               quantile: float | None, rng: np.random.Generator,
               num_resamples: int) -> FloatArray:
    """``num_resamples`` values of the statistic over resamples (with replacement) of
    ``values``."""
    if quantile is not None:
        return _bootstrap_quantile(values, quantile, rng, num_resamples)
    if values.size > MAX_BOOTSTRAP_N:
        values = rng.choice(values, MAX_BOOTSTRAP_N, replace=False)
    out = np.empty(num_resamples)
    chunk = max(1, 1_000_000 // values.size)  # ~8 MB of indices per step (stays in cache)
    for start in range(0, num_resamples, chunk):
        stop = min(num_resamples, start + chunk)
        idx = rng.integers(0, values.size, size=(stop - start, values.size))
        out[start:stop] = func(values[idx])
    return out


def _bootstrap_quantile(values: FloatArray, q: float, rng: np.random.Generator,
                        num_resamples: int) -> FloatArray:
    """Exact bootstrap distribution of ``np.quantile(resample, q)`` (linear interpolation)
    from order statistics of uniforms (see the module docstring): O(n log n + B)."""
    ordered = np.sort(values)
    n = ordered.size
    position = (n - 1) * q
    k = int(math.floor(position))  # 0-based: the resample's k-th and (k+1)-th smallest
    frac = position - k
    # U_(k+1) (1-based) ~ Beta(k + 1, n - k); the next one adds a Beta(1, n - k - 1) share of
    # what is left above it (the minimum of the n - k - 1 uniforms above).
    low_u = rng.beta(k + 1, n - k, size=num_resamples)
    low = ordered[np.minimum((low_u * n).astype(np.int64), n - 1)]
    if frac == 0.0 or k + 1 >= n:
        return low
    high_u = low_u + (1.0 - low_u) * rng.beta(1, n - k - 1, size=num_resamples)
    high = ordered[np.minimum((high_u * n).astype(np.int64), n - 1)]
    return low + frac * (high - low)


def _insufficient(metric: str, test: str, value_a: float | None, value_b: float | None,
                  n_a: int, n_b: int, confidence: float) -> Comparison:
    return Comparison(metric, test, value_a, value_b, n_a, n_b, None, None, None, None, None,
                      "insufficient data", confidence)
