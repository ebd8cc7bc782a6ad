"""``tracewatch report``: run the weekly quality review notebook headless and write HTML.

    tracewatch report --week 2026-W47 [--service S] [--out report.html] [--data-dir D]
                      [--notify] [--notebook F] [--timeout SECONDS]

Steps: check the week (a bad ``YYYY-Www`` or a week without traces is one line on stderr,
before any kernel starts); copy ``notebooks/weekly_quality_review.ipynb`` in memory and
rewrite its ``parameters`` cell (papermill style: ``week``, ``service``, ``data_dir``,
``dashboard_url``); execute it with nbclient in a fresh ``python3`` kernel whose working
directory is the current one; write the outputs as one self-contained HTML page
(``tracewatch.report_html``: code hidden, plotly.js inlined once, no network needed to open
it).  The output file is replaced atomically, so a failed run never leaves half a report.

``--notify`` posts the notebook's short summary (its ``remove_cell``-tagged last cell) to
Slack with the alerts' settings (``AlertsConfig``: webhook from
``TRACEWATCH_SLACK_WEBHOOK_URL`` or ``slack_webhook_url_file``) through
``alerts.slack.SlackNotifier``: retried, and kept in the outbox when Slack cannot be reached.

Errors (``AnalyticsError``): bad week, empty week, missing notebook, a cell that fails
(named by its index and exception type, never with trace text).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from analytics.errors import AnalyticsError

logger = logging.getLogger(__name__)

DEFAULT_NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "weekly_quality_review.ipynb"
SUMMARY_MIME = "application/vnd.tracewatch.summary+json"
PARAMETERS_TAG = "parameters"
DEFAULT_TIMEOUT_S = 600


def add_report_parser(subparsers: Any) -> None:
    """Register ``tracewatch report`` on the CLI's sub-parsers."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "report", help="weekly quality review: run the notebook, write a self-contained HTML",
        description="Run notebooks/weekly_quality_review.ipynb for one ISO week and write "
                    "its outputs as one HTML file (code hidden, charts included).")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="store directory (default: $TRACEWATCH_DATA_DIR or ./data)")
    parser.add_argument("--week", required=True, help="ISO week, YYYY-Www (e.g. 2026-W47)")
    parser.add_argument("--service", default=None, help="only this service_name")
    parser.add_argument("--out", type=Path, default=Path("report.html"),
                        help="HTML file to write (default report.html)")
    parser.add_argument("--notify", action="store_true",
                        help="also post a short summary to Slack (the alerts' webhook)")
    parser.add_argument("--notebook", type=Path, default=None,
                        help="notebook to run (default: the bundled weekly review)")
    parser.add_argument("--timeout", type=int, default=DEFAULT_TIMEOUT_S,
                        help=f"seconds per notebook cell (default {DEFAULT_TIMEOUT_S})")
    parser.set_defaults(handler=run_report)


def run_report(args: argparse.Namespace) -> int:
    from alerts.config import load_alerts_config
    from alerts.slack import SlackNotifier, build_digest_message
    from analytics.views import open_store
    from analytics.weekly import require_week_kpis
    from collector.config import load_collector_config

    data_dir = load_collector_config(data_dir=args.data_dir).data_dir.resolve()
    alerts_config = load_alerts_config(data_dir=data_dir) if args.notify else None
    if not data_dir.exists():
        raise AnalyticsError(f"no store at {data_dir}")
    con = open_store(data_dir)
    try:
        require_week_kpis(con, args.week, args.service)  # one line, before any kernel starts
    finally:
        con.close()
    notebook = args.notebook or DEFAULT_NOTEBOOK
    dashboard_url = (alerts_config or load_alerts_config(data_dir=data_dir)).dashboard_url
    parameters = {"week": args.week, "service": args.service, "data_dir": str(data_dir),
                  "dashboard_url": dashboard_url}
    nb = execute_notebook(notebook, parameters, timeout_s=args.timeout)
    title = f"tracewatch weekly quality review {args.week}" + (
        f" — {args.service}" if args.service else "")
    write_report(nb, args.out, title, footer=f"Store: {data_dir}.")
    print(f"wrote {args.out} ({args.out.stat().st_size:,} bytes): weekly review {args.week}"
          + (f" for {args.service}" if args.service else ""))
    if alerts_config is not None:
        summary_title, sections = extract_summary(nb)
        sections.append(("Report", [f"• {args.out.resolve()}"]))
        report = SlackNotifier(alerts_config).deliver(
            [build_digest_message(summary_title, sections)])
        if report.num_queued or report.num_rejected:
            print(f"tracewatch: Slack summary not delivered ({report.num_queued} queued, "
                  f"{report.num_rejected} rejected); it waits in the alerts outbox",
                  file=sys.stderr)
        else:
            print("posted the summary to Slack")
    return 0


