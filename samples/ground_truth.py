"""Read the ground truth written by ``samples.generate`` back into one dict.

Contract: ``load_ground_truth(out_dir)`` returns the content of ``ground_truth.json`` plus
- ``traces``: ``{trace_id: {"service", "failure_mode", "grounded", "fallback", "prompt_version",
  "incidents"}}`` from ``ground_truth_traces.jsonl.gz``;
- ``pii``: the list of ``{"trace_id", "span_id", "field", "start", "end", "entity_type", "text"}``
  from ``ground_truth_pii.jsonl.gz``.
The per-trace files are gzip'd JSON lines so that they stream at benchmark scale (millions of
traces) and keep the committed sample set small.
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import orjson

SUMMARY_FILE = "ground_truth.json"


def load_ground_truth(out_dir: Path) -> dict[str, Any]:
    """Return the summary, per-trace labels and personal-data positions of a sample set."""
    out_dir = Path(out_dir)
    truth: dict[str, Any] = orjson.loads((out_dir / SUMMARY_FILE).read_bytes())
    traces: dict[str, dict[str, Any]] = {}
    with gzip.open(out_dir / truth["files"]["trace_labels"]) as f:
        for line in f:
            label = orjson.loads(line)
            traces[label.pop("trace_id")] = label
    with gzip.open(out_dir / truth["files"]["pii"]) as f:
        pii = [orjson.loads(line) for line in f]
    return {**truth, "traces": traces, "pii": pii}
