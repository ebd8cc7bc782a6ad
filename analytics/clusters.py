"""Failure modes: group failing and low-quality traces into named clusters with stable ids.

Pipeline: ``failure_selection.select_failing_traces`` (which traces, from redacted fields)
-> ``failure_features.describe_trace`` / ``vectorize`` (masked TF-IDF words + char n-grams +
signals -> TruncatedSVD) -> ``assign_clusters`` (agglomerative, average linkage, cosine
distance below ``distance_threshold``: the number of clusters comes from the data) -> names,
representatives, trends, slices -> ``cluster_identity`` (ids kept across runs) -> persisted.

Contract:
- ``compute_clusters(data_dir, since, until, filters=None)`` clusters the traces that start in
  ``[since, until)`` (naive datetimes are UTC), persists the run (unless ``persist=False``) and
  returns a ``ClusterResult``.  No selected trace gives an empty result, not an error.
- ``load_clusters(data_dir)`` returns the last persisted run's clusters without reclustering;
  an empty frame (same columns) when nothing was computed yet.  ``load_cluster_members``
  returns its trace assignments.
- ``list_new_and_growing(data_dir)``: clusters of the last run that are new (not matched to a
  cluster of an earlier run; never on the first run) or growing (share of traffic on the last
  day of the window at least ``growth_factor`` times the share on the earlier days), with at
  least ``min_traces`` traces.  For the alerts.
- Clustering works on distinct descriptions (identical masked texts are one point weighted by
  their count), one selection-reason partition at a time.  A partition of at most
  ``max_exact_points`` distinct points is clustered exactly; above, MiniBatchKMeans first
  compresses it into ``compressed_points`` micro-clusters (a quarter of its points, at least
  ``min_compressed_points``, at most ``max_compressed_points``) and the agglomerative step runs
  on those.  Numeric libraries run single-threaded here: the matrices are small and, on a
  shared machine, BLAS threads waiting on each other cost more than they save.

Columns of the clusters frame: cluster_id, name, num_traces, share_of_traffic (of all traces in
the window), share_of_failures, representative_trace_id, top_terms (list[str]), reasons
(list[str], most common first), trend (list[struct{day: date, num_traces: int}]), slices
(list[struct{dimension, value, cluster_share, traffic_share, lift}]), growth_ratio (float or
null), is_new (bool), first_seen_at, last_seen_at (datetime), run_id, since, until, computed_at.
Members frame: trace_id, cluster_id, day, service_name, model_name, prompt_version.
"""

from __future__ import annotations

import hashlib
import uuid
from contextlib import nullcontext
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl
from sklearn.cluster import AgglomerativeClustering, MiniBatchKMeans
from threadpoolctl import threadpool_limits

from analytics.cluster_identity import (
    MAX_SIGNATURES, MAX_TERMS, Fingerprint, known_fingerprints, latest_run_id, locked_registry,
    match_clusters, merge_signatures, new_cluster_id, publish_run, read_registry, run_dir,
)
from analytics.errors import AnalyticsError
from analytics.failure_features import (
    MASK_TOKENS, FeatureSettings, TraceDescription, Vectors, describe_trace, vectorize,
)
from analytics.failure_selection import SelectionSettings, count_traffic, select_failing_traces
from analytics.views import open_store

SLICE_DIMENSIONS = ("service_name", "model_name", "prompt_version")

TREND_DTYPE = pl.List(pl.Struct({"day": pl.Date, "num_traces": pl.Int64}))
SLICE_DTYPE = pl.List(pl.Struct({"dimension": pl.String, "value": pl.String, "cluster_share": pl.Float64,
                                 "traffic_share": pl.Float64, "lift": pl.Float64}))
CLUSTERS_SCHEMA: dict[str, Any] = {
    "cluster_id": pl.String, "name": pl.String, "num_traces": pl.Int64, "share_of_traffic": pl.Float64,
    "share_of_failures": pl.Float64, "representative_trace_id": pl.String,
    "top_terms": pl.List(pl.String), "reasons": pl.List(pl.String), "trend": TREND_DTYPE,
    "slices": SLICE_DTYPE, "growth_ratio": pl.Float64, "is_new": pl.Boolean,
    "first_seen_at": pl.Datetime("us"), "last_seen_at": pl.Datetime("us"), "run_id": pl.String,
    "since": pl.Datetime("us"), "until": pl.Datetime("us"), "computed_at": pl.Datetime("us"),
}
MEMBERS_SCHEMA: dict[str, Any] = {
    "trace_id": pl.String, "cluster_id": pl.String, "day": pl.Date, "service_name": pl.String,
    "model_name": pl.String, "prompt_version": pl.String,
}


