"""Plan the LLM call attempts of one logical model request (retries, timeouts, fallbacks).

Contract:
- ``plan_attempts`` turns a failure mode into the sequence of calls an application would make:
  * ``rate_limited``: 1-3 fast 429 errors on the same model, backoff gaps, then success on the
    same model (a retry, not a fallback);
  * ``provider_timeout``: a call that hangs until the client timeout; 40% retry the same model
    and succeed, the rest fail the request;
  * ``model_fallback``: a 5xx/overloaded error or a timeout on the primary model, then a call on
    the fallback model of another provider. Half of the fallback calls carry an explicit marker
    (``explicit_marker``); the others are recognisable only as a successful call on another
    model after an ERROR call, as the metric definition in DESIGN.md allows;
  * ``context_length_exceeded``: an immediate 400 and no retry;
  * anything else: one successful call.
- Durations are filled in by the caller for successful calls (they depend on tokens); errors
  carry their own duration here.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from samples import failures
from samples.failures import ErrorText
from samples.models import Model

# Custom attributes that mark a fallback call (see DESIGN.md "fallback").
FALLBACK_FLAG = "llm.fallback"
FALLBACK_FROM = "fallback_from"


@dataclass(frozen=True, slots=True)
class Attempt:
    """One call to a model."""

    model: Model
    error: ErrorText | None = None
    error_duration_ms: float = 0.0
    gap_before_ms: float = 0.0
    is_fallback: bool = False
    explicit_marker: bool = False
    fallback_from: str | None = None


def plan_attempts(
    rng: random.Random,
    mode: str | None,
    primary: Model,
    fallback: Model,
    caller: str,
    requested_tokens: int = 0,
) -> tuple[list[Attempt], bool]:
    """Return the attempts and whether the request finally succeeded."""
    if mode == failures.RATE_LIMITED:
        attempts = [
            Attempt(
                primary,
                failures.make_rate_limit_error(rng, primary.provider_id, primary.name, caller),
                rng.uniform(60, 420),
                gap_before_ms=0.0 if i == 0 else rng.uniform(400, 2000) * 2**i,
            )
            for i in range(rng.choice((1, 1, 2, 3)))
        ]
        attempts.append(Attempt(primary, gap_before_ms=rng.uniform(500, 4000) * len(attempts)))
        return attempts, True
    if mode == failures.PROVIDER_TIMEOUT:
        timeout_s = rng.choice((30, 60, 60, 120))
        first = Attempt(
            primary,
            failures.make_timeout_error(rng, primary.provider_id, caller, timeout_s),
            timeout_s * 1000.0 + rng.uniform(0, 40),
        )
        if rng.random() < 0.4:
            return [first, Attempt(primary, gap_before_ms=rng.uniform(200, 1500))], True
        return [first], False
    if mode == failures.MODEL_FALLBACK:
        if rng.random() < 0.75:
            error = failures.make_server_error(rng, primary.provider_id, caller)
            duration = rng.uniform(80, 2500)
        else:
            timeout_s = rng.choice((20, 30, 60))
            error = failures.make_timeout_error(rng, primary.provider_id, caller, timeout_s)
            duration = timeout_s * 1000.0
        explicit = rng.random() < 0.5
        return [
            Attempt(primary, error, duration),
            Attempt(
                fallback,
                gap_before_ms=rng.uniform(5, 60),
                is_fallback=True,
                explicit_marker=explicit,
                fallback_from=primary.name if explicit else None,
            ),
        ], True
    if mode == failures.CONTEXT_LENGTH_EXCEEDED:
        requested = max(requested_tokens, primary.context_tokens + rng.randint(500, 40_000))
        error = failures.make_context_length_error(
            rng, primary.provider_id, primary.context_tokens, requested, caller
        )
        return [Attempt(primary, error, rng.uniform(90, 600))], False
    return [Attempt(primary)], True
