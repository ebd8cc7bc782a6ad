"""Optional LLM-as-judge groundedness evaluator (phoenix.evals against any OpenAI-compatible
endpoint).

``judge_store(data_dir, config)`` picks traces that have retrieved context and an answer and
that no LLM judge has scored yet, samples them, and asks a judge model, through
``phoenix.evals.metrics.FaithfulnessEvaluator`` (arize-phoenix-evals), whether the answer is
faithful to the context.  Each verdict is appended to the ``evaluations`` Delta table as
source ``llm_judge``, name ``groundedness``: label ``faithful`` -> score 1.0, ``unfaithful``
-> 0.0, with the judge's explanation.  In the ``traces`` view a judge's score takes
precedence over span-posted and built-in scores (``GROUNDEDNESS_SOURCE_RANK``).

Only redacted text is sent: ``traces.input_text`` / ``traces.output_text`` and
``retrievals.content`` are what the collector stored after redaction.

Sampling is consistent: a trace is in the sample when a hash of (seed, trace_id) falls
below ``sample_rate``, so re-running with the same seed never judges a different share of
old traces; ``max_traces`` then keeps the traces with the smallest hashes (a uniform
subsample).

Cost: phoenix.evals discards the endpoint's response, so the OpenAI client gets an httpx
client whose response hook reads ``usage.prompt_tokens`` / ``usage.completion_tokens`` of
every chat completion; when the endpoint returns no usage the tokens are estimated at four
characters a token from the request messages and the reply.  Cost = tokens x the configured
prices per million tokens.

The API key comes from ``TRACEWATCH_JUDGE_API_KEY`` (or the config), is held as a
``SecretStr``, is sent only as the bearer token of the configured endpoint, and is never
logged.  ``OPENAI_API_KEY`` is deliberately not used: it must not leak to a third-party URL.

Requires ``pip install arize-phoenix-evals openai`` (not a base dependency).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
from deltalake import write_deltalake
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from analytics.errors import AnalyticsError
from analytics.views import open_store
from collector.schema import EVALUATIONS_SCHEMA, EVALUATIONS_TABLE, PARTITION_COLUMN, table_path

logger = logging.getLogger(__name__)

SOURCE = "llm_judge"
NAME = "groundedness"
CHARS_PER_TOKEN = 4  # fallback estimate when the endpoint reports no usage
MAX_CONTEXT_CHARS = 24_000  # per trace, so one huge retrieval does not blow the judge's window
WRITE_EVERY = 50  # append judged rows every this many verdicts (work survives a crash)


class JudgeConfig(BaseSettings):
    """Where and how to judge.  Fields may come from ``TRACEWATCH_JUDGE_<FIELD>`` env vars."""

    model_config = SettingsConfigDict(env_prefix="TRACEWATCH_JUDGE_", extra="forbid")

    base_url: str  # OpenAI-compatible API root, e.g. http://127.0.0.1:8000/v1
    model: str
    api_key: SecretStr = SecretStr("")  # TRACEWATCH_JUDGE_API_KEY; empty = no Authorization
    sample_rate: float = Field(default=1.0, ge=0.0, le=1.0)
    max_traces: int | None = Field(default=None, ge=0)
    seed: int = 0
    # USD per 1M tokens, for the cost report (0 = free/local endpoint).
    input_price_per_1m: float = Field(default=0.0, ge=0.0)
    output_price_per_1m: float = Field(default=0.0, ge=0.0)
    timeout_s: float = Field(default=60.0, gt=0.0)
    temperature: float | None = 0.0

    @field_validator("base_url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        value = value.strip()
        if not value.startswith(("http://", "https://")):
            raise ValueError("base_url must be an http:// or https:// URL")
        return value.rstrip("/")


@dataclass(frozen=True, slots=True)
class JudgeReport:
    num_candidates: int  # unjudged traces with context and an answer in the time range
    num_sampled: int
    num_judged: int  # verdicts written
    num_failed: int  # judge calls that failed or returned an unusable label
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    tokens_estimated: bool  # some calls reported no usage: their tokens are estimates
    elapsed_s: float


_CANDIDATES_SQL = f"""
WITH docs AS (
    SELECT trace_id,
           list(content ORDER BY span_id, position) AS contents,
           list(document_id ORDER BY span_id, position) AS document_ids
    FROM retrievals WHERE content IS NOT NULL AND content <> '' GROUP BY trace_id
),
done AS (
    SELECT DISTINCT trace_id FROM evaluations WHERE name = '{NAME}' AND source = '{SOURCE}'
),
roots AS (
    SELECT trace_id, arg_min(span_id, start_time) AS span_id
    FROM spans WHERE parent_span_id IS NULL GROUP BY trace_id
)
SELECT t.trace_id, r.span_id, t.start_time, t.input_text, t.output_text,
       d.document_ids, d.contents