@dataclass(frozen=True, slots=True)
class ClusterSettings:
    """How traces are grouped (set by developers; the defaults were tuned on the sample set)."""

    distance_threshold: float = 0.62
    max_exact_points: int = 4000
    min_compressed_points: int = 500
    max_compressed_points: int = 1500
    features: FeatureSettings = field(default_factory=FeatureSettings)
    selection: SelectionSettings = field(default_factory=SelectionSettings)
    random_state: int = 0


@dataclass(frozen=True, slots=True)
class ClusterResult:
    """One clustering run: clusters (and members) with the columns of the module docstring."""

    run_id: str
    since: datetime
    until: datetime
    num_traces: int
    num_selected: int
    clusters: pl.DataFrame
    members: pl.DataFrame


def _utc_naive(value: datetime) -> datetime:
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc).replace(tzinfo=None)
    return value


def deduplicate(descriptions: Sequence[TraceDescription]) -> tuple[list[TraceDescription], npt.NDArray[np.int64]]:
    """Distinct descriptions, and for each trace the index of its distinct description."""
    index: dict[str, int] = {}
    unique: list[TraceDescription] = []
    inverse = np.empty(len(descriptions), dtype=np.int64)
    for i, desc in enumerate(descriptions):
        key = desc.key()
        j = index.get(key)
        if j is None:
            j = index[key] = len(unique)
            unique.append(desc)
        inverse[i] = j
    return unique, inverse


