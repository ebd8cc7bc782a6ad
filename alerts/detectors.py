"""Detectors: pure functions that judge a window against a baseline.

Each returns a ``Verdict``: the window's value, the baseline's, whether the change is large
enough in the watched direction (``effect_met``), the test's p-value when there is one, and
``breached`` (the detector's own decision at its alpha).  Across the groups of one rule the
evaluator replaces the per-group ``p < alpha`` by Benjamini-Hochberg (``adjust_for_groups``)
so a large ``group_by`` does not multiply false alarms.

Edge cases: empty inputs give ``breached=False`` with NaN values (the evaluator checks
minimum samples before calling); ties and constant samples are handled by the tests
(Mann-Whitney on identical samples gives p=1; the tail-share test counts only values strictly
beyond the baseline's cutoff, so ties make it conservative); a zero baseline makes a relative
change infinite when the value is positive.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike
from scipy import special, stats

Direction = Literal["up", "down", "both"]


@dataclass(frozen=True, slots=True)
class Verdict:
    """A detector's judgement of one window."""

    breached: bool
    value: float
    baseline: float
    effect_met: bool
    test: str
    p_value: float | None = None
    statistic: float | None = None

    def __post_init__(self) -> None:
        # numpy comparisons give numpy bools; callers test `is True`.
        object.__setattr__(self, "breached", bool(self.breached))
        object.__setattr__(self, "effect_met", bool(self.effect_met))

    @property
    def relative_change(self) -> float:
        return relative_change(self.value, self.baseline)

    def describe(self) -> str:
        """One line: the test, its statistic or p-value and the verdict."""
        verdict = "drift" if self.breached else "no drift"
        parts = [self.test]
        if self.p_value is not None:
            parts.append(f"p={self.p_value:.2g}")
        elif self.statistic is not None:
            parts.append(f"stat={self.statistic:.3g}")
        return f"{' '.join(parts)}: {verdict}"


def relative_change(value: float, baseline: float) -> float:
    if baseline == 0 or math.isnan(baseline):
        return 0.0 if value == baseline else math.copysign(math.inf, value or 1.0)
    return (value - baseline) / abs(baseline)


def _moved(delta: float, size: float, direction: Direction) -> bool:
    """Did ``delta`` (signed change) exceed ``size`` in the watched direction?"""
    if math.isnan(delta):
        return False
    if direction == "up":
        return delta > 0 and delta >= size
    if direction == "down":
        return delta < 0 and -delta >= size
    return abs(delta) >= size and delta != 0


def detect_threshold(value: float, threshold: float, direction: Direction = "up") -> Verdict:
    """Static threshold: up fires when value > threshold, down when value < threshold."""
    if math.isnan(value):
        breached = False
    elif direction == "up":
        breached = value > threshold
    elif direction == "down":
        breached = value < threshold
    else:
        raise ValueError("a threshold needs direction up or down")
    return Verdict(breached, value, threshold, breached, "threshold")


def detect_relative_change(value: float, baseline: float, min_change: float,
                           direction: Direction = "up") -> Verdict:
    """Relative change against the baseline: fires when |change| >= min_change (0.3 = 30 %)."""
    change = relative_change(value, baseline)
    met = _moved(change, min_change, direction) if not math.isnan(value) else False
    return Verdict(met, value, baseline, met, "relative change", statistic=change)


def summarise(values: np.ndarray, statistic: str) -> float:
    """The summary statistic of a distribution metric (mean, p50, p95, p99, count)."""
    if statistic == "count":
        return float(values.size)
    if values.size == 0:
        return math.nan
    if statistic == "mean":
        return float(values.mean())
    quantile = {"p50": 0.5, "p95": 0.95, "p99": 0.99}[statistic]
    return float(np.quantile(values, quantile))  # linear: DuckDB's quantile_cont


