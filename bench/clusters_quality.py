"""Failure-mode clustering quality against the sample ground truth.

Prints the adjusted Rand index (target >= 0.8) between clusters and labelled failure modes,
and for every mode with >= 50 selected traces the purity of the cluster that holds most of it
(target >= 0.9) - once on the stored messages, once with every error message paraphrased
(synonyms substituted, clauses reordered, case changed).

    python bench/clusters_quality.py                     # generate 4 days, ingest, measure
    python bench/clusters_quality.py --samples sample_traces --data-dir data   # existing store

Groundedness: the ``unsupported_claim`` / ``hallucinated_citation`` modes fail no span; they
are selected through a groundedness score.  ``--groundedness oracle`` (default when the store
has no groundedness evaluations) writes the ground truth's ``grounded`` label as ``builtin``
evaluations (0.1 / 0.9) so that the clustering, not the scorer, is measured; ``store`` uses
whatever the store holds.
"""

from __future__ import annotations

import argparse
import gzip
import random
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

import orjson
import polars as pl
import pyarrow as pa
from deltalake import write_deltalake
from sklearn.metrics import adjusted_rand_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analytics.clusters import ClusterSettings, cluster_descriptions  # noqa: E402
from analytics.failure_features import describe_trace  # noqa: E402
from analytics.failure_selection import select_failing_traces  # noqa: E402
from analytics.views import open_store  # noqa: E402
from collector.schema import EVALUATIONS_SCHEMA, EVALUATIONS_TABLE, table_path  # noqa: E402

MIN_MODE = 50
ARI_TARGET = 0.8
PURITY_TARGET = 0.9

# The paraphraser's own synonym table (written independently of analytics' concept lexicon).
_SYNONYMS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (r"timed out", ("took too long", "hit its time limit", "ran past the deadline")),
    (r"time out|timeout", ("time limit", "deadline")),
    (r"rate limit", ("request quota", "throughput cap", "usage limit")),
    (r"too many requests", ("request volume too high", "throttled")),
    (r"overloaded", ("at capacity", "saturated")),
    (r"server error", ("backend failure", "service fault")),
    (r"connection refused", ("connection rejected", "peer refused the connection")),
    (r"required property", ("mandatory field", "field that must be present")),
    (r"is not of type", ("has the wrong type, expected",)),
    (r"maximum context length", ("context window limit", "largest prompt size")),
    (r"too long", ("oversized", "over the size limit")),
    (r"exceeds", ("goes beyond", "is larger than")),
    (r"unavailable", ("down", "not reachable")),
    (r"failed", ("did not succeed", "broke")),
    (r"error", ("failure", "problem")),
    (r"please", ("kindly",)),
    (r"request", ("call",)),
)


def paraphrase(message: str, rng: random.Random) -> str:
    """Reword a message: synonym substitutions, clause reordering, case changes."""
    text = message
    for pattern, choices in _SYNONYMS:
        if rng.random() < 0.8:
            text = re.sub(pattern, lambda _m: rng.choice(choices), text, flags=re.IGNORECASE)
    clauses = [c for c in re.split(r"(?<=[.;,])\s+", text) if c]
    if len(clauses) > 1 and rng.random() < 0.5:
        rng.shuffle(clauses)
    text = " ".join(clauses)
    if rng.random() < 0.3:
        text = text.lower()
    return text


def _paraphrase_frame(frame: pl.DataFrame, seed: int) -> pl.DataFrame:
    rng = random.Random(seed)

    def leaf(items: list[str]) -> list[str]:
        out = []
        for item in items:
            kind, name, etype, message = (item.split("|", 3) + ["", "", "", ""])[:4]
            out.append("|".join((kind, name, etype, paraphrase(message, rng))))
        return out

    return frame.with_columns(
        pl.Series("leaf_errors", [leaf(x) for x in frame["leaf_errors"].to_list()],
                  dtype=pl.List(pl.String)),
        pl.Series("root_error", [paraphrase(x, rng) if x else x for x in frame["root_error"].to_list()],
                  dtype=pl.String),
    )


def load_labels(samples: Path) -> dict[str, dict[str, object]]:
    labels = {}
    with gzip.open(samples / "ground_truth_traces.jsonl.gz") as handle:
        for line in handle:
            row = orjson.loads(line)
            labels[row["trace_id"]] = row
    return labels


