"""The models the sample services call, with the latency and limits used to time their spans.

Contract:
- Every model except ``acme-llm-7b`` (provider ``internal``) is priced by ``genai-prices``
  under the ``provider_id``/``model`` given here; ``tests/test_samples.py`` checks it.
- ``provider_id`` is the genai-prices / OpenInference provider name; the GenAI dialect writes
  ``genai_provider`` instead (``gcp.gemini`` for Google), as real instrumentations do.
- Latency of one call: ``ttft_ms`` (time to first token, scaled by prompt size) plus
  ``completion_tokens / tokens_per_s``, with log-normal noise applied by the caller.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Model:
    """One model endpoint."""

    name: str
    provider_id: str
    genai_provider: str
    ttft_ms: float
    tokens_per_s: float
    context_tokens: int
    priced: bool = True


GPT_4O = Model("gpt-4o", "openai", "openai", 520.0, 85.0, 128_000)
GPT_4O_MINI = Model("gpt-4o-mini", "openai", "openai", 380.0, 120.0, 128_000)
CLAUDE_SONNET = Model("claude-3-5-sonnet-20241022", "anthropic", "anthropic", 780.0, 70.0, 200_000)
CLAUDE_HAIKU = Model("claude-3-5-haiku-20241022", "anthropic", "anthropic", 450.0, 110.0, 200_000)
GEMINI_FLASH = Model("gemini-1.5-flash", "google", "gcp.gemini", 330.0, 160.0, 1_048_576)
ACME_7B = Model("acme-llm-7b", "internal", "internal", 140.0, 210.0, 32_768, priced=False)

ALL_MODELS = (GPT_4O, GPT_4O_MINI, CLAUDE_SONNET, CLAUDE_HAIKU, GEMINI_FLASH, ACME_7B)


def estimate_tokens(text: str) -> int:
    """Rough token count: about four characters per token, at least one."""
    return max(1, len(text) // 4)


def sample_call_timing_ms(
    rng: random.Random,
    model: Model,
    prompt_tokens: int,
    completion_tokens: int,
    slowdown: float = 1.0,
) -> tuple[float, float]:
    """Return (time to first token, total duration) in ms for one successful call."""
    noise = math.exp(rng.gauss(0.0, 0.25))
    ttft = (model.ttft_ms + prompt_tokens * 0.045) * noise * slowdown
    decode = completion_tokens / model.tokens_per_s * 1000.0 * math.exp(rng.gauss(0.0, 0.15))
    return ttft, ttft + decode * slowdown
