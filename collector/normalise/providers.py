"""Normalise provider / system names to the ids genai-prices uses.

Contract: ``normalise_provider(value)`` returns a lower-case provider id, or None for
anything that is not a non-empty string.  Known aliases from the three dialects map to one
id so that costs and dashboards group them together: the GenAI ``gcp.*`` / ``vertex_ai`` /
``gemini`` family -> ``google``; ``az.ai.*`` / ``azure.ai.*`` -> ``azure``;
``aws.bedrock`` -> ``aws``; ``mistral_ai`` / ``mistralai`` -> ``mistral``; ``x_ai`` /
``xai`` -> ``x-ai``; ``together_ai`` -> ``together``; ``moonshot`` -> ``moonshotai``.
Any other value is kept, lower-cased and stripped (``"OpenAI"`` -> ``"openai"``).
"""

from __future__ import annotations

from typing import Any

from openinference.semconv.trace import OpenInferenceLLMProviderValues as OIProvider
from openinference.semconv.trace import OpenInferenceLLMSystemValues as OISystem
from opentelemetry.semconv._incubating.attributes.gen_ai_attributes import (
    GenAiProviderNameValues as GAProvider,
)
from opentelemetry.semconv._incubating.attributes.gen_ai_attributes import (
    GenAiSystemValues as GASystem,
)
from opentelemetry.semconv_ai import GenAISystem as OLSystem

_ALIASES: dict[str, str] = {
    GASystem.GCP_GEN_AI.value: "google",
    GASystem.GCP_VERTEX_AI.value: "google",
    GASystem.GCP_GEMINI.value: "google",
    GASystem.VERTEX_AI.value: "google",
    GASystem.GEMINI.value: "google",
    OISystem.VERTEXAI.value: "google",
    GASystem.AZ_AI_INFERENCE.value: "azure",
    GASystem.AZ_AI_OPENAI.value: "azure",
    GASystem.AZURE_AI_INFERENCE.value: "azure",
    GASystem.AZURE_AI_OPENAI.value: "azure",
    GASystem.AWS_BEDROCK.value: "aws",
    GASystem.MISTRAL_AI.value: "mistral",
    OIProvider.MISTRALAI.value: "mistral",
    GAProvider.X_AI.value: "x-ai",
    OIProvider.XAI.value: "x-ai",
    OLSystem.TOGETHER_AI.value: "together",
    OIProvider.MOONSHOT.value: "moonshotai",
    OLSystem.HUGGINGFACE.value: "huggingface",
}
_CACHE: dict[str, str] = {}
_MAX_CACHE = 10_000


def normalise_provider(value: Any) -> str | None:
    """A provider id (see the module docstring), or None."""
    if type(value) is not str:
        return None
    cached = _CACHE.get(value)
    if cached is not None:
        return cached
    text = value.strip().lower()
    if not text:
        return None
    provider = _ALIASES.get(text, text)
    if len(_CACHE) < _MAX_CACHE:
        _CACHE[value] = provider
    return provider