def compressed_points(n: int, settings: ClusterSettings) -> int:
    """How many micro-clusters a partition of ``n`` distinct points is compressed into."""
    return int(min(settings.max_compressed_points, max(settings.min_compressed_points, n // 4)))


def assign_clusters(vectors: npt.NDArray[np.float64], weights: npt.NDArray[np.int64],
                    settings: ClusterSettings) -> npt.NDArray[np.int64]:
    """Cluster labels (0..k-1, largest first) of L2-normalised points with multiplicities."""
    n = vectors.shape[0]
    if n == 0:
        return np.empty(0, dtype=np.int64)
    if n == 1:
        return np.zeros(1, dtype=np.int64)
    points, to_point = vectors, np.arange(n)
    if n > settings.max_exact_points:
        k = compressed_points(n, settings)
        km = MiniBatchKMeans(n_clusters=k, random_state=settings.random_state,
                             batch_size=4096, n_init=1, max_iter=50)
        to_point = km.fit_predict(vectors, sample_weight=weights.astype(np.float64))
        present = np.unique(to_point)
        remap = np.full(k, -1)
        remap[present] = np.arange(len(present))
        to_point = remap[to_point]
        points = km.cluster_centers_[present]
    if points.shape[0] == 1:
        raw = np.zeros(1, dtype=np.int64)
    else:
        raw = AgglomerativeClustering(n_clusters=None, distance_threshold=settings.distance_threshold,
                                      metric="cosine", linkage="average").fit(points).labels_
    labels = raw[to_point]
    sizes = np.bincount(labels, weights=weights)
    order = np.argsort(-sizes, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return rank[labels].astype(np.int64)


def cluster_partitions(unique: Sequence[TraceDescription], vectors: npt.NDArray[np.float64],
                       weights: npt.NDArray[np.int64], settings: ClusterSettings) -> npt.NDArray[np.int64]:
    """Labels of distinct descriptions, clustering each selection-reason partition on its own.

    Traces selected for different reasons (a plain timeout vs a timeout followed by a fallback,
    an unsupported answer vs one citing a document it never retrieved) are different failure
    modes even when their texts look alike, and so are ungrounded answers over weak and over
    strong retrieval (``TraceDescription.partition``); within a partition the texts decide.
    """
    labels = np.empty(len(unique), dtype=np.int64)
    groups: dict[str, list[int]] = {}
    for i, desc in enumerate(unique):
        groups.setdefault(desc.partition(), []).append(i)
    offset = 0
    for key in sorted(groups):
        index = np.array(groups[key])
        part = assign_clusters(vectors[index], weights[index], settings)
        labels[index] = part + offset
        offset += int(part.max()) + 1
    sizes = np.bincount(labels, weights=weights)
    order = np.argsort(-sizes, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return rank[labels].astype(np.int64)


def cluster_descriptions(descriptions: Sequence[TraceDescription],
                         settings: ClusterSettings | None = None) -> npt.NDArray[np.int64]:
    """Cluster label of each description (the pure part, used by the benchmarks)."""
    settings = settings or ClusterSettings()
    unique, inverse = deduplicate(descriptions)
    if not unique:
        return np.empty(0, dtype=np.int64)
    with threadpool_limits(limits=1):
        vectors = vectorize(unique, settings.features)
        weights = np.bincount(inverse, minlength=len(unique))
        return cluster_partitions(unique, vectors.reduced, weights, settings)[inverse]


_RETRIEVAL_NAMES = {"retrieval_top_low": "weak retrieval", "retrieval_top_mid": "middling retrieval",
                    "retrieval_top_high": "strong retrieval", "retrieval_empty": "nothing retrieved"}


def _humanise(token: str) -> str:
    for prefix in ("concept_", "reason_", "failed_in_"):
        if token.startswith(prefix):
            token = token[len(prefix):]
    return token.replace("_", " ")


def _describe_cluster(members: npt.NDArray[np.int64], weights: npt.NDArray[np.int64],
                      vectors: Vectors, unique: Sequence[TraceDescription],
                      global_mean: npt.NDArray[np.float64]) -> tuple[str, list[str], Fingerprint, int]:
    """Name, distinctive terms, fingerprint and representative (distinct index) of one cluster."""
    w = weights[members].astype(np.float64)
    total = w.sum()
    terms: dict[str, float] = {}
    top: list[str] = []
    if vectors.words.shape[1]:
        mean = np.asarray(vectors.words[members].T @ w).ravel() / total
        lift = mean - global_mean
        for j in np.argsort(-lift)[:60]:
            term = vectors.word_terms[j]
            if lift[j] <= 0 or any(part in MASK_TOKENS for part in term.split()):
                continue
            if any(term in chosen or chosen in term for chosen in top):
                continue
            top.append(term)
            if len(top) == 4:
                break
        for j in np.argsort(-mean)[:MAX_TERMS]:
            if mean[j] > 0:
                terms[vectors.word_terms[j]] = float(mean[j])
    signal_counts: Counter[str] = Counter()
    for i, weight in zip(members, weights[members]):
        for token in unique[i].signals.split():
            signal_counts[token] += int(weight)
    for token, count in signal_counts.items():
        terms["signal:" + token] = float(count / total)
    signatures = Counter({hashlib.blake2b(unique[i].key().encode(), digest_size=8).hexdigest(): int(weights[i])
                          for i in members})
    concepts = [t for t, _ in signal_counts.most_common() if t.startswith("concept_") and t != "concept_none"]
    reasons = [t for t, _ in signal_counts.most_common()
               if t.startswith("reason_") and t not in ("reason_error",)]
    kinds = [t for t, _ in signal_counts.most_common() if t.startswith("failed_in_")]
    unrecognised = ["error"] if "concept_none" in signal_counts else []
    head = concepts[:1] or reasons[:1] or unrecognised or kinds[:1] or ["failure"]
    where = f" in {_humanise(kinds[0])}" if kinds else ""
    # Low-groundedness clusters are split by retrieval quality (TraceDescription.partition): say which.
    retrieval = [_RETRIEVAL_NAMES[t] for t, _ in signal_counts.most_common() if t in _RETRIEVAL_NAMES]
    if head[0] == "reason_low_groundedness" and retrieval:
        where = f", {retrieval[0]}"
    name = _humanise(head[0]) + where + (": " + ", ".join(top[:3]) if top else "")
    centroid = vectors.reduced[members].T @ w
    representative = int(members[int(np.argmax(vectors.reduced[members] @ centroid))])
    return name, top, Fingerprint(terms, dict(signatures.most_common(MAX_SIGNATURES))), representative


def _slices(frame: pl.DataFrame, traffic: pl.DataFrame) -> list[dict[str, Any]]:
    total_cluster = frame.height
    total_traffic = int(traffic["num_traces"].sum())
    out: list[dict[str, Any]] = []
    for dim in SLICE_DIMENSIONS:
        counts = frame.group_by(dim).len().drop_nulls(dim)
        traffic_counts = traffic.group_by(dim).agg(pl.col("num_traces").sum()).drop_nulls(dim)
        joined = counts.join(traffic_counts, on=dim, how="left").sort("len", descending=True)
        for value, n, t in joined.head(2).iter_rows():
            cluster_share = n / total_cluster
            traffic_share = (t or n) / max(total_traffic, 1)
            lift = cluster_share / traffic_share if traffic_share else None
            if cluster_share >= 0.5 or (lift is not None and lift >= 1.5 and n >= 3):
                out.append({"dimension": dim, "value": str(value), "cluster_share": round(cluster_share, 4),
                            "traffic_share": round(traffic_share, 4),
                            "lift": round(lift, 3) if lift is not None else None})
    return out


def _growth(frame: pl.DataFrame, traffic_by_day: dict[Any, int]) -> float | None:
    days = sorted(traffic_by_day)
    if len(days) < 2:
        return None
    last = days[-1]
    by_day = Counter(frame["day"].to_list())
    recent = by_day.get(last, 0) / max(traffic_by_day[last], 1)
    earlier_traffic = sum(traffic_by_day[d] for d in days[:-1])
    earlier = sum(by_day.get(d, 0) for d in days[:-1]) / max(earlier_traffic, 1)
    if earlier == 0:
        return float("inf") if recent > 0 else None
    return round(recent / earlier, 3)


def compute_clusters(
    data_dir: Path,
    since: datetime,
    until: datetime,
    filters: Mapping[str, str] | None = None,
    settings: ClusterSettings | None = None,
    persist: bool = True,
) -> ClusterResult:
    """Cluster the failing traces of ``[since, until)`` and persist the run (module docstring)."""
    settings = settings or ClusterSettings()
    since, until = _utc_naive(since), _utc_naive(until)
    if until <= since:
        raise AnalyticsError(f"empty window: until ({until}) is not after since ({since})")
    con = open_store(Path(data_dir))
    try:
        selected = select_failing_traces(con, since, until, filters, settings.selection)
        traffic = count_traffic(con, since, until, filters)
    finally:
        con.close()
    computed_at = datetime.now(timezone.utc).replace(tzinfo=None, microsecond=0)
    # Two runs can start within the same second: the suffix keeps their folders apart.
    run_id = computed_at.strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:8]
    num_traffic = int(traffic["num_traces"].sum()) if traffic.height else 0
    descriptions = [describe_trace(row) for row in selected.iter_rows(named=True)]
    unique, inverse = deduplicate(descriptions)
    rows: list[dict[str, Any]] = []
    labels = np.empty(0, dtype=np.int64)
    fingerprints: dict[int, Fingerprint] = {}
    info: dict[int, tuple[str, list[str], int, pl.DataFrame]] = {}
    if unique:
        with threadpool_limits(limits=1):
            vectors = vectorize(unique, settings.features)
            weights = np.bincount(inverse, minlength=len(unique))
            unique_labels = cluster_partitions(unique, vectors.reduced, weights, settings)
        labels = unique_labels[inverse]
        global_mean = (np.asarray(vectors.words.T @ weights.astype(np.float64)).ravel() / weights.sum()
                       if vectors.words.shape[1] else np.zeros(0))
        first_trace: dict[int, int] = {}
        for trace_index, distinct in enumerate(inverse):
            first_trace.setdefault(int(distinct), trace_index)
        for label in range(int(unique_labels.max()) + 1):
            members = np.flatnonzero(unique_labels == label)
            name, top, fingerprint, rep = _describe_cluster(members, weights, vectors, unique, global_mean)
            fingerprints[label] = fingerprint
            frame = selected.filter(pl.Series(labels == label))
            info[label] = (name, top, first_trace[rep], frame)
    traffic_by_day = ({d: int(n) for d, n in traffic.group_by("day").agg(pl.col("num_traces").sum()).iter_rows()}
                      if traffic.height else {})
    # A dry run reads the registry to name ids but writes nothing.
    registry_ctx = (locked_registry(Path(data_dir)) if persist
                    else nullcontext(read_registry(Path(data_dir))))
    with registry_ctx as registry:
        had_history = bool(registry["runs"])
        matched = match_clusters(fingerprints, known_fingerprints(registry))
        ids: dict[int, str] = {}
        for label in sorted(fingerprints):
            cid = matched.get(label) or new_cluster_id(registry)
            ids[label] = cid
            name, top, rep_index, frame = info[label]
            entry = registry["clusters"].get(cid)
            fingerprint = fingerprints[label]
            first_seen = entry["first_seen_at"] if entry else computed_at.isoformat()
            registry["clusters"][cid] = {
                "name": name, "first_seen_at": first_seen, "last_seen_at": computed_at.isoformat(),
                "terms": fingerprint.terms,
                "signatures": merge_signatures(entry["signatures"] if entry else {}, fingerprint.signatures),
            }
            reason_counts: Counter[str] = Counter(r for rs in frame["reasons"].to_list() for r in rs)
            trend = frame.group_by("day").len().sort("day")
            rows.append({
                "cluster_id": cid, "name": name, "num_traces": frame.height,
                "share_of_traffic": frame.height / num_traffic if num_traffic else None,
                "share_of_failures": frame.height / selected.height,
                "representative_trace_id": selected["trace_id"][rep_index], "top_terms": top,
                "reasons": [r for r, _ in reason_counts.most_common()],
                "trend": [{"day": d, "num_traces": int(n)} for d, n in trend.iter_rows()],
                "slices": _slices(frame, traffic), "growth_ratio": _growth(frame, traffic_by_day),
                "is_new": had_history and label not in matched,
                "first_seen_at": datetime.fromisoformat(first_seen), "last_seen_at": computed_at,
                "run_id": run_id, "since": since, "until": until, "computed_at": computed_at,
            })
        clusters = pl.DataFrame(rows, schema=CLUSTERS_SCHEMA) if rows else pl.DataFrame(schema=CLUSTERS_SCHEMA)
        members_frame = selected.select(
            "trace_id", pl.Series("cluster_id", [ids[int(label)] for label in labels], dtype=pl.String),
            "day", "service_name", "model_name", "prompt_version").cast(MEMBERS_SCHEMA)  # type: ignore[arg-type]
        if persist:
            folder = run_dir(Path(data_dir), run_id)
            folder.mkdir(parents=True, exist_ok=False)
            clusters.write_parquet(folder / "clusters.parquet")
            members_frame.write_parquet(folder / "members.parquet")
            publish_run(Path(data_dir), run_id, registry)
    return ClusterResult(run_id, since, until, num_traffic, selected.height, clusters, members_frame)


def load_clusters(data_dir: Path) -> pl.DataFrame:
    """Clusters of the last persisted run (columns in the module docstring); empty if none."""
    run_id = latest_run_id(Path(data_dir))
    if run_id is None:
        return pl.DataFrame(schema=CLUSTERS_SCHEMA)
    return pl.read_parquet(run_dir(Path(data_dir), run_id) / "clusters.parquet")


def load_cluster_members(data_dir: Path) -> pl.DataFrame:
    """Trace assignments of the last persisted run (members columns of the module docstring)."""
    run_id = latest_run_id(Path(data_dir))
    if run_id is None:
        return pl.DataFrame(schema=MEMBERS_SCHEMA)
    return pl.read_parquet(run_dir(Path(data_dir), run_id) / "members.parquet")


def list_new_and_growing(data_dir: Path, min_traces: int = 10, growth_factor: float = 2.0) -> pl.DataFrame:
    """New or growing clusters of the last run, for the alerts (clusters columns)."""
    clusters = load_clusters(data_dir)
    return clusters.filter(
        (pl.col("num_traces") >= min_traces)
        & (pl.col("is_new") | (pl.col("growth_ratio").fill_null(0.0) >= growth_factor))
    ).sort("num_traces", descending=True)