def write_oracle_groundedness(data_dir: Path, labels: dict[str, dict[str, object]]) -> int:
    con = open_store(data_dir)
    starts = dict(con.sql("SELECT trace_id, start_time FROM traces").fetchall())
    con.close()
    rows = [(tid, None, "groundedness", 0.9 if lab["grounded"] else 0.1, None, "oracle from ground truth",
             "builtin", starts[tid], starts[tid].date())
            for tid, lab in labels.items() if lab["grounded"] is not None and tid in starts]
    table = pa.Table.from_pylist([dict(zip(EVALUATIONS_SCHEMA.names, r)) for r in rows], schema=EVALUATIONS_SCHEMA)
    write_deltalake(str(table_path(data_dir, EVALUATIONS_TABLE)), table, mode="overwrite",
                    partition_by=["day"])
    return len(rows)


def score(frame: pl.DataFrame, clusters: list[int], labels: dict[str, dict[str, object]]) -> tuple[float, list[str], bool]:
    modes = [str(labels.get(t, {}).get("failure_mode") or "none") for t in frame["trace_id"].to_list()]
    labelled = [(m, c) for m, c in zip(modes, clusters) if m != "none"]
    ari = adjusted_rand_score([m for m, _ in labelled], [c for _, c in labelled])
    ari_all = adjusted_rand_score(modes, clusters)
    by_cluster = Counter(c for _, c in labelled)
    lines = [f"  ARI (labelled traces) = {ari:.3f}   ARI (all selected, unlabelled as 'none') = {ari_all:.3f}",
             f"  {'mode':26} {'traces':>6} {'cluster':>7} {'recall':>7} {'purity':>7}"]
    ok = ari >= ARI_TARGET
    for mode, n in sorted(Counter(m for m, _ in labelled).items(), key=lambda kv: -kv[1]):
        in_mode = Counter(c for m, c in labelled if m == mode)
        cluster, hits = in_mode.most_common(1)[0]
        purity = hits / by_cluster[cluster]
        flag = ""
        if n >= MIN_MODE:
            flag = "ok" if purity >= PURITY_TARGET else "LOW"
            ok = ok and purity >= PURITY_TARGET
        lines.append(f"  {mode:26} {n:6d} {cluster:7d} {hits / n:7.2f} {purity:7.2f} {flag}")
    return ari, lines, ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=Path, default=None, help="generated samples with ground truth")
    parser.add_argument("--data-dir", type=Path, default=None, help="store holding those samples")
    parser.add_argument("--days", type=int, default=4, help="days to generate when --samples is not given")
    parser.add_argument("--no-redaction", action="store_true", help="ingest without redaction (faster)")
    parser.add_argument("--groundedness", choices=("oracle", "store"), default="oracle")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="tw-clusters-bench-"))
    samples, data_dir = args.samples, args.data_dir
    if samples is None:
        from samples.generate import generate_samples
        samples = tmp / "samples"
        generate_samples(samples, days=args.days)
    if data_dir is None:
        data_dir = tmp / "data"
        cmd = [sys.executable, "-m", "tracewatch.cli", "ingest", str(samples), "--data-dir", str(data_dir), "--quiet"]
        subprocess.run(cmd + (["--no-redaction"] if args.no_redaction else []), check=True)
    labels = load_labels(samples)
    if args.groundedness == "oracle":
        print(f"oracle groundedness evaluations written: {write_oracle_groundedness(data_dir, labels)}")
    con = open_store(data_dir)
    frame = select_failing_traces(con, datetime(1970, 1, 1), datetime(2100, 1, 1))
    con.close()
    labelled_total = Counter(str(v["failure_mode"]) for v in labels.values() if v["failure_mode"])
    selected_modes = Counter(str(labels.get(t, {}).get("failure_mode") or "none") for t in frame["trace_id"])
    print(f"store {data_dir}: {len(labels)} traces, {frame.height} selected; selection recall per mode: "
          + ", ".join(f"{m} {selected_modes.get(m, 0)}/{n}" for m, n in sorted(labelled_total.items()))
          + f"; selected without a label: {selected_modes.get('none', 0)}")
    all_ok = True
    for title, variant in (("stored messages", frame), ("paraphrased messages", _paraphrase_frame(frame, 11))):
        start = time.perf_counter()
        clusters = cluster_descriptions([describe_trace(r) for r in variant.iter_rows(named=True)], ClusterSettings())
        elapsed = time.perf_counter() - start
        ari, lines, ok = score(variant, [int(c) for c in clusters], labels)
        print(f"{title}: {int(clusters.max()) + 1 if len(clusters) else 0} clusters in {elapsed:.1f} s "
              f"-> {'PASS' if ok else 'FAIL'}")
        print("\n".join(lines))
        all_ok = all_ok and ok
    print("PASS" if all_ok else "FAIL")
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
