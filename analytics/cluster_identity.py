"""Persisted failure-mode clusters and their stable ids.

Layout (owned by analytics, under the store's data directory)::

    <data_dir>/analytics/clusters/
      registry.json          every cluster ever seen: id, name, first/last seen, fingerprint
      latest.json            {"run_id": ...} of the last complete run (replaced atomically)
      runs/<run_id>/
        clusters.parquet     one row per cluster of that run (columns: see analytics.clusters)
        members.parquet      trace_id, cluster_id, day, service_name, model_name, prompt_version
      registry.lock          serialises writers

Contract:
- A run's files are written into a fresh ``runs/<run_id>`` folder, then ``latest.json`` is
  replaced with ``os.replace``: a reader sees the previous run or the new one, never half.
  The last ``KEEP_RUNS`` runs are kept.
- A cluster's fingerprint is ``terms`` (its mean word TF-IDF weights and signal tokens, top
  ``MAX_TERMS``) and ``signatures`` (digests of its members' masked descriptions with counts,
  top ``MAX_SIGNATURES``).  Both live in term space, not in a run's SVD space, so they compare
  across runs.
- ``match_clusters`` gives each new cluster the id of the previous cluster it resembles most
  (max of term cosine and signature Jaccard, at least ``MATCH_THRESHOLD``), one to one, best
  pairs first; the others get fresh ids ``fm-0001``, ``fm-0002``...  When a mode splits, the
  part most like it keeps the id; when two merge, the merged cluster keeps the better match.
"""

from __future__ import annotations

import fcntl
import math
import os
import shutil
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

KEEP_RUNS = 10
MAX_TERMS = 40
MAX_SIGNATURES = 400
MATCH_THRESHOLD = 0.5
REGISTRY_VERSION = 1


def clusters_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "analytics" / "clusters"


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """What identifies a cluster across runs."""

    terms: dict[str, float]
    signatures: dict[str, int]


def cosine(a: Mapping[str, float], b: Mapping[str, float]) -> float:
    dot = sum(w * b.get(t, 0.0) for t, w in a.items())
    na = math.sqrt(sum(w * w for w in a.values()))
    nb = math.sqrt(sum(w * w for w in b.values()))
    return dot / (na * nb) if na and nb else 0.0


def jaccard(a: Mapping[str, int], b: Mapping[str, int]) -> float:
    if not a or not b:
        return 0.0
    inter = len(a.keys() & b.keys())
    return inter / len(a.keys() | b.keys())


def similarity(a: Fingerprint, b: Fingerprint) -> float:
    return max(cosine(a.terms, b.terms), jaccard(a.signatures, b.signatures))


def match_clusters(new: Mapping[int, Fingerprint], known: Mapping[str, Fingerprint],
                   threshold: float = MATCH_THRESHOLD) -> dict[int, str]:
    """Map new cluster labels to known ids (one to one, best pairs first)."""
    pairs = sorted(((similarity(fp, old), label, cid) for label, fp in new.items()
                    for cid, old in known.items()), key=lambda p: (-p[0], p[1], p[2]))
    matched: dict[int, str] = {}
    used: set[str] = set()
    for score, label, cid in pairs:
        if score < threshold:
            break
        if label in matched or cid in used:
            continue
        matched[label] = cid
        used.add(cid)
    return matched


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


@contextmanager
def locked_registry(data_dir: Path) -> Iterator[dict[str, Any]]:
    """The registry, locked against other writers; saved atomically on normal exit."""
    root = clusters_dir(data_dir)
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "registry.lock", "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        registry = read_registry(data_dir)
        yield registry
        _write_atomic(root / "registry.json", orjson.dumps(registry, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY, default=float))


def read_registry(data_dir: Path) -> dict[str, Any]:
    path = clusters_dir(data_dir) / "registry.json"
    if not path.exists():
        return {"version": REGISTRY_VERSION, "next_id": 1, "runs": [], "clusters": {}}
    registry: dict[str, Any] = orjson.loads(path.read_bytes())
    return registry


def known_fingerprints(registry: Mapping[str, Any]) -> dict[str, Fingerprint]:
    return {cid: Fingerprint(dict(c["terms"]), dict(c["signatures"]))
            for cid, c in registry["clusters"].items()}


def new_cluster_id(registry: dict[str, Any]) -> str:
    number = int(registry["next_id"])
    registry["next_id"] = number + 1
    return f"fm-{number:04d}"


def merge_signatures(old: Mapping[str, int], new: Mapping[str, int]) -> dict[str, int]:
    merged = dict(old)
    for sig, count in new.items():
        merged[sig] = merged.get(sig, 0) + count
    top = sorted(merged.items(), key=lambda kv: (-kv[1], kv[0]))[:MAX_SIGNATURES]
    return dict(top)


def run_dir(data_dir: Path, run_id: str) -> Path:
    return clusters_dir(data_dir) / "runs" / run_id


def publish_run(data_dir: Path, run_id: str, registry: dict[str, Any]) -> None:
    """Point ``latest.json`` at a fully written run and prune old runs."""
    root = clusters_dir(data_dir)
    _write_atomic(root / "latest.json", orjson.dumps({"run_id": run_id}))
    runs = [r for r in registry.get("runs", []) if r != run_id] + [run_id]
    for old in runs[:-KEEP_RUNS]:
        shutil.rmtree(run_dir(data_dir, old), ignore_errors=True)
    registry["runs"] = runs[-KEEP_RUNS:]


def latest_run_id(data_dir: Path) -> str | None:
    path = clusters_dir(data_dir) / "latest.json"
    if not path.exists():
        return None
    run_id: str = orjson.loads(path.read_bytes())["run_id"]
    return run_id
