"""Evaluate rules over the store: once (check), repeatedly (watch) or over the past (replay).

``evaluate_rules(frame, rules, at, states)`` judges every enabled rule at data time ``at``
(windows end at ``at``), advances each fingerprint's state machine (``alerts.state``) and
returns the ``AlertEvent``s to announce: a FIRING event carries the verdict, the cause and
example traces; a RESOLVED event closes the alert of the same ``alert_id``.  Groups not seen
in the data at ``at`` count as "no data" (state unchanged).

``replay(frame, rules, since, until, step)`` does the same at every ``step`` in data time
with a fresh in-memory state, as if the rules had run live; the frame must reach
``max_lookback(rules)`` before ``since``.  Nothing is written; the caller records or
notifies.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import polars as pl

from alerts.cause import Cause, find_cause
from alerts.detectors import Verdict
from alerts.judge import Observation, judge_rule
from alerts.rules import Rule, RuleSet
from alerts.series import Group, RuleData, lookback
from alerts.state import AlertState, Phase, Transition, fingerprint_of, group_key_of, step

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """A state change to announce and record."""

    transition: Transition
    alert_id: str
    rule: str
    fingerprint: str
    severity: str
    metric: str
    group_key: str
    value: float
    baseline: float
    started_at: datetime
    at: datetime                      # data time of the evaluation that decided it
    resolved_at: datetime | None
    verdict: str
    channel: str | None
    window: tuple[datetime, datetime]
    baseline_range: tuple[datetime, datetime] | None
    cause: Cause | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    def detail_json(self) -> str:
        body: dict[str, Any] = {
            "verdict": self.verdict, "channel": self.channel,
            "window": [t.isoformat() for t in self.window],
            "baseline_range": ([t.isoformat() for t in self.baseline_range]
                               if self.baseline_range else None),
            **self.detail,
        }
        if self.cause is not None:
            body["cause"] = self.cause.to_json()
        return json.dumps(body, default=str, sort_keys=True)


def max_lookback(rules: RuleSet) -> timedelta:
    """Data needed before the first evaluation time (largest window + baseline)."""
    reaches = [lookback(rule) for rule in rules.enabled()]
    return max(reaches, default=timedelta(0)) + timedelta(hours=6)


@dataclass
class Evaluator:
    """Rules bound to one frame; keeps per-rule windowed series between evaluations."""

    frame: pl.DataFrame
    rules: RuleSet
    states: dict[str, AlertState] = field(default_factory=dict)
    _data: dict[str, RuleData] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for rule in self.rules.enabled():
            self._data[rule.name] = RuleData.build(self.frame, rule)

    def evaluate_at(self, at: datetime) -> list[AlertEvent]:
        events: list[AlertEvent] = []
        for rule in self.rules.enabled():
            data = self._data[rule.name]
            anchors = {}
            for group in data.groups:
                state = self.states.get(fingerprint_of(rule.name, group))
                if state is not None and state.anchor is not None:
                    anchors[group] = state.anchor
            for observation in judge_rule(data, at, anchors):
                event = self._advance(rule, data, observation, at)
                if event is not None:
                    events.append(event)
        return events

    def _advance(self, rule: Rule, data: RuleData, obs: Observation,
                 at: datetime) -> AlertEvent | None:
        fingerprint = fingerprint_of(rule.name, obs.group)
        state = self.states.get(fingerprint, AlertState(fingerprint))
        condition = None if obs.verdict is None else obs.verdict.breached
        new_state, transition = step(state, condition, at, rule)
        if transition is Transition.RESOLVED:
            self.states[fingerprint] = AlertState(fingerprint)
        elif new_state.phase is Phase.OK and new_state == AlertState(fingerprint):
            self.states.pop(fingerprint, None)
        else:
            self.states[fingerprint] = new_state
        if transition is None:
            return None
        verdict = obs.verdict
        assert verdict is not None and new_state.alert_id is not None
        assert new_state.started_at is not None
        baseline_range = ((obs.baseline_start, obs.baseline_end)
                          if obs.baseline_start and obs.baseline_end else None)
        cause = None
        if transition is Transition.FIRING:
            cause = find_cause(data.rows, rule, obs.group, (obs.window_start, obs.window_end),
                               baseline_range)
        return AlertEvent(
            transition=transition, alert_id=new_state.alert_id, rule=rule.name,
            fingerprint=fingerprint, severity=rule.severity, metric=rule.metric,
            group_key=group_key_of(obs.group), value=_finite(verdict.value),
            baseline=_finite(verdict.baseline), started_at=new_state.started_at, at=at,
            resolved_at=at if transition is Transition.RESOLVED else None,
            verdict=_describe(rule, verdict), channel=rule.channel,
            window=(obs.window_start, obs.window_end), baseline_range=baseline_range,
            cause=cause,
            detail={"num_window": obs.num_window, "num_baseline": obs.num_baseline,
                    "condition_since": (state.since or at).isoformat()
                    if transition is Transition.FIRING else None,
                    "p_value": verdict.p_value, "statistic": verdict.statistic,
                    "group": dict(obs.group)},
        )


def _finite(value: float) -> float:
    return value if math.isfinite(value) else math.nan


def _describe(rule: Rule, verdict: Verdict) -> str:
    unit = rule.spec.unit
    if rule.spec.kind == "rate":
        figures = f"{verdict.value:.1%} vs {verdict.baseline:.1%}"
    else:
        change = verdict.relative_change
        pct = f" ({change:+.0%})" if math.isfinite(change) else ""
        figures = f"{verdict.value:.4g} vs {verdict.baseline:.4g} {unit}{pct}".replace("  ", " ")
    return f"{figures} — {verdict.describe()}"


def evaluate_rules(frame: pl.DataFrame, rules: RuleSet, at: datetime,
                   states: dict[str, AlertState]) -> tuple[list[AlertEvent],
                                                            dict[str, AlertState]]:
    """One evaluation at ``at``; returns the events and the new states."""
    evaluator = Evaluator(frame, rules, dict(states))
    events = evaluator.evaluate_at(at)
    return events, evaluator.states


def replay(frame: pl.DataFrame, rules: RuleSet, since: datetime, until: datetime,
           step_every: timedelta = timedelta(minutes=5)) -> list[AlertEvent]:
    """Evaluate at every ``step_every`` in ``(since, until]`` as if live; all events."""
    evaluator = Evaluator(frame, rules)
    events: list[AlertEvent] = []
    at = since + step_every
    while at <= until:
        events.extend(evaluator.evaluate_at(at))
        at += step_every
    return events