def inject_parameters(nb: Any, parameters: dict[str, Any]) -> None:
    """Rewrite the cell tagged ``parameters`` with ``name = repr(value)`` lines."""
    for cell in nb.cells:
        if cell.cell_type == "code" and PARAMETERS_TAG in cell.get("metadata", {}).get("tags", []):
            lines = [f"{name} = {value!r}" for name, value in parameters.items()]
            cell.source = "# Parameters injected by tracewatch report\n" + "\n".join(lines)
            return
    raise AnalyticsError("the notebook has no cell tagged 'parameters'")


def execute_notebook(path: Path, parameters: dict[str, Any], timeout_s: int = DEFAULT_TIMEOUT_S,
                     cwd: Path | None = None) -> Any:
    """Read ``path``, inject ``parameters``, run every cell; the executed notebook."""
    try:
        import nbformat
        from jupyter_client.manager import AsyncKernelManager
        from nbclient import NotebookClient
    except ImportError as exc:
        raise AnalyticsError(f"tracewatch report needs {exc.name}: "
                             "pip install nbclient nbformat ipykernel") from None

    try:
        nb = nbformat.read(str(path), as_version=4)  # type: ignore[no-untyped-call]
    except (OSError, ValueError) as exc:
        raise AnalyticsError(f"cannot read notebook {path}: {type(exc).__name__}") from None
    inject_parameters(nb, parameters)
    # The kernel talks over Unix sockets in a private temporary directory, not over TCP on
    # 127.0.0.1: no port to take, and the outputs (trace text) never cross a network socket.
    # nbclient creates, owns and shuts down the kernel (a kernel manager passed in would
    # outlive the run).
    with tempfile.TemporaryDirectory(prefix="tracewatch-kernel-") as sockets:
        prefix = str(Path(sockets) / "kernel")

        class IpcKernelManager(AsyncKernelManager):
            def __init__(self, **kwargs: Any) -> None:
                super().__init__(transport="ipc", ip=prefix, **kwargs)

        client = NotebookClient(nb, kernel_name="python3", kernel_manager_class=IpcKernelManager,
                                timeout=timeout_s, shutdown_kernel="graceful",
                                resources={"metadata": {"path": str(cwd or Path.cwd())}})
        _run(client, nb, path)
    return nb


def _run(client: Any, nb: Any, path: Path) -> None:
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    try:
        client.execute()
    except CellExecutionError as exc:
        index = _failed_cell(nb)
        raise AnalyticsError(f"notebook {path.name} failed in cell {index}: "
                             f"{exc.ename}: {_first_line(exc.evalue)}") from None
    except (CellTimeoutError, DeadKernelError) as exc:
        raise AnalyticsError(f"notebook {path.name} did not finish: "
                             f"{type(exc).__name__}") from None


def _failed_cell(nb: Any) -> int | str:
    for index, cell in enumerate(nb.cells):
        if any(o.get("output_type") == "error" for o in cell.get("outputs", [])):
            return index
    return "?"


def _first_line(text: str) -> str:
    line = (text or "").strip().splitlines()[0] if (text or "").strip() else ""
    return line[:300]


def write_report(nb: Any, out: Path, title: str, footer: str = "") -> None:
    """Render ``nb`` and replace ``out`` atomically."""
    from tracewatch.report_html import render_notebook_html

    page = render_notebook_html(nb, title, footer)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, out)


def extract_summary(nb: Any) -> tuple[str, list[tuple[str, list[str]]]]:
    """The Slack summary the notebook displayed (``SUMMARY_MIME``): title and sections."""
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if SUMMARY_MIME in data:
                body = data[SUMMARY_MIME]
                sections = [(str(heading), [str(line) for line in lines])
                            for heading, lines in body["sections"]]
                return str(body["title"]), sections
    raise AnalyticsError("the notebook displayed no summary for Slack")