def detect_distribution_shift(
    current: ArrayLike, reference: ArrayLike, *, test: Literal["mann_whitney", "ks"],
    alpha: float, min_change: float = 0.0, direction: Direction = "up",
    statistic: str = "mean",
) -> Verdict:
    """Mann-Whitney U or two-sample Kolmogorov-Smirnov test of current vs reference.

    ``min_change`` applies to the relative change of ``statistic`` (e.g. p95), so a tiny but
    significant shift over a large sample does not page anyone.
    """
    cur = np.asarray(current, dtype=float)
    ref = np.asarray(reference, dtype=float)
    cur, ref = cur[~np.isnan(cur)], ref[~np.isnan(ref)]
    value, base = summarise(cur, statistic), summarise(ref, statistic)
    name = "Mann-Whitney U" if test == "mann_whitney" else "Kolmogorov-Smirnov"
    if cur.size == 0 or ref.size == 0:
        return Verdict(False, value, base, False, name)
    # One-sided alternatives: scipy's "greater" for MWU means current > reference; for KS
    # "less" means the current CDF lies below the reference's, i.e. current is larger.
    if test == "mann_whitney":
        alt = {"up": "greater", "down": "less", "both": "two-sided"}[direction]
        result = stats.mannwhitneyu(cur, ref, alternative=alt)
    else:
        alt = {"up": "less", "down": "greater", "both": "two-sided"}[direction]
        result = stats.ks_2samp(cur, ref, alternative=alt)
    p_value = float(result.pvalue)
    if math.isnan(p_value):
        p_value = 1.0
    met = _moved(relative_change(value, base), min_change, direction)
    return Verdict(met and p_value < alpha, value, base, met, name, p_value,
                   float(result.statistic))


def detect_tail_share(
    current: ArrayLike, reference: ArrayLike, *, quantile: float, alpha: float,
    min_change: float = 0.0, direction: Direction = "up", statistic: str = "mean",
) -> Verdict:
    """Did more of the window's values land beyond the baseline's ``quantile`` than chance allows?

    The test for "a minority of requests became many times dearer" (a retry loop, a runaway
    agent): the median, and so a rank test such as Mann-Whitney, barely moves while the mean
    does.  The cutoff is the baseline's r-th largest value, r = round((1 - quantile) * n) (at
    least 1), i.e. about its ``quantile``; for ``up`` the count K of window values strictly above
    it is compared with its exact distribution when window and baseline come from one
    distribution (``exceedance_p_value``).  ``down`` mirrors it on the low tail; ``both`` takes
    the smaller one-sided p-value, doubled.

    ``value``/``baseline`` and ``min_change`` are those of ``statistic`` (e.g. the mean), as for
    ``detect_distribution_shift``, so a few outliers that do not move the metric page no one.
    """
    cur = np.asarray(current, dtype=float)
    ref = np.asarray(reference, dtype=float)
    cur, ref = cur[~np.isnan(cur)], ref[~np.isnan(ref)]
    value, base = summarise(cur, statistic), summarise(ref, statistic)
    pct = f"p{quantile * 100:g}"
    if cur.size == 0 or ref.size == 0:
        return Verdict(False, value, base, False, f"tail share above baseline {pct}")
    rank = max(1, round((1.0 - quantile) * ref.size))
    ordered = np.sort(ref)
    high, low = ordered[ref.size - rank], ordered[rank - 1]
    k_up, k_down = int((cur > high).sum()), int((cur < low).sum())
    p_up = exceedance_p_value(k_up, cur.size, ref.size, rank)
    p_down = exceedance_p_value(k_down, cur.size, ref.size, rank)
    if direction == "up":
        p_value, count, side = p_up, k_up, f"above baseline {pct}"
    elif direction == "down":
        p_value, count = p_down, k_down
        side = f"below baseline p{(1.0 - quantile) * 100:g}"
    else:
        p_value = min(1.0, 2 * min(p_up, p_down))
        count, side = k_up + k_down, f"beyond baseline {pct}"
    met = _moved(relative_change(value, base), min_change, direction)
    return Verdict(met and p_value < alpha, value, base, met,
                   f"tail share {count}/{cur.size} {side}", p_value, float(count))


