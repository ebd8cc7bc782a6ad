"""Generate the sample traces and their ground truth: the entry point ``generate_samples``.

Contract:
- ``generate_samples(out_dir, days=14, seed=7, scale=1.0)`` writes into ``out_dir``:
  * ``traces-YYYY-MM-DD.jsonl.gz``, one per calendar day from 2026-11-09: OTLP JSON lines as
    written by the OpenTelemetry file exporter; each line is one ExportTraceServiceRequest with
    up to ``TRACES_PER_LINE`` traces of one service (see ``samples.otlp_json``);
  * ``ground_truth.json``: generator version, seed, scale, time range, incidents, clean days,
    traffic bursts, models, counts, and the names of the two files below;
  * ``ground_truth_traces.jsonl.gz``: one line per trace, ``{"trace_id", "service",
    "failure_mode", "grounded", "fallback", "prompt_version", "incidents"}``;
  * ``ground_truth_pii.jsonl.gz``: one line per located entity, ``{"trace_id", "span_id",
    "field", "start", "end", "entity_type", "text"}``.
  * ``README.md``: a description rendered from the summary (never out of date).
  ``samples.ground_truth.load_ground_truth`` reads the three ground-truth files into one dict.
  It returns the content of ``ground_truth.json``.
- Deterministic: the same arguments give byte-identical files (gzip headers carry no time or
  name). Each day is generated from its own seeded streams, so days run in parallel processes
  without changing the output.
- The calendar is fixed (2026-11-09T00:00Z onwards, ISO weeks 2026-W46/W47); ``days`` shortens
  or extends it from the same start. ``scale`` multiplies traffic: scale 1 is ~50k traces /
  ~205k spans, scale 5 about 1M spans, scale 50 about 10M (benchmark sets: write them elsewhere
  than ``sample_traces/``; they use fast gzip level 1 instead of 9).
"""

from __future__ import annotations

import os
import random
import zlib
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson

from samples import incidents as inc
from samples.doc_extraction import SCOPE as EXTRACTION_SCOPE
from samples.doc_extraction import build_extraction_trace
from samples.models import ALL_MODELS
from samples.ops_agent import SCOPE as AGENT_SCOPE
from samples.ops_agent import build_agent_trace
from samples.otlp_json import encode_export_request
from samples.pii import PiiPool
from samples.readme import render_readme
from samples.support_copilot import SCOPE as SUPPORT_SCOPE
from samples.support_copilot import build_support_trace
from samples.trace_builder import TraceBuilder
from samples.traffic import AGENT, EXTRACTION, SUPPORT, Arrival, Burst, plan_arrivals, plan_bursts

GENERATOR_VERSION = "1.0.0"
TRACES_PER_LINE = 50
TRACES_FILE = "ground_truth_traces.jsonl.gz"
PII_FILE = "ground_truth_pii.jsonl.gz"
SUMMARY_FILE = "ground_truth.json"
README_FILE = "README.md"

TraceFactory = Callable[[random.Random, Arrival, PiiPool], TraceBuilder]
_SERVICES: tuple[tuple[str, tuple[str, str], TraceFactory, dict[str, str]], ...] = (
    (
        SUPPORT,
        SUPPORT_SCOPE,
        build_support_trace,
        {"service.version": "2.14.0", "deployment.environment.name": "production"},
    ),
    (
        EXTRACTION,
        EXTRACTION_SCOPE,
        build_extraction_trace,
        {"service.version": "0.9.3", "deployment.environment.name": "production"},
    ),
    (
        AGENT,
        AGENT_SCOPE,
        build_agent_trace,
        {"service.version": "1.4.1", "deployment.environment.name": "production"},
    ),
)
_PII_POOLS: dict[int, PiiPool] = {}
_COUNT_KEYS = ("service", "failure_mode", "grounded", "fallback", "incident", "pii_entity")


class _GzipWriter:
    """Streams one gzip member; zlib's gzip header carries no time or name, so bytes are stable."""

    def __init__(self, level: int) -> None:
        self._compressor = zlib.compressobj(level, zlib.DEFLATED, 31)
        self.chunks: list[bytes] = []

    def write_line(self, line: bytes) -> None:
        chunk = self._compressor.compress(line + b"\n")
        if chunk:
            self.chunks.append(chunk)

    def finish(self) -> bytes:
        self.chunks.append(self._compressor.flush())
        data = b"".join(self.chunks)
        self.chunks = []
        return data


