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

    @property
    def onset_ns(self) -> int:
        return to_ns(self.onset)

    @property
    def end_ns(self) -> int:
        return to_ns(self.end)

    def is_active(self, t_ns: int) -> bool:
        """True when ``t_ns`` falls in [onset, end)."""
        return self.onset_ns <= t_ns < self.end_ns

    def to_json(self, range_end: datetime) -> dict[str, Any]:
        """Ground-truth form, with ``end`` clipped to the generated range."""
        return {
            "incident_id": self.incident_id,
            "kind": self.kind,
            "title": self.title,
            "service_name": self.service,
            "onset": self.onset.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "end": min(self.end, range_end).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "affected_slice": self.affected_slice,
            "expected_effect": self.expected_effect,
        }


PROMPT_ROLLOUT = Incident(
    "INC-1", "prompt_rollout", "support-answer prompt v4 rollout raises latency and cost",
    at(3, 14, 5), at(4, 10, 30), "support-copilot",
    {"service_name": "support-copilot", "prompt_version": "v4"},
    "v4 is served to 60% of support-copilot traffic: prompt tokens about +70%, completion "
    "tokens about +80%, so p95 trace latency roughly doubles and cost per trace rises ~1.7x for "
    "prompt_version v4; v3 traffic in the same window is unaffected. Rolled back at the end.",
)
RETRY_LOOP = Incident(
    "INC-2", "retry_loop", "agent retry loop on lookup_order makes token spend spike",
    at(4, 16, 0), at(5, 3, 0), "agent",
    {"service_name": "agent", "root_name": "ops_assistant.workflow"},
    "About 35% of agent traces loop 6-14 times over lookup_order and the planner LLM: LLM calls "
    "per trace x4-8 and total tokens per trace up to ~10x; hourly token spend of the agent "
    "spikes while trace volume is unchanged.",
)
PROVIDER_OUTAGE = Incident(
    "INC-3", "provider_outage", "OpenAI partial outage drives fallbacks to Anthropic",
    at(8, 9, 40), at(8, 11, 25), "support-copilot,agent",
    {"provider": "openai", "service_name": ["support-copilot", "agent"]},
    "About 70% of OpenAI calls fail with 5xx or time out; support-copilot falls back to "
    "claude-3-5-haiku and the agent to claude-3-5-sonnet. Fallback rate rises from ~2% to ~60% "
    "for those services; error rate and latency rise moderately.",
)
INDEX_DEGRADATION = Incident(
    "INC-4", "retrieval_degradation", "stale vector index returns off-topic articles",
    at(9, 13, 0), at(10, 8, 0), "support-copilot",
    {"service_name": "support-copilot", "span_kind": "RETRIEVER"},
    "About 65% of support-copilot retrievals return articles from unrelated topics with normal-"
    "looking scores; answers are then unsupported, so the grounded rate drops from ~88% to ~40%. "
    "Latency, errors and cost are unchanged.",
)
ANSWER_LENGTH_DRIFT = Incident(
    "INC-5", "gradual_drift", "support answers slowly get longer",
    at(7, 0, 0), at(14, 0, 0), "support-copilot",
    {"service_name": "support-copilot", "span_kind": "LLM"},
    "Answer length (completion tokens) of support-copilot creeps up linearly, about +6% per day "
    "from 2026-11-16 to about +40% by 2026-11-22; each day's change is within normal day-to-day "
    "variation, so a fixed day-over-day threshold misses it. Groundedness is unchanged.",
)

INCIDENTS: tuple[Incident, ...] = (
    PROMPT_ROLLOUT, RETRY_LOOP, PROVIDER_OUTAGE, INDEX_DEGRADATION, ANSWER_LENGTH_DRIFT,
)


def drift_progress(t_ns: int) -> float:
    """0 before the answer-length drift, rising linearly to 1 at its end."""
    inc = ANSWER_LENGTH_DRIFT
    if t_ns < inc.onset_ns:
        return 0.0
    return min(1.0, (t_ns - inc.onset_ns) / (inc.end_ns - inc.onset_ns))


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