def exceedance_p_value(count: int, num_current: int, num_reference: int, rank: int) -> float:
    """P(K >= count): K = window values above the baseline's ``rank``-th largest, under H0.

    With window (m values) and baseline (n values) exchangeable and continuous, the labels of
    the pooled values sorted in decreasing order are a random arrangement, and K = j exactly
    when the first r - 1 + j places hold r - 1 baseline and j window values and place r + j a
    baseline one: P(K = j) = C(r - 1 + j, j) C(n - r + m - j, m - j) / C(n + m, m).
    """
    if count <= 0:
        return 1.0
    m, n, r = num_current, num_reference, rank
    if count > m:
        return 0.0
    j = np.arange(count, m + 1, dtype=float)
    log_terms = (_log_comb(r - 1 + j, j) + _log_comb(n - r + m - j, m - j)
                 - _log_comb(np.float64(n + m), np.float64(m)))
    return float(min(1.0, np.exp(log_terms).sum()))


def _log_comb(total: np.ndarray | np.float64, chosen: np.ndarray | np.float64) -> np.ndarray:
    """log C(total, chosen), elementwise."""
    log_comb: np.ndarray = (special.gammaln(total + 1) - special.gammaln(chosen + 1)
                            - special.gammaln(total - chosen + 1))
    return log_comb


def detect_proportion_change(
    k_current: int, n_current: int, k_reference: int, n_reference: int, *, alpha: float,
    min_change: float = 0.0, direction: Direction = "up",
) -> Verdict:
    """Two-proportion test (Fisher's exact test, valid for the small counts of short windows).

    ``min_change`` is an absolute difference of the rates (0.05 = 5 points).
    """
    value = k_current / n_current if n_current else math.nan
    base = k_reference / n_reference if n_reference else math.nan
    if not n_current or not n_reference:
        return Verdict(False, value, base, False, "two-proportion (Fisher)")
    alt = {"up": "greater", "down": "less", "both": "two-sided"}[direction]
    table = [[k_current, n_current - k_current], [k_reference, n_reference - k_reference]]
    odds, p_value = stats.fisher_exact(table, alternative=alt)
    met = _moved(value - base, min_change, direction)
    return Verdict(met and p_value < alpha, value, base, met, "two-proportion (Fisher)",
                   float(p_value), float(odds) if math.isfinite(odds) else None)


def detect_cusum(series: ArrayLike, weights: ArrayLike, target_mean: float, target_std: float,
                 *, k: float, h: float, direction: Direction = "up") -> Verdict:
    """Tabular CUSUM over bucket means, for slow drift.

    Each bucket mean is standardised by ``target_std / sqrt(weight)`` (``weight``: its number
    of traces); S+ = max(0, S+ + z - k) and S- likewise; fires when S crosses ``h``.
    ``value`` is the mean of the series, ``statistic`` the final CUSUM.
    """
    means = np.asarray(series, dtype=float)
    num = np.asarray(weights, dtype=float)
    keep = ~np.isnan(means) & (num > 0)
    means, num = means[keep], num[keep]
    value = float(np.average(means, weights=num)) if means.size else math.nan
    if means.size == 0 or not target_std > 0:
        return Verdict(False, value, target_mean, False, "CUSUM")
    z = (means - target_mean) / (target_std / np.sqrt(num))
    up = down = 0.0
    peak_up = peak_down = 0.0
    for score in z:
        up = max(0.0, up + score - k)
        down = max(0.0, down - score - k)
        peak_up, peak_down = max(peak_up, up), max(peak_down, down)
    # The decision uses the current sums: once the series returns to target they decay,
    # which is what lets the alert resolve.
    if direction == "up":
        stat = up
    elif direction == "down":
        stat = down
    else:
        stat = max(up, down)
    breached = stat > h
    return Verdict(breached, value, target_mean, breached, "CUSUM", statistic=stat)