def _generate_day(
    seed: int, day: int, scale: float, bursts: list[Burst], out_dir: str
) -> dict[str, Any]:
    """Write one day's trace file; return its labels and personal data (gzip bytes) and counts."""
    pool = _PII_POOLS.get(seed)
    if pool is None:
        pool = _PII_POOLS[seed] = PiiPool(seed)
    date = (inc.CALENDAR_START + timedelta(days=day)).strftime("%Y-%m-%d")
    path = Path(out_dir) / f"traces-{date}.jsonl.gz"
    # The committed set (scale <= 1) must stay small; benchmark sets favour speed.
    level = 9 if scale <= 1 else 1
    traces_out, labels_out, pii_out = _GzipWriter(level), _GzipWriter(level), _GzipWriter(level)
    counts: dict[str, Counter[str]] = {k: Counter() for k in _COUNT_KEYS}
    num_spans = num_traces = num_pii = 0
    with open(path, "wb") as f:
        for service, (scope_name, scope_version), factory, resource in _SERVICES:
            rng = random.Random(f"traces-{seed}-{service}-{day}")
            batch: list[dict[str, Any]] = []
            arrivals = plan_arrivals(seed, service, day, scale, bursts)
            for n, arrival in enumerate(arrivals, start=1):
                tb = factory(rng, arrival, pool)
                spans, located = tb.finish()
                batch.extend(spans)
                num_spans += len(spans)
                num_traces += 1
                label = tb.label
                labels_out.write_line(orjson.dumps({"trace_id": tb.trace_id, **label.to_json()}))
                for entity in located:
                    pii_out.write_line(orjson.dumps(entity))
                    counts["pii_entity"][entity["entity_type"]] += 1
                num_pii += len(located)
                counts["service"][service] += 1
                counts["failure_mode"][label.failure_mode or "none"] += 1
                counts["grounded"][str(label.grounded).lower()] += 1
                counts["fallback"][str(label.fallback).lower()] += 1
                counts["incident"].update(label.incidents)
                if n % TRACES_PER_LINE == 0 or n == len(arrivals):
                    traces_out.write_line(
                        encode_export_request(service, scope_name, scope_version, batch, resource)
                    )
                    batch = []
                    for chunk in traces_out.chunks:
                        f.write(chunk)
                    traces_out.chunks = []
        f.write(traces_out.finish())
    return {
        "file": path.name,
        "num_spans": num_spans,
        "num_traces": num_traces,
        "num_pii": num_pii,
        "counts": counts,
        "labels_gz": labels_out.finish(),
        "pii_gz": pii_out.finish(),
    }


def generate_samples(
    out_dir: Path, days: int = 14, seed: int = 7, scale: float = 1.0, workers: int | None = None
) -> dict[str, Any]:
    """Write sample traces and ground truth to ``out_dir``; return the ground-truth summary."""
    if days < 1:
        raise ValueError("days must be at least 1")
    if scale <= 0:
        raise ValueError("scale must be positive")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("traces-*.jsonl.gz"):
        old.unlink()
    bursts = plan_bursts(seed, days)
    num_workers = max(1, min(days, workers if workers is not None else (os.cpu_count() or 1)))
    if num_workers == 1:
        results = [_generate_day(seed, d, scale, bursts, str(out_dir)) for d in range(days)]
    else:
        with ProcessPoolExecutor(max_workers=num_workers) as executor:
            results = list(
                executor.map(
                    _generate_day,
                    [seed] * days,
                    range(days),
                    [scale] * days,
                    [bursts] * days,
                    [str(out_dir)] * days,
                )
            )
    counts: dict[str, Counter[str]] = {k: Counter() for k in _COUNT_KEYS}
    # Concatenated gzip members form one valid gzip file.
    with open(out_dir / TRACES_FILE, "wb") as labels_out, open(out_dir / PII_FILE, "wb") as pii_out:
        for result in results:
            labels_out.write(result["labels_gz"])
            pii_out.write(result["pii_gz"])
            for key in _COUNT_KEYS:
                counts[key].update(result["counts"][key])
    range_end = inc.CALENDAR_START + timedelta(days=days)
    summary: dict[str, Any] = {
        "generator": "tracewatch.samples",
        "generator_version": GENERATOR_VERSION,
        "seed": seed,
        "scale": scale,
        "time_range": {
            "start": inc.CALENDAR_START.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "end": range_end.strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
        "files": {
            "traces": [r["file"] for r in results],
            "trace_labels": TRACES_FILE,
            "pii": PII_FILE,
        },
        "num_traces": sum(r["num_traces"] for r in results),
        "num_spans": sum(r["num_spans"] for r in results),
        "num_pii_entities": sum(r["num_pii"] for r in results),
        "services": {
            SUPPORT: "OpenInference (RAG copilot)",
            EXTRACTION: "OpenTelemetry GenAI semantic conventions (JSON-schema extraction)",
            AGENT: "OpenLLMetry / Traceloop (tool-calling agent)",
        },
        "models": [
            {"provider": m.provider_id, "model": m.name, "priced_by_genai_prices": m.priced}
            for m in ALL_MODELS
        ],
        "incidents": [i.to_json(range_end) for i in inc.incidents_in_range(range_end)],
        "clean_days": inc.find_clean_days(days),
        "traffic_bursts": [
            {
                "service_name": b.service,
                "start": (inc.at(b.day, 0) + timedelta(minutes=b.start_minute)).strftime(
                    "%Y-%m-%dT%H:%M:%SZ"
                ),
                "minutes": b.num_minutes,
                "rate_factor": b.factor,
            }
            for b in bursts
        ],
        "label_notes": {
            "grounded": "true/false for answers over retrieved context; null when not applicable "
            "(no retrieved context, no answer, or a refusal)",
            "incidents": "ids of incidents whose affected slice and window contain the trace",
            "pii": "start/end are str indices (code points, end exclusive) into the named span "
            "attribute, event attribute (events[i].key) or status.message; only inserted "
            "entities are listed",
        },
        "counts": {k: dict(sorted(v.items())) for k, v in counts.items()},
    }
    (out_dir / SUMMARY_FILE).write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2) + b"\n")
    data_files = [*summary["files"]["traces"], TRACES_FILE, PII_FILE, SUMMARY_FILE]
    sizes = {name: (out_dir / name).stat().st_size for name in data_files}
    (out_dir / README_FILE).write_text(render_readme(summary, sizes), encoding="utf-8")
    return summary
