"""A small store with the edge cases of the metric definitions, and an independent oracle.

``build_metrics_store`` writes spans with the real ``StoreWriter`` (no mocks): a few hundred
random traces plus hand-made edge cases (no LLM call, missing token counts, an unknown model,
a child that starts before its root, a trace whose root never arrived, explicit and inferred
fallbacks, groundedness from several evaluation sources).

``expected_kpis`` recomputes every KPI in plain Python from rows read back from the store's
base columns (``spans`` without its derived columns, ``evaluations``), with cost priced by
``genai_prices.calc_price`` directly: it shares no SQL with analytics.metrics.
"""

from __future__ import annotations

import json
import math
import random
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from collector.records import RetrievedDocument, Span, SpanBatch, SpanEvaluation, SpanKind
from collector.writer import StoreWriter

T0 = datetime(2025, 3, 3, 0, 0, 0)  # a Monday, naive UTC
PRICED_MODEL = ("gpt-4o-mini", "openai")
OTHER_PRICED_MODEL = ("gpt-4o", "openai")
UNKNOWN_MODEL = ("acme-private-7b", "acme")


def _ns(moment: datetime) -> int:
    return int((moment - datetime(1970, 1, 1)).total_seconds() * 1_000_000) * 1000


class TraceMaker:
    def __init__(self) -> None:
        self.spans: list[Span] = []
        self._next = 0

    def sid(self) -> str:
        self._next += 1
        return f"{self._next:016x}"

    def span(self, trace_id: str, parent: str | None, kind: SpanKind, start: datetime,
             duration_ms: float, status: str = "OK", service: str = "copilot",
             **extra: Any) -> str:
        span_id = extra.pop("span_id", None) or self.sid()
        end = start + timedelta(milliseconds=duration_ms)
        self.spans.append(Span(
            trace_id=trace_id, span_id=span_id, parent_span_id=parent, name=f"{kind.value.lower()}",
            span_kind=kind, service_name=service, start_time_unix_nano=_ns(start),
            end_time_unix_nano=_ns(end), status_code=status, **extra,
        ))
        return span_id


def _llm(maker: TraceMaker, trace_id: str, parent: str, start: datetime, model: tuple[str, str],
         *, status: str = "OK", tokens: tuple[int | None, int | None, int | None] = (800, 120, 200),
         prompt_version: str | None = None, fallback: bool = False,
         attributes: dict[str, Any] | None = None, service: str = "copilot") -> str:
    prompt, completion, cached = tokens
    total = prompt + completion if prompt is not None and completion is not None else None
    attrs = dict(attributes or {})
    if fallback:
        attrs["llm.fallback"] = True
    return maker.span(
        trace_id, parent, SpanKind.LLM, start, 300.0, status=status, service=service,
        model_name=model[0], provider=model[1], prompt_version=prompt_version,
        prompt_tokens=prompt, completion_tokens=completion, cached_prompt_tokens=cached,
        total_tokens=total, fallback_marked=fallback, attributes=attrs,
        output_text="The answer." if status == "OK" else None,
    )


