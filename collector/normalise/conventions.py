"""Attribute conventions that no semconv package defines but tracewatch reads.

- Fallback markers: ``llm.fallback`` or ``fallback`` (true), and ``fallback_from`` (the
  model the application fell back from).  A span is marked as a fallback when a flag is
  true, or when ``fallback_from`` is present and differs from the requested model.
- Prompt version: ``prompt.version`` and ``prompt_version`` (besides the dialects' own).
- Span-carried evaluations: ``eval.<name>.score`` / ``.label`` / ``.explanation`` (the
  name may contain dots; the last segment is the field), OpenInference
  ``evaluation.{name,score,label,explanation}``, and EVALUATOR spans whose output is a
  number or a JSON object with ``score`` / ``label`` / ``explanation``.

Edge cases: a flag that is neither a boolean nor a recognisable true/false string or
number is garbage: it marks nothing and stays in ``attributes``.  An ``eval.*`` key whose
last segment is not one of the three fields stays in ``attributes``.  An evaluation with
neither a score nor a label is dropped (its keys stay in ``attributes``).
"""

from __future__ import annotations

from typing import Any

from collector.normalise.coerce import load_json, to_label, to_score, to_text
from collector.records import SpanEvaluation

LLM_FALLBACK = "llm.fallback"
FALLBACK = "fallback"
FALLBACK_FROM = "fallback_from"
PROMPT_VERSION = "prompt.version"
PROMPT_VERSION_UNDERSCORE = "prompt_version"
# The GenAI conventions name prompts (gen_ai.prompt.name) but have no version key yet;
# instrumentations that version prompts use this one.
GENAI_PROMPT_VERSION = "gen_ai.prompt.version"

EVAL_PREFIX = "eval."
EVAL_SCORE = "score"
EVAL_LABEL = "label"
EVAL_EXPLANATION = "explanation"
EVAL_FIELDS = frozenset({EVAL_SCORE, EVAL_LABEL, EVAL_EXPLANATION})

_TRUE = frozenset({"true", "yes", "1", "t", "y"})
_FALSE = frozenset({"false", "no", "0", "f", "n", ""})


def parse_flag(value: Any) -> bool | None:
    """True / False for a recognisable boolean, None for garbage."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return value != 0
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    return None


def split_eval_key(key: str) -> tuple[str, str] | None:
    """``"eval.hallucination.score"`` -> ``("hallucination", "score")``; else None."""
    name, dot, field = key[len(EVAL_PREFIX) :].rpartition(".")
    if not dot or not name or field not in EVAL_FIELDS:
        return None
    return name, field


def convert_eval_fields(
    grouped: dict[str, dict[str, Any]],
) -> tuple[list[SpanEvaluation], list[tuple[str, str]]]:
    """``{name: {field: value}}`` from ``eval.*`` keys -> (evaluations, leftover keys)."""
    evaluations: list[SpanEvaluation] = []
    leftovers: list[tuple[str, str]] = []
    for name, fields in grouped.items():
        evaluation = make_evaluation(
            name, fields.get(EVAL_SCORE), fields.get(EVAL_LABEL), fields.get(EVAL_EXPLANATION)
        )
        if evaluation is None:
            leftovers.extend((name, field) for field in fields)
        else:
            evaluations.append(evaluation)
    return evaluations, leftovers


def make_evaluation(
    name: Any, score: Any, label: Any, explanation: Any
) -> SpanEvaluation | None:
    """A SpanEvaluation, or None without a name or without both score and label."""
    name_text = to_label(name)
    score_value = to_score(score)
    label_text = to_label(label)
    if name_text is None or (score_value is None and label_text is None):
        return None
    return SpanEvaluation(name_text, score_value, label_text, to_text(explanation))


def convert_evaluator_output(name: str, output: Any) -> SpanEvaluation | None:
    """An EVALUATOR span's output: a number, or a JSON object with score/label."""
    parsed = load_json(output) if isinstance(output, str) else output
    if isinstance(parsed, dict):
        return make_evaluation(
            parsed.get("name") or name,
            parsed.get(EVAL_SCORE),
            parsed.get(EVAL_LABEL),
            parsed.get(EVAL_EXPLANATION) or parsed.get("reason"),
        )
    if isinstance(parsed, (int, float)) and not isinstance(parsed, bool):
        return make_evaluation(name, parsed, None, None)
    return None
