"""The incidents planted in the sample traces, on a fixed calendar.

Contract:
- Times are UTC on the fixed calendar starting 2026-11-09T00:00Z (ISO week 2026-W46), never the
  current date. With ``--days N`` an incident is kept when its onset falls before the end of
  the range, and its ``end`` is clipped to the range.
- Each incident states its onset, end, affected slice (the columns of the ``spans``/``traces``
  views that select it) and expected effect. A trace is labelled with an incident id when it
  falls in that incident's slice and window (whether or not it visibly failed).
- ``CLEAN_DAY_INDEXES``-style cleanliness is computed, not declared: a clean day is a UTC day
  with no incident window overlapping it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

CALENDAR_START = datetime(2026, 11, 9, tzinfo=UTC)
NS_PER_S = 1_000_000_000


def to_ns(moment: datetime) -> int:
    """UTC datetime -> Unix nanoseconds."""
    return int(moment.timestamp()) * NS_PER_S


def at(day: int, hour: int, minute: int = 0) -> datetime:
    """A moment on the sample calendar: ``day`` 0 is Monday 2026-11-09."""
    return CALENDAR_START + timedelta(days=day, hours=hour, minutes=minute)


@dataclass(frozen=True, slots=True)
class Incident:
    """One planted incident."""

    incident_id: str
    kind: str
    title: str
    onset: datetime
    end: datetime
    service: str
    affected_slice: dict[str, Any] = field(default_factory=dict)
    expected_effect: str = ""
    onset_ns: int = field(init=False)
    end_ns: int = field(init=False)

    def __post_init__(self) -> None:
        # Precomputed: is_active runs once per generated trace.
        object.__setattr__(self, "onset_ns", to_ns(self.onset))
        object.__setattr__(self, "end_ns", to_ns(self.end))

    def is_active(self, t_ns: int) -> bool:
        """True when ``t_ns`` falls in [onset, end)."""
        return self.onset_ns <= t_ns < self.end_ns

    def to_json(self, range_end: datetime) -> dict[str, Any]:
        """Ground-truth form, with ``end`` clipped to the generated range."""
        return {
            "incident_id": self.incident_id,
            "kind": self.kind,
            "title": self.title,
            "service_names": self.service.split(","),
            "onset": self.onset.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "end": min(self.end, range_end).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "affected_slice": self.affected_slice,
            "expected_effect": self.expected_effect,
        }


PROMPT_ROLLOUT = Incident(
    "INC-1",
    "prompt_rollout",
    "support-answer prompt v4 rollout raises latency and cost",
    at(3, 14, 5),
    at(4, 10, 30),
    "support-copilot",
    {"service_name": "support-copilot", "prompt_version": "v4"},
    "v4 is served to 60% of support-copilot traffic. For prompt_version v4: prompt tokens about "
    "+70% and completion tokens about x3, so tokens and cost per trace roughly double and p50 and "
    "p95 trace latency roughly double (p95 ~1.6 s -> ~3 s); v3 traffic in the same window is "
    "unaffected. Rolled back at the end (traffic returns to v3).",
)
RETRY_LOOP = Incident(
    "INC-2",
    "retry_loop",
    "agent retry loop on lookup_order makes token spend spike",
    at(4, 16, 0),
    at(5, 3, 0),
    "agent",
    {"service_name": "agent", "root_name": "ops_assistant.workflow", "tool": "lookup_order"},
    "About 35% of agent traces loop 6-14 times over lookup_order and the planner LLM: a looping "
    "trace makes 3-5x the LLM calls and ~8x the tokens of a normal one, so mean tokens per agent "
    "trace rise ~3.5x and the agent's hourly token spend spikes while trace volume is unchanged.",
)
PROVIDER_OUTAGE = Incident(
    "INC-3",
    "provider_outage",
    "OpenAI partial outage drives fallbacks to Anthropic",
    at(8, 9, 40),
    at(8, 11, 25),
    "support-copilot,agent",
    {"provider": "openai", "service_name": ["support-copilot", "agent"]},
    "About 70% of OpenAI calls fail with 5xx or time out; support-copilot falls back to "
    "claude-3-5-haiku and the agent to claude-3-5-sonnet. Fallback rate rises from ~1-2% to "
    "~50-65% for those services; error rate and latency rise moderately.",
)
INDEX_DEGRADATION = Incident(
    "INC-4",
    "retrieval_degradation",
    "stale vector index returns off-topic articles",
    at(9, 13, 0),
    at(10, 8, 0),
    "support-copilot",
    {"service_name": "support-copilot", "span_kind": "RETRIEVER"},
    "About 65% of support-copilot retrievals return articles from unrelated topics with normal-"
    "looking scores; answers are then unsupported, so the grounded rate drops from ~88% to ~35%. "
    "Latency, errors and cost are unchanged.",
)
# Open-ended: the drift is never fixed, so with --days beyond 14 it continues (at its plateau).
ANSWER_LENGTH_DRIFT = Incident(
    "INC-5",
    "gradual_drift",
    "support answers slowly get longer",
    at(7, 0, 0),
    at(3650, 0, 0),
    "support-copilot",
    {"service_name": "support-copilot", "span_kind": "LLM"},
    "Answer length (completion tokens, output length) of support-copilot creeps up linearly from "
    "2026-11-16, about +6% per day, to about +45% by the end of 2026-11-22 (one more generic "
    "sentence per answer), then stays there. No single day jumps, so a fixed day-over-day or "
    "+50% threshold misses it; a trend against the clean-week baseline finds it. Labels stay "
    "grounded (the added sentences are generic advice, not claims), though a sentence-level "
    "scorer may dip slightly. The window is open-ended: its end is the end of the range.",
)

INCIDENTS: tuple[Incident, ...] = (
    PROMPT_ROLLOUT,
    RETRY_LOOP,
    PROVIDER_OUTAGE,
    INDEX_DEGRADATION,
    ANSWER_LENGTH_DRIFT,
)


DRIFT_RAMP_NS = 7 * 86_400 * NS_PER_S


def drift_progress(t_ns: int) -> float:
    """0 before the answer-length drift, rising linearly to 1 over 7 days, then flat."""
    onset = ANSWER_LENGTH_DRIFT.onset_ns
    if t_ns < onset:
        return 0.0
    return min(1.0, (t_ns - onset) / DRIFT_RAMP_NS)


def incidents_in_range(range_end: datetime) -> list[Incident]:
    """Incidents whose onset falls inside the generated range."""
    return [inc for inc in INCIDENTS if inc.onset < range_end]


def find_clean_days(num_days: int) -> list[str]:
    """UTC dates (YYYY-MM-DD) in the range that no incident window overlaps."""
    clean = []
    for day in range(num_days):
        start, end = at(day, 0), at(day + 1, 0)
        if not any(inc.onset < end and inc.end > start for inc in INCIDENTS):
            clean.append(start.strftime("%Y-%m-%d"))
    return clean