def build_metrics_store(data_dir: Path, num_random: int = 240, seed: int = 11) -> list[Span]:
    rng = random.Random(seed)
    maker = TraceMaker()
    for i in range(num_random):
        trace_id = f"{i + 1:032x}"
        start = T0 + timedelta(minutes=rng.randrange(0, 3 * 24 * 60), seconds=rng.random() * 59)
        service = rng.choice(["copilot", "copilot", "extract"])
        version = rng.choice(["v1", "v2"])
        tenant = rng.choice(["t1", "t2"])
        duration = rng.lognormvariate(7.0, 0.6)
        status = "ERROR" if rng.random() < 0.1 else rng.choice(["OK", "UNSET"])
        evaluations: tuple[SpanEvaluation, ...] = ()
        if rng.random() < 0.6:
            evaluations = (SpanEvaluation("groundedness", round(rng.random(), 3), None, None),)
        root = maker.span(trace_id, None, SpanKind.CHAIN, start, duration, status=status,
                          service=service, attributes={"tenant": tenant},
                          evaluations=evaluations)
        maker.span(trace_id, root, SpanKind.RETRIEVER, start + timedelta(milliseconds=5), 40.0,
                   service=service, retrievals=(RetrievedDocument(0, "d1", 0.9, "Doc."),))
        cursor = start + timedelta(milliseconds=50)
        roll = rng.random()
        if roll < 0.1:  # failed call, then another model: an inferred fallback
            _llm(maker, trace_id, root, cursor, OTHER_PRICED_MODEL, status="ERROR",
                 prompt_version=version, service=service)
            _llm(maker, trace_id, root, cursor + timedelta(milliseconds=400), PRICED_MODEL,
                 prompt_version=version, service=service)
        elif roll < 0.15:  # explicitly marked fallback
            _llm(maker, trace_id, root, cursor, PRICED_MODEL, fallback=True,
                 prompt_version=version, service=service)
        elif roll < 0.2:  # unknown model: unpriced
            _llm(maker, trace_id, root, cursor, UNKNOWN_MODEL, prompt_version=version,
                 service=service, attributes={"tenant": "llm-" + tenant})
        elif roll < 0.25:  # no LLM call at all
            maker.span(trace_id, root, SpanKind.TOOL, cursor, 20.0, service=service)
        else:
            tokens: tuple[int | None, int | None, int | None] = (
                rng.randrange(100, 3000), rng.randrange(10, 500), rng.choice([None, 0, 64]))
            if rng.random() < 0.1:
                tokens = (None, None, None)  # missing token counts
            _llm(maker, trace_id, root, cursor, rng.choice([PRICED_MODEL, OTHER_PRICED_MODEL]),
                 tokens=tokens, prompt_version=version, service=service)

    # Clock skew: the child starts 2 s before its root and ends after it.
    skew = "a" * 32
    root = maker.span(skew, None, SpanKind.CHAIN, T0 + timedelta(hours=5), 1000.0,
                      attributes={"tenant": "t1"})
    _llm(maker, skew, root, T0 + timedelta(hours=5) - timedelta(seconds=2), PRICED_MODEL,
         prompt_version="v1")
    # Root never arrived: two children whose parent is missing.
    orphan = "b" * 32
    _llm(maker, orphan, "ffffffffffffffff", T0 + timedelta(hours=6), PRICED_MODEL,
         prompt_version="v2", attributes={"tenant": "t2"})
    _llm(maker, orphan, "ffffffffffffffff", T0 + timedelta(hours=6, seconds=1), UNKNOWN_MODEL,
         prompt_version="v2")

    writer = StoreWriter(data_dir)
    try:
        writer.write(SpanBatch(tuple(maker.spans)), [])
    finally:
        writer.close()
    return maker.spans


# --------------------------------------------------------------------------- the oracle

_SOURCE_RANK = {"human": 0, "llm_judge": 1, "span": 2, "builtin": 3}


def _price(model: str | None, provider: str | None, prompt: int | None, completion: int | None,
           cached: int | None) -> float | None:
    from genai_prices import Usage, calc_price

    if model is None:
        return None
    try:
        price = calc_price(
            Usage(input_tokens=prompt or 0, cache_read_tokens=cached or 0,
                  output_tokens=completion or 0),
            model_ref=model, provider_id=provider,
        )
    except LookupError:
        return None
    return float(price.total_price)


