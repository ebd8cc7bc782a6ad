"""When requests arrive: daily and weekly seasonality, bursts, sessions and users.

Contract:
- ``plan_arrivals(seed, service, day, scale)`` returns the trace start times of one service on
  one calendar day, sorted, each with its user id, session id and turn number. It depends only on
  its arguments, so days can be generated independently (and in parallel) with identical output.
- Expected volume: about 50,000 traces over the 14 calendar days at ``scale=1``; ``scale``
  multiplies the number of sessions.
- Seasonality: a business-hours peak around 14:30 UTC with a smaller US-evening shoulder,
  weekends at ~40% (doc-extraction also runs a nightly batch at 02:00 UTC). Bursts are short
  windows at 3-5x the normal rate, chosen from the seed and listed in the ground truth.
- Sessions: support-copilot and agent users ask follow-ups (1-5 turns, 20 s - 4 min apart);
  turns that would fall after the end of the day are dropped. Users are drawn with a heavy tail
  (a few users produce many sessions).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from samples.incidents import NS_PER_S, at, to_ns

SUPPORT = "support-copilot"
EXTRACTION = "doc-extraction"
AGENT = "agent"
SERVICES = (SUPPORT, EXTRACTION, AGENT)

# Traces per day at scale 1, averaged over the two calendar weeks.
_TRACES_PER_DAY = {SUPPORT: 1850.0, EXTRACTION: 860.0, AGENT: 860.0}
_MEAN_TURNS = {SUPPORT: 2.0, EXTRACTION: 1.0, AGENT: 1.5}
_NUM_USERS = {SUPPORT: 2500, EXTRACTION: 60, AGENT: 45}
_WEEKEND_FACTOR = {SUPPORT: 0.42, EXTRACTION: 0.25, AGENT: 0.35}


@dataclass(frozen=True, slots=True)
class Arrival:
    """One trace to generate."""

    start_ns: int
    user_id: str
    session_id: str
    turn: int


@dataclass(frozen=True, slots=True)
class Burst:
    """A short window of extra traffic."""

    service: str
    day: int
    start_minute: int
    num_minutes: int
    factor: float


def _minute_weights(service: str) -> list[float]:
    weights = []
    for minute in range(1440):
        h = minute / 60.0
        w = (
            0.22
            + math.exp(-(((h - 14.5) / 3.6) ** 2))
            + 0.35 * math.exp(-(((h - 20.5) / 2.2) ** 2))
        )
        if service == EXTRACTION and 2.0 <= h < 2.75:
            w += 2.5  # nightly batch job
        weights.append(w)
    return weights


_WEIGHTS = {service: _minute_weights(service) for service in SERVICES}


def _day_factor(service: str, day: int) -> float:
    return _WEEKEND_FACTOR[service] if day % 7 in (5, 6) else 1.0


def _mean_day_factor(service: str) -> float:
    return sum(_day_factor(service, d) for d in range(14)) / 14.0


def plan_bursts(seed: int, num_days: int) -> list[Burst]:
    """Bursts of traffic: about one every two days, spread over services."""
    rng = random.Random(f"bursts-{seed}")
    bursts = []
    for day in range(num_days):
        for service in SERVICES:
            if rng.random() < 0.18:
                bursts.append(
                    Burst(
                        service,
                        day,
                        rng.randint(8 * 60, 19 * 60),
                        rng.randint(15, 50),
                        round(rng.uniform(3.0, 5.0), 2),
                    )
                )
    return bursts


def _weights_with_bursts(service: str, day: int, bursts: list[Burst]) -> list[float]:
    weights = list(_WEIGHTS[service])
    for b in bursts:
        if b.service == service and b.day == day:
            for m in range(b.start_minute, min(1440, b.start_minute + b.num_minutes)):
                weights[m] *= b.factor
    return weights


def _user_id(service: str, index: int) -> str:
    if service == EXTRACTION:
        return f"tenant-{index:03d}"
    if service == AGENT:
        return f"ops-{index:02d}"
    return f"usr_{(index * 2654435761) % (1 << 32):08x}"


def plan_arrivals(
    seed: int, service: str, day: int, scale: float, bursts: list[Burst]
) -> list[Arrival]:
    """Trace start times of one service on one day (see module docstring)."""
    rng = random.Random(f"arrivals-{seed}-{service}-{day}")
    weights = _weights_with_bursts(service, day, bursts)
    base_weight = sum(_WEIGHTS[service])
    expected = (
        _TRACES_PER_DAY[service]
        * scale
        * _day_factor(service, day)
        / _mean_day_factor(service)
        * sum(weights)
        / base_weight
    )
    num_sessions = max(
        0, round(rng.gauss(expected / _MEAN_TURNS[service], math.sqrt(expected) * 0.5))
    )
    day_start_ns = to_ns(at(day, 0))
    day_end_ns = to_ns(at(day + 1, 0))
    minutes = rng.choices(range(1440), weights=weights, k=num_sessions)
    num_users = _NUM_USERS[service]
    arrivals: list[Arrival] = []
    for minute in minutes:
        start = day_start_ns + minute * 60 * NS_PER_S + rng.randrange(60 * NS_PER_S)
        user_index = min(
            num_users - 1, int(rng.paretovariate(1.2)) - 1 + rng.randrange(num_users) // 8
        )
        user = _user_id(service, user_index)
        session = f"{rng.getrandbits(64):016x}"
        if service == EXTRACTION:
            arrivals.append(Arrival(start, user, session, 0))
            continue
        turns = 1
        while turns < 5 and rng.random() < 1.0 - 1.0 / _MEAN_TURNS[service]:
            turns += 1
        t = start
        for turn in range(turns):
            if t >= day_end_ns:
                break
            arrivals.append(Arrival(t, user, session, turn))
            t += rng.randint(20, 240) * NS_PER_S
    arrivals.sort(key=lambda a: a.start_ns)
    return arrivals
