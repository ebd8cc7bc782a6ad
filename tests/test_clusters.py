"""Failure-mode clusters on a generated sample ingested into a temporary store."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from collections import Counter
from datetime import datetime
from pathlib import Path

import orjson
import pytest
from sklearn.metrics import adjusted_rand_score

from analytics.cluster_identity import clusters_dir
from analytics.clusters import (
    cluster_descriptions, compute_clusters, list_new_and_growing, load_cluster_members, load_clusters,
)
from analytics.errors import AnalyticsError
from analytics.failure_features import TraceDescription, describe_trace, mask_text

DAY1, DAY2, DAY3 = datetime(2026, 11, 9), datetime(2026, 11, 10), datetime(2026, 11, 11)
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def sample_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    from samples.generate import generate_samples

    root = tmp_path_factory.mktemp("clusters")
    generate_samples(root / "samples", days=2, workers=1)
    env = {**os.environ, "TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS": ""}
    subprocess.run([sys.executable, "-m", "tracewatch.cli", "ingest", str(root / "samples"),
                    "--data-dir", str(root / "data"), "--no-redaction", "--quiet"],
                   check=True, cwd=REPO, env=env, capture_output=True)
    labels = {}
    with gzip.open(root / "samples" / "ground_truth_traces.jsonl.gz") as handle:
        for line in handle:
            row = orjson.loads(line)
            labels[row["trace_id"]] = row["failure_mode"] or "none"
    return root / "data", labels


def _fresh(data_dir: Path, name: str) -> Path:
    """The sample store under a new name with no cluster history (same Delta tables)."""
    target = data_dir.parent / name
    target.mkdir()
    for table in ("spans",):
        (target / table).symlink_to(data_dir / table)
    return target


def test_failure_modes_are_recovered(sample_store: tuple[Path, dict[str, str]]) -> None:
    data_dir, labels = sample_store
    store = _fresh(data_dir, "recovered")
    result = compute_clusters(store, DAY1, DAY3)
    members = load_cluster_members(store)
    modes = [labels[t] for t in members["trace_id"].to_list()]
    assert "none" not in modes  # nothing selected without a failure
    # Without groundedness scores the silent modes are not selectable; every other mode is.
    selectable = Counter(m for m in labels.values() if m not in ("none", "unsupported_claim",
                                                                  "hallucinated_citation"))
    assert Counter(modes) == selectable
    assert adjusted_rand_score(modes, members["cluster_id"].to_list()) >= 0.8
    for mode, n in selectable.items():
        if n >= 50:
            ids = Counter(c for c, m in zip(members["cluster_id"], modes) if m == mode)
            cid, hits = ids.most_common(1)[0]
            size = int(result.clusters.filter(result.clusters["cluster_id"] == cid)["num_traces"][0])
            assert hits / size >= 0.9, (mode, hits, size)
    top = result.clusters.row(0, named=True)
    assert top["name"] and top["representative_trace_id"] in set(members["trace_id"])
    assert sum(day["num_traces"] for day in top["trend"]) == top["num_traces"]
    assert 0 < top["share_of_traffic"] < 1
    assert load_clusters(store)["cluster_id"].to_list() == result.clusters["cluster_id"].to_list()


def test_schema_failures_concentrate_in_their_service(sample_store: tuple[Path, dict[str, str]]) -> None:
    data_dir, labels = sample_store
    result = compute_clusters(_fresh(data_dir, "slices"), DAY1, DAY3)
    schema = [r for r in result.clusters.iter_rows(named=True) if "schema_invalid" in r["reasons"]]
    assert schema
    slices = {(s["dimension"], s["value"]): s for s in schema[0]["slices"]}
    assert slices[("service_name", "doc-extraction")]["cluster_share"] == 1.0


def test_numbers_ids_and_placeholders_do_not_split_a_mode() -> None:
    assert mask_text("Rate limit reached for gpt-4o in org-5qL9vNimbusPr0d: Limit 30000, Used 29090") == \
        mask_text("Rate limit reached for gpt-4o in org-77aa8bd1c0ffee: Limit 450000, Used 1")
    assert mask_text("user <PERSON> (<EMAIL_ADDRESS>) req_0a1b2c3d4e5f6a7b8c9d0e1f") == \
        mask_text("user <PERSON> (jane.doe@example.com) req_ffffffffffff000000001111")
    assert "http429" in mask_text("Error code: 429 - Too Many Requests")
    rows = []
    for i in range(60):
        person = "<PERSON>" if i % 2 else f"user {i}"
        rows.append({"reasons": ["error"], "leaf_errors": [
            f"TOOL|lookup_order.tool|KeyError|order {100000 + i * 7919} not found for {person} "
            f"(request {i * 2654435761 % 2**32:08x})"]})
        rows.append({"reasons": ["error"], "leaf_errors": [
            f"LLM|ChatOpenAI||Error code: 429 - Rate limit reached, please try again in {i * 37}ms"]})
    labels = cluster_descriptions([describe_trace(r) for r in rows])
    assert len(set(labels[0::2])) == 1 and len(set(labels[1::2])) == 1
    assert labels[0] != labels[1]


def test_identity_is_stable_across_runs_and_an_added_day(sample_store: tuple[Path, dict[str, str]]) -> None:
    data_dir, _ = sample_store
    store = _fresh(data_dir, "identity")
    first = compute_clusters(store, DAY1, DAY2)
    again = compute_clusters(store, DAY1, DAY2)
    assert again.clusters["cluster_id"].to_list() == first.clusters["cluster_id"].to_list()
    assert not again.clusters["is_new"].any()
    both_days = compute_clusters(store, DAY1, DAY3)
    big_before = {r["cluster_id"]: r["name"] for r in first.clusters.iter_rows(named=True) if r["num_traces"] >= 20}
    ids_after = set(both_days.clusters["cluster_id"])
    assert set(big_before) <= ids_after
    assert not both_days.clusters.filter(both_days.clusters["num_traces"] >= 40)["is_new"].any()
    # Members of one day keep their cluster when the next day is added.
    day1 = dict(zip(first.members["trace_id"], first.members["cluster_id"]))
    kept = sum(1 for t, c in zip(both_days.members["trace_id"], both_days.members["cluster_id"])
               if t in day1 and day1[t] == c)
    assert kept / len(day1) >= 0.95
    assert (clusters_dir(store) / "registry.json").exists()


def test_a_new_failure_is_reported_as_new(sample_store: tuple[Path, dict[str, str]]) -> None:
    data_dir, _ = sample_store
    store = _fresh(data_dir, "newmode")
    before = compute_clusters(store, DAY1, DAY3, filters={"service_name": "support-copilot"})
    assert not before.clusters["is_new"].any()  # a first run has nothing to be new against
    after = compute_clusters(store, DAY1, DAY3)
    new = after.clusters.filter(after.clusters["is_new"])
    assert any("schema_invalid" in reasons for reasons in new["reasons"].to_list())
    for row in before.clusters.iter_rows(named=True):
        if row["num_traces"] >= 50:
            assert row["cluster_id"] in set(after.clusters["cluster_id"])
    alerts = list_new_and_growing(store, min_traces=10)
    assert set(new.filter(new["num_traces"] >= 10)["cluster_id"]) <= set(alerts["cluster_id"])


def test_bad_input_is_an_analytics_error(sample_store: tuple[Path, dict[str, str]]) -> None:
    data_dir, _ = sample_store
    with pytest.raises(AnalyticsError):
        compute_clusters(data_dir, DAY2, DAY1)
    with pytest.raises(AnalyticsError):
        compute_clusters(data_dir, DAY1, DAY2, filters={"nope": "x"})
    empty = compute_clusters(_fresh(data_dir, "empty"), datetime(2020, 1, 1), datetime(2020, 1, 2))
    assert empty.clusters.height == 0 and empty.num_selected == 0


def test_description_uses_no_raw_text_beyond_the_snippet() -> None:
    desc = describe_trace({"reasons": ["refusal"], "output_snippet": "I'm sorry, but <PERSON> at 555-0100"})
    assert isinstance(desc, TraceDescription)
    assert "555" not in desc.context and "pii" in desc.context