def detect_ewma(series: ArrayLike, weights: ArrayLike, target_mean: float, target_std: float,
                *, lam: float, limit: float, direction: Direction = "up") -> Verdict:
    """EWMA control chart over bucket means (standardised as in ``detect_cusum``).

    Fires when the EWMA of the z-scores leaves +-limit * sqrt(lam / (2 - lam)).
    """
    means = np.asarray(series, dtype=float)
    num = np.asarray(weights, dtype=float)
    keep = ~np.isnan(means) & (num > 0)
    means, num = means[keep], num[keep]
    value = float(np.average(means, weights=num)) if means.size else math.nan
    if means.size == 0 or not target_std > 0:
        return Verdict(False, value, target_mean, False, "EWMA")
    z = (means - target_mean) / (target_std / np.sqrt(num))
    smoothed = 0.0
    for score in z:
        smoothed = lam * score + (1 - lam) * smoothed
    bound = limit * math.sqrt(lam / (2 - lam))
    breached = _moved(smoothed, bound, direction)
    return Verdict(breached, value, target_mean, breached, "EWMA", statistic=smoothed)


def compute_psi(current: ArrayLike, reference: ArrayLike, num_bins: int = 10) -> float:
    """Population stability index with quantile bins of the reference (Evidently's recipe).

    Empty bins get a small floor (1e-4) so the log stays finite.
    """
    cur = np.asarray(current, dtype=float)
    ref = np.asarray(reference, dtype=float)
    cur, ref = cur[~np.isnan(cur)], ref[~np.isnan(ref)]
    if cur.size == 0 or ref.size == 0:
        return math.nan
    edges = np.unique(np.quantile(ref, np.linspace(0, 1, num_bins + 1)))
    if edges.size < 2:
        edges = np.array([ref[0] - 0.5, ref[0] + 0.5])
    edges[0], edges[-1] = -np.inf, np.inf
    ref_share = np.histogram(ref, edges)[0] / ref.size
    cur_share = np.histogram(cur, edges)[0] / cur.size
    ref_share = np.clip(ref_share, 1e-4, None)
    cur_share = np.clip(cur_share, 1e-4, None)
    return float(np.sum((cur_share - ref_share) * np.log(cur_share / ref_share)))


def detect_psi(current: ArrayLike, reference: ArrayLike, *, threshold: float = 0.2,
               num_bins: int = 10) -> Verdict:
    """Input drift: PSI of current vs reference above ``threshold`` (0.1 moderate, 0.2 big)."""
    psi = compute_psi(current, reference, num_bins)
    cur = np.asarray(current, dtype=float)
    ref = np.asarray(reference, dtype=float)
    value = float(np.nanmean(cur)) if cur.size else math.nan
    base = float(np.nanmean(ref)) if ref.size else math.nan
    breached = not math.isnan(psi) and psi > threshold
    return Verdict(breached, value, base, breached, "PSI", statistic=psi)


def benjamini_hochberg(p_values: Sequence[float], alpha: float) -> list[bool]:
    """Which hypotheses are rejected at false discovery rate ``alpha`` (step-up BH)."""
    num = len(p_values)
    if num == 0:
        return []
    order = sorted(range(num), key=lambda i: p_values[i])
    cutoff = -1
    for rank, index in enumerate(order, start=1):
        if p_values[index] <= alpha * rank / num:
            cutoff = rank
    rejected = [False] * num
    for rank, index in enumerate(order, start=1):
        rejected[index] = rank <= cutoff
    return rejected


def adjust_for_groups(verdicts: Sequence[Verdict], alpha: float) -> list[Verdict]:
    """Benjamini-Hochberg across the groups of one rule for p-value verdicts.

    A verdict without a p-value is returned unchanged.  One with a p-value is breached when
    its effect is met and BH rejects it among all p-value verdicts of the list.
    """
    indexes = [i for i, v in enumerate(verdicts) if v.p_value is not None]
    rejected = benjamini_hochberg([verdicts[i].p_value or 1.0 for i in indexes], alpha)
    adjusted = list(verdicts)
    for index, reject in zip(indexes, rejected):
        verdict = verdicts[index]
        adjusted[index] = replace(verdict, breached=verdict.effect_met and reject)
    return adjusted
