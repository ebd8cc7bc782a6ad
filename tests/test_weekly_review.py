"""The weekly quality review: notebook executed with nbclient, HTML report, Slack summary.

One store of three generated days (2026-11-09..11, ISO week 2026-W46, so the previous week
is empty), ingested with ``tracewatch ingest --no-redaction``, groundedness scored, and one
alert recorded in the history through ``alerts.history``.  ``tracewatch report`` runs once
(module fixture) with ``--notify`` against a loopback Slack server; the tests read what it
wrote.  Figures are checked against ``tracewatch metrics --format json`` for the same week,
formatted here independently of ``analytics.weekly_text``.
"""

from __future__ import annotations

import argparse
import doctest
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import nbformat
import psutil  # type: ignore[import-untyped]
import pytest

from alerts.cause import Cause
from alerts.evaluate import AlertEvent
from alerts.history import record_events
from alerts.state import Transition
from analytics.errors import AnalyticsError
from analytics.views import open_store
from tests.slack_server import RecordedRequest, run_slack_server
from tracewatch.report_command import add_report_parser, execute_notebook
from tracewatch.report_html import render_notebook_html

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "notebooks" / "weekly_quality_review.ipynb"
WEEK, SINCE, UNTIL = "2026-W46", "2026-11-09", "2026-11-16"
SECTIONS = ["Summary", "KPIs vs the previous week", "Cost by model and service",
            "Latency percentiles", "Groundedness and fallback trends",
            "Failure modes and how they moved", "Prompt versions shipped",
            "Alerts fired and their causes", "Traces to read"]
TRACE_LINK = re.compile(r"http://127\.0\.0\.1:8501/\?trace_id=([0-9a-f]{32})")
ENV = {**os.environ, "TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS": ""}


def _cli(*args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "tracewatch.cli", *args], check=True, cwd=REPO,
                          env=ENV, capture_output=True, text=True)
    return done.stdout


