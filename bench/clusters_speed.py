"""Clustering speed: 100,000 failing traces in <= 60 s and <= 2 GB peak RSS.

The 100k traces' fields are synthesised from the failing traces of a real (generated, ingested)
sample: each is a sampled real row whose numbers, ids and hex runs are replaced by fresh random
ones and, for a quarter, whose messages are paraphrased - so distinct texts are many, as in
production.  Timed: description, masking, TF-IDF, SVD and clustering (the selection query is
measured by the analytics benchmarks).  Wall time is the target; CPU time and the load average
are printed too, since on a shared machine wall time also measures the neighbours.  With
``--samples`` (the ground truth of the store), the adjusted Rand index of the 100k labels
against the failure modes is printed as well.

    python bench/clusters_speed.py [--n 100000] [--days 2] [--data-dir D [--samples S]]
"""

from __future__ import annotations

import argparse
import os
import random
import re
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analytics.clusters import ClusterSettings, cluster_descriptions  # noqa: E402
from analytics.failure_features import describe_trace  # noqa: E402
from analytics.failure_selection import select_failing_traces  # noqa: E402
from analytics.views import open_store  # noqa: E402
from bench.clusters_quality import paraphrase  # noqa: E402

TIME_TARGET_S = 60.0
RSS_TARGET_MB = 2048.0
_NUM = re.compile(r"\d+")
_HEXRUN = re.compile(r"\b[0-9a-f]{12,}\b")


def _perturb(text: str | None, rng: random.Random, para: bool) -> str | None:
    if not text:
        return text
    text = _HEXRUN.sub(lambda m: f"{rng.getrandbits(4 * len(m.group(0))):0{len(m.group(0))}x}", text)
    text = _NUM.sub(lambda m: str(rng.randint(0, 10 ** len(m.group(0)))), text)
    return paraphrase(text, rng) if para else text


def synthesise(rows: list[dict[str, object]], n: int, seed: int = 5) -> list[dict[str, object]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        row = dict(rng.choice(rows))
        para = rng.random() < 0.25
        row["leaf_errors"] = [_perturb(str(x), rng, para) for x in row["leaf_errors"]]  # type: ignore[attr-defined]
        row["root_error"] = _perturb(row["root_error"], rng, para)  # type: ignore[arg-type]
        row["output_snippet"] = _perturb(row["output_snippet"], rng, False)  # type: ignore[arg-type]
        out.append(row)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=2)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--samples", type=Path, default=None, help="ground truth of --data-dir (for the ARI)")
    args = parser.parse_args()
    data_dir, samples = args.data_dir, args.samples
    if data_dir is None:
        from samples.generate import generate_samples
        tmp = Path(tempfile.mkdtemp(prefix="tw-clusters-speed-"))
        generate_samples(tmp / "samples", days=args.days)
        data_dir, samples = tmp / "data", tmp / "samples"
        subprocess.run([sys.executable, "-m", "tracewatch.cli", "ingest", str(tmp / "samples"), "--data-dir",
                        str(data_dir), "--no-redaction", "--quiet"], check=True)
    con = open_store(data_dir)
    frame: pl.DataFrame = select_failing_traces(con, datetime(1970, 1, 1), datetime(2100, 1, 1))
    con.close()
    rows = synthesise(frame.to_dicts(), args.n)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    load_before = os.getloadavg()[0]
    start, cpu_start = time.perf_counter(), time.process_time()
    descriptions = [describe_trace(r) for r in rows]
    described = time.perf_counter() - start
    labels = cluster_descriptions(descriptions, ClusterSettings())
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    distinct = len({d.key() for d in descriptions})
    ok = elapsed <= TIME_TARGET_S and peak_mb <= RSS_TARGET_MB
    print(f"{len(rows)} failing traces ({distinct} distinct descriptions, from {frame.height} real ones): "
          f"{int(labels.max()) + 1} clusters in {elapsed:.1f} s (describe {described:.1f} s; CPU {cpu:.1f} s; "
          f"load average {load_before:.1f} -> {os.getloadavg()[0]:.1f} on {len(os.sched_getaffinity(0))} CPUs); "
          f"peak RSS {peak_mb:.0f} MB (before: {rss_before:.0f} MB) -> "
          f"time {'PASS' if elapsed <= TIME_TARGET_S else 'FAIL'} (<= {TIME_TARGET_S:.0f} s), "
          f"memory {'PASS' if peak_mb <= RSS_TARGET_MB else 'FAIL'} (<= {RSS_TARGET_MB:.0f} MB)")
    if samples is not None:
        from sklearn.metrics import adjusted_rand_score

        from bench.clusters_quality import load_labels
        truth = load_labels(samples)
        modes = [str(truth.get(str(r["trace_id"]), {}).get("failure_mode") or "none") for r in rows]
        print(f"ARI of the {len(rows)} labels against the failure modes: {adjusted_rand_score(modes, labels):.3f}")
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
