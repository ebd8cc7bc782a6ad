"""The ``tracewatch`` command line (see DESIGN.md, "Command line").

Every command takes ``--data-dir``.  Errors of input (``TracewatchError``,
``AnalyticsError``, a bad SQL query) print one line on stderr and exit 2; nothing else
prints a traceback for them.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from alerts.errors import AlertsError
from analytics.errors import AnalyticsError
from collector.errors import TracewatchError
from tracewatch import commands
from tracewatch.alerts_command import add_alerts_parser
from tracewatch.app_command import add_app_parser
from tracewatch.clusters_command import add_clusters_parser
from tracewatch.judge_command import add_judge_parser
from tracewatch.metrics_command import add_metrics_parser
from tracewatch.report_command import add_report_parser

EXIT_INPUT_ERROR = 2


def _add_data_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir", type=Path, default=None,
        help="store directory (default: $TRACEWATCH_DATA_DIR or ./data)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tracewatch", description="Private observability and quality monitoring for LLM apps."
    )
    parser.add_argument("--config", type=Path, default=None, help="tracewatch.yaml to read")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser("demo", help="build and ingest the sample traces, start the collector")
    _add_data_dir(demo)
    demo.add_argument("--samples", type=Path, default=Path("sample_traces"))
    demo.add_argument("--no-serve", action="store_true", help="ingest and summarise, then exit")
    demo.set_defaults(handler=commands.run_demo)

    collector = sub.add_parser("collector", help="run the OTLP receiver (HTTP and gRPC)")
    _add_data_dir(collector)
    collector.add_argument("--http", default=None, help="HOST:PORT (default 127.0.0.1:4318)")
    collector.add_argument("--grpc", default=None, help="HOST:PORT (default 127.0.0.1:4317); '' disables")
    collector.add_argument("--no-redaction", action="store_true",
                           help="store text as it arrives (for SDK-side redaction)")
    collector.set_defaults(handler=commands.run_collector_command)

    ingest = sub.add_parser("ingest", help="ingest OTLP files (JSON lines or protobuf, gzip ok)")
    _add_data_dir(ingest)
    ingest.add_argument("paths", nargs="+", type=Path)
    ingest.add_argument("--no-redaction", action="store_true")
    ingest.add_argument("--quiet", action="store_true", help="no progress bar")
    ingest.set_defaults(handler=commands.run_ingest)

    sql = sub.add_parser("sql", help="run a SQL query over the views")
    _add_data_dir(sql)
    sql.add_argument("query")
    sql.add_argument("--format", choices=("table", "json", "csv"), default="table")
    sql.add_argument("--prices", type=Path, default=None, help="prices override file (YAML)")
    sql.set_defaults(handler=commands.run_sql)

    retention = sub.add_parser("retention", help="delete data older than a duration")
    _add_data_dir(retention)
    retention.add_argument("--older-than", required=True, help="e.g. 30d, 12h")
    retention.set_defaults(handler=commands.run_retention)

    add_metrics_parser(sub)
    add_clusters_parser(sub)
    add_alerts_parser(sub)
    add_app_parser(sub)
    add_report_parser(sub)
    add_judge_parser(sub)

    samples = sub.add_parser("samples", help="sample traces")
    samples_sub = samples.add_subparsers(dest="samples_command", required=True)
    generate = samples_sub.add_parser("generate", help="generate the sample traces")
    _add_data_dir(generate)
    generate.add_argument("--out", type=Path, default=Path("sample_traces"))
    generate.add_argument("--days", type=int, default=14)
    generate.add_argument("--seed", type=int, default=7)
    generate.add_argument("--scale", type=float, default=1.0)
    generate.set_defaults(handler=commands.run_samples_generate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.config is not None:
        os.environ["TRACEWATCH_CONFIG"] = str(args.config)
    level = os.environ.get("TRACEWATCH_LOG_LEVEL", "INFO").upper()
    logging.basicConfig(
        # An unknown level falls back to INFO here; `tracewatch collector` refuses it (config).
        level=level if isinstance(logging.getLevelName(level), int) else "INFO",
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # Presidio logs every recognizer it loads and every spaCy label it keeps: noise.
    for noisy in ("presidio-analyzer", "presidio-anonymizer"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except (TracewatchError, AnalyticsError, AlertsError) as exc:
        print(f"tracewatch: error: {exc}", file=sys.stderr)
        return EXIT_INPUT_ERROR
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