def _metrics(data_dir: Path, *extra: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = json.loads(_cli(
        "metrics", "--since", SINCE, "--until", UNTIL, "--format", "json",
        "--data-dir", str(data_dir), *extra))
    return rows


def _record_alert(data_dir: Path) -> tuple[str, str]:
    """A fired-and-resolved alert on support-copilot, with a real example trace."""
    con = open_store(data_dir)
    trace_id = con.sql("SELECT trace_id FROM traces WHERE service_name = 'support-copilot' "
                       "ORDER BY duration_ms DESC LIMIT 1").fetchall()[0][0]
    con.close()
    started = datetime(2026, 11, 10, 14, 0)
    cause = Cause({"service_name": "support-copilot", "prompt_version": "v3"}, 0.8,
                  [{"dimension": "prompt_version", "value": "v3",
                    "first_seen": "2026-11-10T13:55:00Z"}], [trace_id])
    common: dict[str, Any] = dict(
        alert_id="a1b2c3d4e5f60718", rule="latency-p95", fingerprint="f" * 16,
        severity="critical", metric="latency_p95_ms", group_key="service_name=support-copilot",
        value=4200.0, baseline=1650.0, started_at=started, verdict="4200 vs 1650 ms (+155%)",
        channel=None, window=(started - timedelta(minutes=30), started),
        baseline_range=(started - timedelta(days=1), started - timedelta(minutes=30)),
        cause=cause, detail={"group": {"service_name": "support-copilot"}})
    record_events(data_dir, [
        AlertEvent(Transition.FIRING, at=started, resolved_at=None, **common),
        AlertEvent(Transition.RESOLVED, at=started + timedelta(hours=1),
                   resolved_at=started + timedelta(hours=1), **common),
    ])
    return "latency-p95", trace_id


@dataclass
class Store:
    data_dir: Path
    alert_rule: str
    alert_trace_id: str
    metrics: dict[str, Any]  # `tracewatch metrics --format json` of the week
    metrics_by_service: list[dict[str, Any]]  # the same with --by service_name


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    from analytics.groundedness import score_store
    from samples.generate import generate_samples

    root = tmp_path_factory.mktemp("weekly")
    generate_samples(root / "samples", days=3, workers=1)
    _cli("ingest", str(root / "samples"), "--data-dir", str(root / "data"), "--no-redaction",
         "--quiet")
    score_store(root / "data")
    rule, trace_id = _record_alert(root / "data")
    return Store(root / "data", rule, trace_id, _metrics(root / "data")[0],
                 _metrics(root / "data", "--by", "service_name"))


def _run_report(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="tracewatch")
    add_report_parser(parser.add_subparsers())
    args = parser.parse_args(["report", *argv])
    code: int = args.handler(args)
    return code


@dataclass
class Report:
    html: str
    path: Path
    slack: list[RecordedRequest]
    elapsed_s: float


@pytest.fixture(scope="module")
def report(store: Store, tmp_path_factory: pytest.TempPathFactory) -> Report:
    out = tmp_path_factory.mktemp("report") / "report.html"
    mp = pytest.MonkeyPatch()
    with run_slack_server() as slack:
        mp.setenv("TRACEWATCH_SLACK_WEBHOOK_URL", slack.url)
        mp.setenv("TRACEWATCH_SLACK_BACKOFF_S", "0")
        try:
            started = time.monotonic()
            assert _run_report("--week", WEEK, "--out", str(out), "--data-dir",
                               str(store.data_dir), "--notify") == 0
            elapsed = time.monotonic() - started
        finally:
            mp.undo()
    return Report(out.read_text(encoding="utf-8"), out, list(slack.requests), elapsed)


class _Page(HTMLParser):
    """Headings, tables (rows of cell texts) and scripts of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.headings: list[tuple[str, str]] = []
        self.tables: list[list[list[str]]] = []
        self.script_srcs: list[str] = []
        self._tag: str | None = None
        self._text = ""
        self._row: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "script" and dict(attrs).get("src"):
            self.script_srcs.append(dict(attrs)["src"] or "")
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self._row = []
        elif tag in ("h1", "h2", "td", "th"):
            self._tag, self._text = tag, ""

    def handle_endtag(self, tag: str) -> None:
        if tag in ("h1", "h2") and self._tag == tag:
            self.headings.append((tag, self._text.strip()))
        elif tag in ("td", "th") and self._row is not None:
            self._row.append(self._text.strip())
        elif tag == "tr" and self._row is not None:
            self.tables[-1].append(self._row)
            self._row = None
        if tag == self._tag:
            self._tag = None

    def handle_data(self, data: str) -> None:
        if self._tag:
            self._text += data


def _parse(html: str) -> _Page:
    page = _Page()
    page.feed(html)
    return page


def _row(page: _Page, first_cell: str, header_contains: str) -> dict[str, str]:
    for table in page.tables:
        if table and header_contains in table[0]:
            for row in table[1:]:
                if row[0] == first_cell:
                    return dict(zip(table[0], row))
    raise AssertionError(f"no row {first_cell!r} in a table with column {header_contains!r}")


def test_report_has_every_section_in_order(report: Report) -> None:
    page = _parse(report.html)
    assert page.headings[0] == ("h1", f"Weekly quality review {WEEK} — all services")
    assert [text for tag, text in page.headings if tag == "h2"] == SECTIONS


def test_report_is_self_contained_with_code_hidden(report: Report) -> None:
    from plotly.offline import get_plotlyjs  # type: ignore[import-untyped]

    page = _parse(report.html)
    assert page.script_srcs == []  # nothing loaded from a CDN or a file
    assert report.html.count(get_plotlyjs()[:500]) == 1  # plotly.js inlined once
    assert report.html.count('class="plotly-graph-div"') == 5
    for code in ("build_weekly_review(", "from analytics", "pio.renderers", "display(Markdown"):
        assert code not in report.html
    assert "application/vnd.tracewatch.summary+json" not in report.html  # Slack-only cell


def test_kpis_match_tracewatch_metrics(report: Report, store: Store) -> None:
    metrics = store.metrics
    page = _parse(report.html)
    assert _row(page, "requests", WEEK)[WEEK] == f"{metrics['num_requests']:,}"
    assert _row(page, "cost", WEEK)[WEEK] == f"${metrics['cost_usd_total']:,.2f}"
    assert _row(page, "p95 latency", WEEK)[WEEK] == f"{metrics['latency_p95_ms']:,.0f} ms"
    assert _row(page, "error rate", WEEK)[WEEK] == f"{metrics['error_rate']:.1%}"
    # The previous week (2026-W45) has no traffic: nothing can be called better or worse.
    assert _row(page, "grounded rate", WEEK)["verdict"] == "insufficient data"
    assert _row(page, "requests", WEEK)["2026-W45"] == "0"


def test_per_service_figures_match_tracewatch_metrics(report: Report, store: Store) -> None:
    page = _parse(report.html)
    for row in store.metrics_by_service:
        service = row["service_name"]
        assert _row(page, service, "p95")["p95"] == f"{row['latency_p95_ms']:,.0f} ms"
        cost = _row(page, service, "per request")
        assert cost["requests"] == f"{row['num_requests']:,}"
        assert cost["cost"] == f"${row['cost_usd_total']:,.2f}"


def test_alerts_failure_modes_and_reading_list(report: Report, store: Store) -> None:
    page = _parse(report.html)
    alert = _row(page, "Tue 10 Nov 14:00Z", "likely cause")
    assert alert["rule"] == store.alert_rule and alert["severity"] == "critical"
    assert "prompt_version=v3" in alert["likely cause"]
    modes = next(t for t in page.tables if t and "failure mode" in t[0])
    assert len(modes) > 2 and {r[5] for r in modes[1:]} == {"no baseline"}
    linked = TRACE_LINK.findall(report.html.split(">Traces to read<")[1])
    assert 3 <= len(set(linked)) <= 8 and store.alert_trace_id in linked
    con = open_store(store.data_dir)
    known = {r[0] for r in con.sql("SELECT trace_id FROM traces").fetchall()}
    con.close()
    assert set(linked) <= known


def test_slack_summary_is_posted_with_the_alerts_settings(report: Report, store: Store) -> None:
    assert len(report.slack) == 1
    request = report.slack[0]
    assert request.path == "/services/T000/B000/secret"
    blocks = request.body["blocks"]
    assert blocks[0]["type"] == "header" and WEEK in blocks[0]["text"]["text"]
    text = "\n".join(b["text"]["text"] for b in blocks[1:])
    metrics = store.metrics
    assert f"{metrics['num_requests']:,} requests" in text
    assert f"cost ${metrics['cost_usd_total']:,.2f}" in text
    assert "1 fired, 0 still firing" in text
    assert str(report.path) in text
    assert not (store.data_dir / "alerts_outbox").exists() or not list(
        (store.data_dir / "alerts_outbox").glob("*.json"))


@pytest.mark.parametrize("week, message", [
    ("2026-47", "bad week '2026-47': expected YYYY-Www"),
    ("2026-W54", "bad week '2026-W54': 2026 has no week 54"),
    ("2026-W40", "no traces in week 2026-W40"),
])
def test_bad_or_empty_week_is_one_line(store: Store, tmp_path: Path, week: str,
                                       message: str) -> None:
    out = tmp_path / "report.html"
    started = time.monotonic()
    with pytest.raises(AnalyticsError) as info:
        _run_report("--week", week, "--out", str(out), "--data-dir", str(store.data_dir))
    assert str(info.value).startswith(message) and "\n" not in str(info.value)
    assert not out.exists()
    assert time.monotonic() - started < 10  # refused before any kernel starts


def test_notebook_for_one_service(store: Store) -> None:
    parameters = {"week": WEEK, "service": "doc-extraction", "data_dir": str(store.data_dir),
                  "dashboard_url": "http://127.0.0.1:8501/"}
    children_before = set(psutil.Process().children(recursive=True))  # e.g. a resource tracker
    nb = execute_notebook(NOTEBOOK, parameters)
    assert "service = 'doc-extraction'" in nb.cells[0].source
    outputs = "\n".join(str(o.get("data", {}).get("text/markdown", ""))
                        for cell in nb.cells for o in cell.get("outputs", []))
    assert f"# Weekly quality review {WEEK} — service doc-extraction" in outputs
    extraction = next(r for r in store.metrics_by_service
                      if r["service_name"] == "doc-extraction")
    assert f"p95 **{extraction['latency_p95_ms']:,.0f} ms**" in outputs
    assert "support-copilot" not in outputs and "agent" not in outputs
    figures = [o for cell in nb.cells for o in cell.get("outputs", [])
               if "application/vnd.plotly.v1+json" in o.get("data", {})]
    assert len(figures) == 5
    # the kernel was shut down
    assert set(psutil.Process().children(recursive=True)) - children_before == set()


def test_failing_cell_is_one_line(tmp_path: Path) -> None:
    v4: Any = nbformat.v4  # untyped
    nb = v4.new_notebook(cells=[v4.new_code_cell("week = None", metadata={"tags": ["parameters"]}),
                                v4.new_code_cell("raise ValueError(f'no data for {week}')")],
                         metadata={"kernelspec": {"name": "python3", "display_name": "Python 3"}})
    path = tmp_path / "broken.ipynb"
    nbformat.write(nb, str(path))  # type: ignore[no-untyped-call]
    with pytest.raises(AnalyticsError) as info:
        execute_notebook(path, {"week": "2026-W46"})
    assert str(info.value) == ("notebook broken.ipynb failed in cell 1: "
                               "ValueError: no data for 2026-W46")


def test_text_from_traces_cannot_inject_html() -> None:
    v4: Any = nbformat.v4  # untyped
    nb = v4.new_notebook(cells=[
        v4.new_markdown_cell("## Title <script>alert(1)</script>"),
        v4.new_code_cell("x", outputs=[v4.new_output(
            "display_data", data={"text/markdown": "| a |\n|---|\n| <img src=x onerror=1> |"})]),
    ])
    page = render_notebook_html(nb, "t")
    assert "<script>alert" not in page and "<img src=x" not in page
    assert "&lt;script&gt;" in page and "<table>" in page


@pytest.mark.parametrize("module", ["analytics.weekly", "analytics.weekly_format"])
def test_doctests(module: str) -> None:
    import importlib

    result = doctest.testmod(importlib.import_module(module))
    assert result.attempted > 0 and result.failed == 0


def test_notebook_is_stored_clean_with_a_parameters_cell() -> None:
    nb: Any = nbformat.read(str(NOTEBOOK), as_version=4)  # type: ignore[no-untyped-call]
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert all(not cell.outputs and cell.execution_count is None for cell in code)
    assert "parameters" in code[0].metadata.get("tags", [])
    assert 'week = "2026-W47"' in code[0].source and "service = None" in code[0].source
    assert 'data_dir = "data"' in code[0].source
