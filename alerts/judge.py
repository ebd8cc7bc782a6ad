"""Judge one rule's groups at one evaluation time: window, baseline, detector, BH.

``judge_rule(data, at, anchors)`` returns one ``Observation`` per group: the verdict, or
``None`` when the window or the baseline has fewer than ``min_samples`` traces (no data is
not evidence: the state machine then keeps its state).  ``anchors`` freezes a group's
previous-window baseline at the time its condition first held, so an ongoing incident does
not slowly become its own baseline (capped at ``MAX_ANCHOR_AGE``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import numpy as np

from alerts.detectors import (
    Verdict,
    adjust_for_groups,
    detect_cusum,
    detect_distribution_shift,
    detect_ewma,
    detect_proportion_change,
    detect_psi,
    detect_relative_change,
    detect_tail_share,
    detect_threshold,
    summarise,
)
from alerts.rules import P_VALUE_DETECTORS, Rule
from alerts.series import Group, GroupSeries, RuleData, baseline_ranges, to_ns

MAX_ANCHOR_AGE = timedelta(hours=24)


@dataclass(frozen=True, slots=True)
class Observation:
    group: Group
    verdict: Verdict | None
    num_window: int
    num_baseline: int
    window_start: datetime
    window_end: datetime
    baseline_start: datetime | None
    baseline_end: datetime | None


def judge_rule(data: RuleData, at: datetime,
               anchors: dict[Group, datetime] | None = None) -> list[Observation]:
    """Observations of every group of ``data`` at evaluation time ``at``."""
    rule = data.rule
    anchors = anchors or {}
    observations = []
    for group, series in data.groups.items():
        anchor = anchors.get(group)
        if anchor is not None and (anchor > at or at - anchor > MAX_ANCHOR_AGE):
            anchor = None
        observations.append(_judge_group(rule, group, series, at, anchor))
    if rule.detector.kind in P_VALUE_DETECTORS:
        judged = [o for o in observations if o.verdict is not None]
        adjusted = adjust_for_groups([o.verdict for o in judged if o.verdict is not None],
                                     rule.detector.alpha)
        by_group = {o.group: v for o, v in zip(judged, adjusted)}
        observations = [replace(o, verdict=by_group[o.group]) if o.group in by_group else o
                        for o in observations]
    return observations


def _judge_group(rule: Rule, group: Group, series: GroupSeries, at: datetime,
                 anchor: datetime | None) -> Observation:
    window_end = at
    window_start = at - rule.window
    reference_start = anchor - rule.window if anchor is not None else window_start
    if rule.baseline.kind == "previous_window":
        ranges = baseline_ranges(rule, reference_start, reference_start + rule.window)
    else:
        ranges = baseline_ranges(rule, window_start, window_end)
    current = series.window(to_ns(window_start), to_ns(window_end))
    reference = (np.concatenate([series.window(to_ns(a), to_ns(b)) for a, b in ranges])
                 if ranges else np.empty(0))
    base_start = min((a for a, _ in ranges), default=None)
    base_end = max((b for _, b in ranges), default=None)

    def observe(verdict: Verdict | None, num_baseline: int) -> Observation:
        return Observation(group, verdict, int(current.size), num_baseline, window_start,
                           window_end, base_start, base_end)

    spec, det = rule.spec, rule.detector
    if spec.kind == "count":
        expected = _expected_count(rule, series, window_start)
        if rule.baseline.kind != "fixed" and (expected is None or expected < rule.min_samples):
            return observe(None, int(reference.size))
        value = float(current.size)
        base = rule.baseline.value if rule.baseline.kind == "fixed" else expected
        assert base is not None
        if det.kind == "threshold":
            assert det.threshold is not None
            return observe(detect_threshold(value, det.threshold, det.direction),
                           int(reference.size))
        return observe(detect_relative_change(value, base, det.min_change, det.direction),
                       int(reference.size))

    if current.size < rule.min_samples:
        return observe(None, int(reference.size))
    if rule.baseline.kind != "fixed" and reference.size < rule.min_samples:
        return observe(None, int(reference.size))
    statistic = spec.statistic
    value = summarise(current, statistic)
    if rule.baseline.kind == "fixed":
        assert rule.baseline.value is not None
        base = rule.baseline.value
    else:
        base = summarise(reference, statistic)
    n_ref = int(reference.size)
    if det.kind == "threshold":
        assert det.threshold is not None
        return observe(detect_threshold(value, det.threshold, det.direction), n_ref)
    if det.kind == "relative_change":
        if spec.kind == "rate":
            verdict = detect_threshold(value, base + det.min_change, det.direction)
            return observe(replace(verdict, baseline=base, test="rate change"), n_ref)
        return observe(detect_relative_change(value, base, det.min_change, det.direction), n_ref)
    if det.kind == "two_proportion":
        return observe(detect_proportion_change(
            int(current.sum()), int(current.size), int(reference.sum()), n_ref,
            alpha=det.alpha, min_change=det.min_change, direction=det.direction), n_ref)
    if det.kind in ("mann_whitney", "ks"):
        return observe(detect_distribution_shift(
            current, reference, test=det.kind, alpha=det.alpha, min_change=det.min_change,
            direction=det.direction, statistic=statistic), n_ref)
    if det.kind == "tail_share":
        return observe(detect_tail_share(
            current, reference, quantile=det.quantile, alpha=det.alpha,
            min_change=det.min_change, direction=det.direction, statistic=statistic), n_ref)
    if det.kind == "psi":
        assert det.threshold is not None
        return observe(detect_psi(current, reference, threshold=det.threshold), n_ref)
    # cusum / ewma over bucket means of the window, against the baseline's level and noise.
    means, weights = _bucket_means(series, window_start, window_end, det.bucket)
    target, noise = _baseline_noise(series, ranges, det.bucket)
    assert det.threshold is not None
    if det.kind == "cusum":
        verdict = detect_cusum(means, weights, target, noise, k=det.k, h=det.threshold,
                               direction=det.direction)
    else:
        verdict = detect_ewma(means, weights, target, noise, lam=det.k, limit=det.threshold,
                              direction=det.direction)
    if verdict.breached and det.min_change > 0:
        change = verdict.value - target if spec.kind == "rate" else verdict.relative_change
        if not abs(change) >= det.min_change:
            verdict = replace(verdict, breached=False, effect_met=False)
    return observe(verdict, n_ref)


def _expected_count(rule: Rule, series: GroupSeries, window_start: datetime) -> float | None:
    """The baseline's count for a window of the rule's length."""
    baseline = rule.baseline
    if baseline.kind == "fixed":
        return baseline.value
    if baseline.kind == "previous_window":
        start = window_start - rule.baseline_window()
        count = series.count(to_ns(start), to_ns(window_start))
        return count * (rule.window / rule.baseline_window())
    per_week = []
    for week in range(1, baseline.weeks + 1):
        shifted = []
        for offset in range(-baseline.spread, baseline.spread + 1):
            start = window_start - timedelta(weeks=week) + rule.window * offset
            shifted.append(series.count(to_ns(start), to_ns(start + rule.window)))
        per_week.append(float(np.median(shifted)))
    if series.times_ns.size == 0 or series.times_ns[0] > to_ns(
            window_start - timedelta(weeks=baseline.weeks) - rule.window * baseline.spread):
        return None  # the store does not reach back far enough: no baseline yet
    return float(np.mean(per_week))


def _bucket_means(series: GroupSeries, start: datetime, end: datetime,
                  bucket: timedelta) -> tuple[np.ndarray, np.ndarray]:
    edges = []
    moment = start
    while moment < end:
        edges.append(moment)
        moment += bucket
    means, weights = [], []
    for left in edges:
        values = series.window(to_ns(left), to_ns(min(left + bucket, end)))
        means.append(float(values.mean()) if values.size else math.nan)
        weights.append(float(values.size))
    return np.array(means), np.array(weights)


def _baseline_noise(series: GroupSeries, ranges: list[tuple[datetime, datetime]],
                    bucket: timedelta) -> tuple[float, float]:
    """Level and per-trace noise of the baseline, inflated by its bucket-to-bucket spread.

    The standard error of a bucket mean is sigma / sqrt(n) only for independent traces; real
    traffic varies more between hours (mix of questions, users), so sigma is scaled by the
    dispersion of the baseline's own standardised bucket means (never below 1).
    """
    values = [series.window(to_ns(a), to_ns(b)) for a, b in ranges]
    pooled = np.concatenate(values) if values else np.empty(0)
    if pooled.size < 2:
        return math.nan, math.nan
    level, sigma = float(pooled.mean()), float(pooled.std(ddof=1))
    if not sigma > 0:
        return level, math.nan
    scores = []
    for start, end in ranges:
        means, weights = _bucket_means(series, start, end, bucket)
        keep = weights > 0
        scores.extend(((means[keep] - level) / (sigma / np.sqrt(weights[keep]))).tolist())
    dispersion = float(np.std(scores)) if len(scores) > 3 else 1.0
    return level, sigma * max(1.0, dispersion)
