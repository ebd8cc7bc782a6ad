"""The dashboard through Streamlit's AppTest: every page and filter, on a small real store.

Displayed figures are compared with the analytics API on the same store (the app must
agree with ``tracewatch metrics``).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import duckdb
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

import app.data
from analytics.compare import COMPARABLE_METRICS, Slice, compare_all
from analytics.filters import Filters
from analytics.metrics import compute_kpis, list_trace_metrics
from analytics.views import open_store
from app.widgets import fmt_count, fmt_ms, fmt_rate, fmt_usd
from tests.app_store import (
    CHAT_MESSAGES, CHAT_TRACE_ID, NUM_CHANGED_LINES, T0, build_app_store,
)

APP = str(Path(__file__).resolve().parent.parent / "app" / "streamlit_app.py")
PAGES = ("overview", "traces", "prompt_versions", "failure_modes", "alerts", "cost")
SINCE = T0 - timedelta(days=1)
UNTIL = T0 + timedelta(days=4)
RANGE = {"from": SINCE.isoformat(), "to": UNTIL.isoformat()}


def _use_store(monkeypatch: pytest.MonkeyPatch, data_dir: Path) -> None:
    monkeypatch.setenv("TRACEWATCH_DATA_DIR", str(data_dir))
    app.data.data_dir.cache_clear()
    st.cache_data.clear()
    st.cache_resource.clear()


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = tmp_path_factory.mktemp("app") / "store"
    build_app_store(data_dir)
    return data_dir


@pytest.fixture()
def con(store: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[duckdb.DuckDBPyConnection]:
    _use_store(monkeypatch, store)
    connection = open_store(store)
    yield connection
    connection.close()


def run_app(params: dict[str, str | list[str]] | None = None, page: str | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    for name, value in (params or {}).items():
        at.query_params[name] = value
    at.run()
    if page is not None:
        at.switch_page(f"app_pages/{page}.py").run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def url_param(at: AppTest, name: str) -> list[str]:
    value = at.query_params[name]
    return list(value) if isinstance(value, list) else [value]


def tiles(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def test_overview_tiles_equal_the_metrics_api(con: duckdb.DuckDBPyConnection) -> None:
    at = run_app(RANGE)
    kpis = compute_kpis(con, SINCE, UNTIL).row(0, named=True)
    shown = tiles(at)
    assert shown["Requests"] == fmt_count(kpis["num_requests"])
    assert shown["Cost"] == fmt_usd(kpis["cost_usd_total"])
    assert shown["p95 latency"] == fmt_ms(kpis["latency_p95_ms"])
    assert shown["Fallback rate"] == fmt_rate(kpis["fallback_rate"])
    assert shown["Error rate"] == fmt_rate(kpis["error_rate"])
    assert shown["Groundedness"] == f"{kpis['groundedness_mean']:.2f}"
    # The firing alert is on top, with a link to its slice.
    assert "p95 latency drift" in at.error[0].value
    assert "(./?service=copilot&from=" in at.error[0].value


def test_overview_significance_matches_compare(con: duckdb.DuckDBPyConnection) -> None:
    since, until = T0 + timedelta(days=1, hours=12), T0 + timedelta(days=3)
    at = run_app({"from": since.isoformat(), "to": until.isoformat()})
    previous = Slice(since - (until - since), since)
    expected = compare_all(con, previous, Slice(since, until), metrics=["error_rate"]).row(
        0, named=True)
    captions = [c.value for c in at.caption]
    error_caption = captions[5]  # the tiles' captions come first, in tile order
    if expected["status"] != "ok":
        assert error_caption == "not enough data to test"
    elif expected["significant"]:
        assert f"p={expected['p_value']:.3g}" in error_caption
    else:
        assert error_caption == f"not significant (p={expected['p_value']:.2g})"


@pytest.mark.parametrize(("param", "dim", "value"), [
    ("service", "service_name", "extract"),
    ("model", "model_name", "gpt-4o"),
    ("provider", "provider", "acme"),
    ("prompt_version", "prompt_version", "v2"),
])
def test_url_filters_cut_every_figure(con: duckdb.DuckDBPyConnection, param: str, dim: str,
                                      value: str) -> None:
    at = run_app({**RANGE, param: value})
    expected = compute_kpis(con, SINCE, UNTIL, Filters.of(**{dim: value})).row(0, named=True)
    assert tiles(at)["Requests"] == fmt_count(expected["num_requests"])
    assert tiles(at)["Cost"] == fmt_usd(expected["cost_usd_total"])
    assert at.sidebar.multiselect(key=f"flt_{dim}").value == [value]
    assert url_param(at, param) == [value]


def test_sidebar_filter_updates_tiles_and_url(con: duckdb.DuckDBPyConnection) -> None:
    at = run_app(RANGE)
    at.sidebar.multiselect(key="flt_service_name").select("copilot").run()
    expected = compute_kpis(con, SINCE, UNTIL, Filters.of(service_name="copilot"))
    assert tiles(at)["Requests"] == fmt_count(expected["num_requests"][0])
    assert url_param(at, "service") == ["copilot"]


def test_time_range_preset_and_custom_range(con: duckdb.DuckDBPyConnection) -> None:
    at = run_app()
    assert at.sidebar.selectbox(key="flt_preset").value == "Last 7 days"
    at.sidebar.selectbox(key="flt_preset").select("Last 24 hours").run()
    latest = con.execute("SELECT max(start_time) FROM traces").fetchone()[0]
    until = latest.replace(second=0, microsecond=0) + timedelta(minutes=1)
    expected = compute_kpis(con, until - timedelta(hours=24), until)
    assert tiles(at)["Requests"] == fmt_count(expected["num_requests"][0])
    assert url_param(at, "to") == [until.isoformat()]
    at.sidebar.selectbox(key="flt_preset").select("All time").run()
    assert tiles(at)["Requests"] == fmt_count(compute_kpis(con)["num_requests"][0])
    assert "from" not in at.query_params


def test_bad_custom_time_is_a_message_not_a_traceback(con: duckdb.DuckDBPyConnection) -> None:
    at = run_app({"from": "yesterday-ish"})
    assert any("bad time" in e.value for e in at.sidebar.error)


def test_every_page_renders(con: duckdb.DuckDBPyConnection) -> None:
    at = run_app(RANGE)
    titles = {}
    for page in PAGES:
        at.switch_page(f"app_pages/{page}.py").run()
        assert not at.exception, (page, [e.message for e in at.exception])
        titles[page] = at.title[0].value
        assert url_param(at, "page") == [page]
    assert titles == {"overview": "Overview", "traces": "Traces",
                      "prompt_versions": "Prompt versions", "failure_modes": "Failure modes",
                      "alerts": "Alerts", "cost": "Cost"}


def test_traces_table_lists_the_slice(con: duckdb.DuckDBPyConnection) -> None:
    at = run_app({**RANGE, "service": "extract"}, page="traces")
    expected = list_trace_metrics(con, SINCE, UNTIL, Filters.of(service_name="extract"))
    table = at.dataframe[0].value
    assert len(table) == expected.height
    assert set(table["service_name"]) == {"extract"}
    at.selectbox(key="trace_status").select("ERROR").run()
    assert len(at.dataframe[0].value) == expected.filter(expected["is_error"]).height


def test_trace_search_over_redacted_text(con: duckdb.DuckDBPyConnection) -> None:
    at = run_app(RANGE, page="traces")
    at.text_input(key="trace_search").input("refund").run()
    table = at.dataframe[0].value
    assert list(table["link"]) == [f"traces?trace_id={CHAT_TRACE_ID}"]


def test_trace_deep_link_opens_the_drilldown(con: duckdb.DuckDBPyConnection) -> None:
    at = run_app({"trace_id": CHAT_TRACE_ID})  # from the default page: switches to Traces
    assert at.title[0].value == "answer_question"
    assert CHAT_TRACE_ID in at.caption[0].value
    spans = con.execute("SELECT count(*) FROM spans WHERE trace_id = ?",
                        [CHAT_TRACE_ID]).fetchone()[0]
    assert len(at.radio(key=f"span_{CHAT_TRACE_ID}").options) == spans == 3
    # The LLM span shows its input as chat messages and the per-span cost table.
    at.radio(key=f"span_{CHAT_TRACE_ID}").set_value("c2" * 8).run()
    contents = [m.value for m in at.markdown]
    assert CHAT_MESSAGES[1]["content"] in contents
    assert [m.name for m in at.chat_message] == ["assistant", "user"]  # system, user
    # Retrieved documents with their scores (shown for the trace from any span).
    docs = [df.value for df in at.dataframe if "document_id" in df.value.columns][0]
    assert list(docs["document_id"]) == ["kb-1003", "kb-1143"]
    assert list(docs["score"]) == [0.91, 0.42]
    at.button(key="back_to_list").click().run()
    assert "trace_id" not in at.query_params
    assert at.title[0].value == "Traces"


def test_unknown_trace_id_is_a_message(con: duckdb.DuckDBPyConnection) -> None:
    at = run_app({"trace_id": "f" * 32})
    assert "not in the store" in at.warning[0].value


def test_prompt_versions_diff_and_comparison(con: duckdb.DuckDBPyConnection) -> None:
    at = run_app(RANGE, page="prompt_versions")
    versions = at.dataframe[0].value
    assert list(versions["prompt_version"]) == ["v1", "v2"]
    assert list(at.selectbox(key="pv_a").options) == ["v1", "v2"]
    assert f"{NUM_CHANGED_LINES} changed line(s)" in [c.value for c in at.caption]
    diff = at.get("html")[0].proto.body
    assert "Answer only from the articles below." in diff and "class='chg-b'" in diff
    assert "Cite the article id." in diff and "class='add'" in diff
    shown = at.dataframe[1].value
    expected = compare_all(con, Slice(SINCE, UNTIL, Filters.of(prompt_version="v1")),
                           Slice(SINCE, UNTIL, Filters.of(prompt_version="v2")),
                           metrics=COMPARABLE_METRICS)
    assert list(shown["metric"]) == list(COMPARABLE_METRICS)
    assert shown["value_b"].tolist() == pytest.approx(expected["value_b"].to_list(),
                                                      nan_ok=True)
    assert shown["ci_low"].tolist() == pytest.approx(
        [float("nan") if v is None else v for v in expected["ci_low"].to_list()], nan_ok=True)


def test_prompt_diff_link_preselects_the_pair(con: duckdb.DuckDBPyConnection) -> None:
    """The link a Slack alert on a new prompt version carries opens that diff."""
    at = run_app({**RANGE, "page": "prompt_versions", "a": "v2", "b": "v1"})
    assert at.title[0].value == "Prompt versions"
    assert (at.selectbox(key="pv_a").value, at.selectbox(key="pv_b").value) == ("v2", "v1")
    at = run_app({**RANGE, "page": "prompt_versions", "b": "v2"})
    assert (at.selectbox(key="pv_a").value, at.selectbox(key="pv_b").value) == ("v1", "v2")


def test_cost_page_equals_the_metrics_api(con: duckdb.DuckDBPyConnection) -> None:
    at = run_app(RANGE, page="cost")
    kpis = compute_kpis(con, SINCE, UNTIL).row(0, named=True)
    assert tiles(at)["Spend"] == fmt_usd(kpis["cost_usd_total"])
    assert tiles(at)["Unpriced LLM calls"] == fmt_count(kpis["num_unpriced_llm_calls"])
    by_model = at.dataframe[0].value
    expected = compute_kpis(con, SINCE, UNTIL, by=["model_name"])
    assert dict(zip(by_model["model_name"], by_model["num_requests"])) == {
        (m or "(none)"): n for m, n in zip(expected["model_name"], expected["num_requests"])}
    unpriced = at.dataframe[-1].value
    assert set(unpriced["model_name"]) == {"acme-private-7b"}
    assert int(unpriced["num_calls"].sum()) == kpis["num_unpriced_llm_calls"]


def test_alerts_page_lists_firing_and_resolved(con: duckdb.DuckDBPyConnection) -> None:
    at = run_app(RANGE, page="alerts")
    firing, resolved = at.dataframe[0].value, at.dataframe[1].value
    assert list(firing["rule"]) == ["p95 latency drift"]
    assert list(resolved["rule"]) == ["error rate"]
    assert firing["slice"][0].startswith("./?service=copilot&from=")
    assert firing["slice"][0].endswith("&page=overview")


def test_failure_modes_without_a_run_says_how_to_get_one(con: duckdb.DuckDBPyConnection) -> None:
    at = run_app(RANGE, page="failure_modes")
    assert "tracewatch clusters" in at.info[0].value


def test_empty_filters_show_a_message(con: duckdb.DuckDBPyConnection) -> None:
    params = {**RANGE, "service": "no-such-service"}
    for page in ("overview", "traces", "prompt_versions", "cost"):
        at = run_app(params, page=page)
        assert any("No traces match" in i.value for i in at.info), page


def test_empty_store_shows_how_to_ingest(tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    _use_store(monkeypatch, tmp_path / "empty")
    at = run_app()
    for page in PAGES:
        at.switch_page(f"app_pages/{page}.py").run()
        assert not at.exception, (page, [e.message for e in at.exception])
        infos = " ".join(i.value for i in at.info)
        if page == "alerts":
            assert "No alerts yet" in infos
        else:
            assert "No traces in the store yet" in infos, page