FROM traces t
JOIN docs d ON d.trace_id = t.trace_id
LEFT JOIN roots r ON r.trace_id = t.trace_id
WHERE t.output_text IS NOT NULL AND t.output_text <> ''
  AND t.trace_id NOT IN (SELECT trace_id FROM done)
  AND ($since::TIMESTAMP IS NULL OR t.start_time >= $since::TIMESTAMP)
  AND ($until::TIMESTAMP IS NULL OR t.start_time < $until::TIMESTAMP)
"""


def sample_key(trace_id: str, seed: int) -> float:
    """The trace's position in [0, 1) for consistent sampling."""
    digest = hashlib.sha256(f"{seed}:{trace_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def select_sample(trace_ids: list[str], sample_rate: float, max_traces: int | None,
                  seed: int) -> list[str]:
    """Trace ids kept by ``sample_rate`` (consistent hash) and capped at ``max_traces``."""
    keyed = sorted((sample_key(tid, seed), tid) for tid in trace_ids)
    kept = [tid for key, tid in keyed if key < sample_rate]
    return kept if max_traces is None else kept[:max_traces]


class _UsageMeter:
    """httpx response hook: adds up token usage of chat completions."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.estimated = False

    def __call__(self, response: Any) -> None:
        if not response.request.url.path.endswith("/chat/completions"):
            return
        response.read()
        if response.status_code >= 400:
            return
        try:
            body = json.loads(response.content)
        except ValueError:
            return
        usage = body.get("usage") if isinstance(body, dict) else None
        prompt = completion = None
        if isinstance(usage, dict):
            prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
        estimated = False
        if not isinstance(prompt, int):
            prompt, estimated = _estimate_request_tokens(response.request.content), True
        if not isinstance(completion, int):
            completion, estimated = _estimate_reply_tokens(body), True
        with self._lock:
            self.prompt_tokens += prompt
            self.completion_tokens += completion
            self.estimated = self.estimated or estimated


def _estimate(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def _estimate_request_tokens(content: bytes) -> int:
    try:
        request = json.loads(content)
    except ValueError:
        return _estimate(content.decode("utf-8", "replace"))
    text = json.dumps(request.get("messages", ""))
    text += json.dumps(request.get("tools", "")) + json.dumps(request.get("response_format", ""))
    return _estimate(text)


def _estimate_reply_tokens(body: Any) -> int:
    try:
        message = body["choices"][0]["message"]
    except (KeyError, IndexError, TypeError):
        return 0
    text = message.get("content") or ""
    for call in message.get("tool_calls") or []:
        text += str((call.get("function") or {}).get("arguments") or "")
    return _estimate(text)


def _context(document_ids: list[str | None], contents: list[str]) -> str:
    parts = []
    for doc_id, content in zip(document_ids, contents):
        parts.append(f"[{doc_id}] {content}" if doc_id else content)
    text = "\n\n".join(parts)
    return text[:MAX_CONTEXT_CHARS]


def _make_evaluator(config: JudgeConfig, meter: _UsageMeter) -> tuple[Any, Any]:
    try:
        import httpx
        from phoenix.evals import LLM
        from phoenix.evals.metrics import FaithfulnessEvaluator
    except ImportError as exc:  # optional dependency
        raise AnalyticsError(
            "the LLM judge needs arize-phoenix-evals and openai: "
            "pip install arize-phoenix-evals openai") from exc
    http_client = httpx.Client(timeout=config.timeout_s,
                               event_hooks={"response": [meter]})
    llm = LLM(
        provider="openai", model=config.model,
        base_url=config.base_url, api_key=config.api_key.get_secret_value(),
        sync_client_kwargs={"http_client": http_client},
    )
    params: dict[str, Any] = {}
    if config.temperature is not None:
        params["temperature"] = config.temperature
    return FaithfulnessEvaluator(llm=llm, **params), http_client


def _fatal(exc: Exception) -> bool:
    """Errors that would fail every call: stop instead of hammering the endpoint."""
    try:
        import openai
    except ImportError:
        return False
    return isinstance(exc, (openai.APIConnectionError, openai.AuthenticationError,
                            openai.PermissionDeniedError, openai.NotFoundError))


def judge_store(data_dir: Path, config: JudgeConfig, since: datetime | None = None,
                until: datetime | None = None, now: datetime | None = None) -> JudgeReport:
    """Judge a sample of the unjudged RAG traces started in [since, until); append verdicts.

    Raises ``AnalyticsError`` when phoenix.evals is missing or the endpoint is unreachable or
    refuses the key (verdicts obtained before that are kept).
    """
    started = time.perf_counter()
    created_at = (now or datetime.now(timezone.utc)).replace(tzinfo=None)
    con = open_store(data_dir)
    try:
        rows = con.execute(_CANDIDATES_SQL, {"since": since, "until": until}).fetchall()
    finally:
        con.close()
    by_id = {row[0]: row for row in rows}
    sample = select_sample(list(by_id), config.sample_rate, config.max_traces, config.seed)
    meter = _UsageMeter()
    num_judged = num_failed = 0
    if sample:
        evaluator, http_client = _make_evaluator(config, meter)
        logger.info("llm judge: %d of %d candidate traces sampled, model %s at %s",
                    len(sample), len(rows), config.model, config.base_url)
        out = _empty_columns()
        try:
            for trace_id in sample:
                _, span_id, start, question, answer, doc_ids, contents = by_id[trace_id]
                try:
                    score = evaluator.evaluate({
                        "input": question or "", "output": answer,
                        "context": _context(doc_ids, contents),
                    })[0]
                except Exception as exc:  # noqa: BLE001 - one bad verdict must not stop the run
                    if _fatal(exc):
                        raise AnalyticsError(
                            f"LLM judge at {config.base_url} failed: {type(exc).__name__}: "
                            f"{exc}") from exc
                    num_failed += 1
                    logger.warning("llm judge: trace %s not judged: %s: %s",
                                   trace_id, type(exc).__name__, exc)
                    continue
                if score.score is None:
                    num_failed += 1
                    continue
                _add_row(out, trace_id, span_id, start, score, created_at)
                num_judged += 1
                if len(out["trace_id"]) >= WRITE_EVERY:
                    _append(data_dir, out)
                    out = _empty_columns()
        finally:
            _append(data_dir, out)
            http_client.close()
    cost = (meter.prompt_tokens * config.input_price_per_1m
            + meter.completion_tokens * config.output_price_per_1m) / 1e6
    report = JudgeReport(
        num_candidates=len(rows), num_sampled=len(sample), num_judged=num_judged,
        num_failed=num_failed, prompt_tokens=meter.prompt_tokens,
        completion_tokens=meter.completion_tokens, cost_usd=cost,
        tokens_estimated=meter.estimated, elapsed_s=time.perf_counter() - started,
    )
    logger.info("llm judge: %d judged, %d failed, %d+%d tokens, $%.6f",
                num_judged, num_failed, report.prompt_tokens, report.completion_tokens, cost)
    return report


def _empty_columns() -> dict[str, list[object]]:
    return {name: [] for name in EVALUATIONS_SCHEMA.names}


def _add_row(out: dict[str, list[object]], trace_id: str, span_id: str | None,
             start: datetime, score: Any, created_at: datetime) -> None:
    out["trace_id"].append(trace_id)
    out["span_id"].append(span_id)
    out["name"].append(NAME)
    out["score"].append(float(score.score))
    out["label"].append(score.label)
    out["explanation"].append(score.explanation)
    out["source"].append(SOURCE)
    out["created_at"].append(created_at)
    out[PARTITION_COLUMN].append(start.date())


def _append(data_dir: Path, out: dict[str, list[object]]) -> None:
    if not out["trace_id"]:
        return
    write_deltalake(
        str(table_path(data_dir, EVALUATIONS_TABLE)), pa.table(out, schema=EVALUATIONS_SCHEMA),
        mode="append", partition_by=[PARTITION_COLUMN],
    )
