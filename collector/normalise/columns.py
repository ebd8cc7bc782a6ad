"""The simple columns of a Span: each one value from the first usable source.

Contract: ``COLUMN_KEYS`` lists, per column, the attribute keys that feed it in
precedence order (rank 0 wins); ``resolve_columns(found, rest)`` returns
``{column: value}`` for the columns any key in ``found`` could fill.  Precedence prefers the
response model over the requested one and the OpenInference key over the GenAI and
OpenLLMetry ones where both exist.

Edge cases: a value that does not coerce (a token count ``"abc"``, a model name that is a
list) gives no value and is put into ``rest`` (the span's kept attributes); a lower-ranked
value that differs from the chosen one is kept in ``rest`` too (``gen_ai.request.model``
when the response model differs), while an equal one is a duplicate and is dropped.
"""

from __future__ import annotations

from typing import Any, Callable

from opentelemetry.semconv._incubating.attributes.enduser_attributes import ENDUSER_ID

from collector.normalise import conventions as tw
from collector.normalise import genai, openllmetry as ol, openinference as oi
from collector.normalise.coerce import to_count, to_label, to_money, to_text
from collector.normalise.providers import normalise_provider

# Simple columns: their sources in precedence order, and how a value is coerced.
(C_MODEL, C_PROVIDER, C_PROMPT_VERSION, C_PROMPT_TEMPLATE, C_PROMPT_TOKENS,
 C_COMPLETION_TOKENS, C_CACHED_TOKENS, C_TOTAL_TOKENS, C_COST, C_SESSION, C_USER,
 C_FALLBACK_FROM) = range(12)
COLUMN_KEYS: dict[int, tuple[str, ...]] = {
    C_MODEL: (oi.RESPONSE_MODEL_NAME, genai.RESPONSE_MODEL, oi.MODEL_NAME,
               oi.REQUEST_MODEL_NAME, genai.REQUEST_MODEL, oi.EMBEDDING_MODEL_NAME),
    C_PROVIDER: (oi.PROVIDER, genai.PROVIDER_NAME, genai.SYSTEM, oi.SYSTEM),
    C_PROMPT_VERSION: (oi.PROMPT_TEMPLATE_VERSION, tw.PROMPT_VERSION,
                        tw.PROMPT_VERSION_UNDERSCORE, tw.GENAI_PROMPT_VERSION,
                        ol.ASSOCIATION_PROMPT_VERSION, ol.PROMPT_VERSION),
    C_PROMPT_TEMPLATE: (oi.PROMPT_TEMPLATE, genai.PROMPT_TEMPLATE, ol.PROMPT_TEMPLATE),
    C_PROMPT_TOKENS: (oi.TOKENS_PROMPT, genai.INPUT_TOKENS, genai.PROMPT_TOKENS),
    C_COMPLETION_TOKENS: (oi.TOKENS_COMPLETION, genai.OUTPUT_TOKENS,
                           genai.COMPLETION_TOKENS),
    C_CACHED_TOKENS: (oi.TOKENS_CACHE_READ, genai.CACHE_READ_TOKENS, ol.CACHE_READ_TOKENS,
                       ol.LLM_CACHE_READ_TOKENS),
    C_TOTAL_TOKENS: (oi.TOKENS_TOTAL, ol.TOTAL_TOKENS, ol.GEN_AI_TOTAL_TOKENS),
    C_COST: (oi.COST_TOTAL,),
    C_SESSION: (oi.SESSION_ID, genai.CONVERSATION_ID, ol.ASSOCIATION_SESSION_ID),
    C_USER: (oi.USER_ID, ol.ASSOCIATION_USER_ID, ENDUSER_ID, ol.USER, ol.GEN_AI_USER),
    C_FALLBACK_FROM: (tw.FALLBACK_FROM,),
}
_COLUMN_COERCE: dict[int, Callable[[Any], Any]] = {
    C_MODEL: to_label, C_PROVIDER: normalise_provider, C_PROMPT_VERSION: to_label,
    C_PROMPT_TEMPLATE: to_text, C_PROMPT_TOKENS: to_count, C_COMPLETION_TOKENS: to_count,
    C_CACHED_TOKENS: to_count, C_TOTAL_TOKENS: to_count, C_COST: to_money,
    C_SESSION: to_label, C_USER: to_label, C_FALLBACK_FROM: to_label,
}
# key -> (column, rank, coerce); rank 0 wins.
COLUMN_SOURCES: dict[str, tuple[int, int, Callable[[Any], Any]]] = {
    key: (column, rank, _COLUMN_COERCE[column])
    for column, keys in COLUMN_KEYS.items()
    for rank, key in enumerate(keys)
}


def resolve_columns(found: dict[str, Any], rest: dict[str, Any]) -> dict[int, Any]:
    """Simple columns from ``found``: {column: value}, by ``COLUMN_SOURCES`` precedence.

    A value that does not coerce goes back to ``rest``; so does a lower-ranked value that
    differs from the chosen one (an equal one is a duplicate and is dropped).
    """
    chosen: dict[int, tuple[int, Any]] = {}
    losers: list[tuple[int, Any, str]] | None = None
    sources = COLUMN_SOURCES
    for key, value in found.items():
        source = sources.get(key)
        if source is None:
            continue
        column, rank, coerce = source
        parsed = coerce(value)
        if parsed is None:
            if value is not None:
                rest[key] = value
            continue
        current = chosen.get(column)
        if current is None:
            chosen[column] = (rank, parsed)
            continue
        if losers is None:
            losers = []
        if rank < current[0]:
            chosen[column] = (rank, parsed)
            losers.append((column, current[1], COLUMN_KEYS[column][current[0]]))
        else:
            losers.append((column, parsed, key))
    columns = {column: entry[1] for column, entry in chosen.items()}
    if losers:
        for column, parsed, key in losers:
            if parsed != columns[column]:
                rest[key] = found[key]
    return columns