def _quantile(values: list[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (what quantile_cont computes)."""
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def read_trace_oracle(con: Any) -> dict[str, dict[str, Any]]:
    """Per-trace values computed in Python from the stored base columns."""
    cursor = con.execute(
        "SELECT trace_id, span_id, parent_span_id, span_kind, service_name, start_time, "
        "end_time, duration_ms, status_code, model_name, provider, prompt_version, "
        "prompt_tokens, completion_tokens, cached_prompt_tokens, total_tokens, attributes "
        "FROM spans"
    )
    names = [d[0] for d in cursor.description]
    by_trace: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in cursor.fetchall():
        record = dict(zip(names, row))
        record["attributes"] = json.loads(record["attributes"]) if record["attributes"] else {}
        by_trace[record["trace_id"]].append(record)
    evals: dict[str, list[tuple[int, datetime, float]]] = defaultdict(list)
    for trace_id, score, source, created in con.execute(
        "SELECT trace_id, score, source, created_at FROM evaluations "
        "WHERE name = 'groundedness' AND score IS NOT NULL"
    ).fetchall():
        evals[trace_id].append((_SOURCE_RANK.get(source, 3), created, score))

    traces: dict[str, dict[str, Any]] = {}
    for trace_id, spans in by_trace.items():
        roots = [s for s in spans if s["parent_span_id"] is None]
        root = roots[0] if roots else None
        llm = sorted((s for s in spans if s["span_kind"] == "LLM"), key=lambda s: s["start_time"])
        failed = [s for s in llm if s["status_code"] == "ERROR"]
        fallback = False
        unpriced = 0
        cost: float | None = None
        for s in llm:
            marked = bool(s["attributes"].get("llm.fallback"))
            inferred = any(
                f is not s and s["start_time"] >= f["start_time"]
                and (f["model_name"], f["provider"]) != (s["model_name"], s["provider"])
                for f in failed
            )
            fallback = fallback or marked or inferred
            price = _price(s["model_name"], s["provider"], s["prompt_tokens"],
                           s["completion_tokens"], s["cached_prompt_tokens"])
            if price is None:
                unpriced += 1
            else:
                cost = (cost or 0.0) + price
        ok_llm = [s for s in llm if s["status_code"] != "ERROR" and s["model_name"] is not None]
        last_ok = max(ok_llm, key=lambda s: s["end_time"]) if ok_llm else None

        def total(key: str) -> int | None:
            known = [s[key] for s in llm if s[key] is not None]
            return sum(known) if known else None

        if root is not None:
            start, duration = root["start_time"], root["duration_ms"]
        else:
            start = min(s["start_time"] for s in spans)
            end = max(s["end_time"] for s in spans)
            duration = (end - start).total_seconds() * 1000.0
        scores = sorted(evals.get(trace_id, []), key=lambda e: (e[0], -e[1].timestamp()))
        versions = sorted((s for s in spans if s["prompt_version"]), key=lambda s: s["start_time"])

        def attr(key: str) -> Any:
            value = root["attributes"].get(key) if root else None
            carrying = [s for s in llm if s["attributes"].get(key) is not None]
            if value is None and carrying:
                value = max(carrying, key=lambda s: s["end_time"])["attributes"][key]
            return value

        traces[trace_id] = {
            "start_time": start,
            "duration_ms": duration,
            "is_error": root is not None and root["status_code"] == "ERROR",
            "has_llm": bool(llm),
            "has_fallback": fallback,
            "groundedness": min(max(scores[0][2], 0.0), 1.0) if scores else None,
            "cost_usd": cost,
            "num_unpriced_llm_calls": unpriced,
            "prompt_tokens": total("prompt_tokens"),
            "completion_tokens": total("completion_tokens"),
            "cached_prompt_tokens": total("cached_prompt_tokens"),
            "total_tokens": total("total_tokens"),
            "service_name": (root or min(spans, key=lambda s: s["start_time"]))["service_name"],
            "model_name": last_ok["model_name"] if last_ok else None,
            "provider": last_ok["provider"] if last_ok else None,
            "prompt_version": versions[-1]["prompt_version"] if versions else None,
            "attr:tenant": attr("tenant"),
        }
    return traces


def expected_kpis(traces: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Every KPI of metrics.KPI_COLUMNS over a list of oracle traces."""
    n = len(traces)

    def ratio(num: float | None, den: int) -> float | None:
        return None if den == 0 or num is None else num / den

    errors = sum(t["is_error"] for t in traces)
    llm = [t for t in traces if t["has_llm"]]
    scored = [t["groundedness"] for t in traces if t["groundedness"] is not None]
    costs = [t["cost_usd"] for t in traces if t["cost_usd"] is not None]
    cost_total = sum(costs) if costs else None
    out: dict[str, Any] = {
        "num_requests": n,
        "num_errors": errors,
        "error_rate": ratio(errors, n),
        "num_llm_requests": len(llm),
        "num_fallback_requests": sum(t["has_fallback"] for t in llm),
        "fallback_rate": ratio(sum(t["has_fallback"] for t in llm), len(llm)),
        "num_scored": len(scored),
        "groundedness_mean": ratio(sum(scored), len(scored)) if scored else None,
        "grounded_rate": ratio(sum(s >= 0.5 for s in scored), len(scored)),
        "cost_usd_total": cost_total,
        "cost_usd_per_request": ratio(cost_total, n),
        "cost_usd_per_successful_request": ratio(cost_total, n - errors),
        "num_unpriced_llm_calls": sum(t["num_unpriced_llm_calls"] for t in traces),
        "latency_p50_ms": _quantile([t["duration_ms"] for t in traces], 0.5),
        "latency_p95_ms": _quantile([t["duration_ms"] for t in traces], 0.95),
        "latency_p99_ms": _quantile([t["duration_ms"] for t in traces], 0.99),
    }
    for key in ("prompt_tokens", "completion_tokens", "cached_prompt_tokens", "total_tokens"):
        known = [t[key] for t in traces if t[key] is not None]
        out[key] = sum(known) if known else None
        out[f"{key}_per_request"] = ratio(out[key], n)
    return out


def group_traces(traces: dict[str, dict[str, Any]], key: Callable[[dict[str, Any]], Any]
                 ) -> dict[Any, list[dict[str, Any]]]:
    groups: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for trace in traces.values():
        groups[key(trace)].append(trace)
    return groups
