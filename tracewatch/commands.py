"""Handlers of the ``tracewatch`` commands: each reads its arguments, calls one stage."""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import hashlib
import signal
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from analytics.errors import AnalyticsError
from collector.errors import TracewatchError

if TYPE_CHECKING:
    from collector.config import CollectorConfig
    from collector.ingest import IngestReport


def _config(args: argparse.Namespace, **extra: Any) -> CollectorConfig:
    from collector.config import load_collector_config

    overrides: dict[str, Any] = {"data_dir": getattr(args, "data_dir", None), **extra}
    if getattr(args, "no_redaction", False):
        config = load_collector_config(**overrides)
        return config.model_copy(
            update={"redaction": config.redaction.model_copy(update={"enabled": False})}
        )
    return load_collector_config(**overrides)


# --------------------------------------------------------------------------- collector


def run_collector_command(args: argparse.Namespace) -> int:
    """Validate the configuration, then become the collector process (collector.serve)."""
    from collector.serve import exec_collector

    exec_collector(_config(args, http=args.http, grpc=args.grpc).run_config())


# --------------------------------------------------------------------------- ingest


def ingest_paths(config: CollectorConfig, paths: list[Path], progress: bool) -> IngestReport:
    from collector.allocator import choose_allocators

    choose_allocators()
    from collector.ingest import ingest_files, list_input_files
    from collector.pipeline import build_writer
    from collector.workers import PipelineExecutor

    files = list_input_files(paths)
    if not files:
        raise TracewatchError("no input files found in " + ", ".join(str(p) for p in paths))
    run_config = config.run_config()
    writer = build_writer(run_config)
    executor = PipelineExecutor(run_config, run_config.workers)
    try:
        return ingest_files(files, executor, writer, progress=progress)
    finally:
        executor.close()
        writer.close()


def run_ingest(args: argparse.Namespace) -> int:
    config = _config(args)
    report = ingest_paths(config, args.paths, progress=not args.quiet and sys.stderr.isatty())
    print(
        f"ingested {report.num_spans_read} spans from {report.num_files} file(s): "
        f"{report.num_spans_written} new, {report.num_spans_read - report.num_spans_written - report.num_spans_rejected} "
        f"already stored, {report.num_spans_rejected} rejected; "
        f"{report.num_entities_redacted} entities redacted, {report.num_spans_withheld} spans withheld"
    )
    if report.errors:
        print(f"tracewatch: error: {len(report.errors)} payload(s) skipped; first: {report.errors[0]}",
              file=sys.stderr)
        return 1
    return 0


# --------------------------------------------------------------------------- sql


def run_sql(args: argparse.Namespace) -> int:
    import duckdb

    from analytics.views import open_store

    config = _config(args)
    con = open_store(config.data_dir, args.prices)
    try:
        relation = con.execute(args.query)
    except duckdb.Error as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise AnalyticsError(f"SQL: {first_line}") from None
    if relation.description is None:
        return 0
    columns = [column[0] for column in relation.description]
    rows = relation.fetchall()
    write_rows(columns, rows, args.format)
    return 0


def write_rows(columns: list[str], rows: list[tuple[Any, ...]], fmt: str) -> None:
    import orjson

    out = sys.stdout
    if fmt == "json":
        records = [dict(zip(columns, row)) for row in rows]
        out.write(orjson.dumps(records, default=str, option=orjson.OPT_NAIVE_UTC).decode() + "\n")
    elif fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(rows)
    else:
        out.write(format_table(columns, rows) + "\n")


def format_table(columns: list[str], rows: list[tuple[Any, ...]], max_width: int = 60) -> str:
    def cell(value: Any) -> str:
        text = "NULL" if value is None else str(value)
        text = text.replace("\n", " ")
        return text if len(text) <= max_width else text[: max_width - 1] + "…"

    table = [[cell(v) for v in row] for row in rows]
    widths = [len(c) for c in columns]
    for row in table:
        widths = [max(w, len(v)) for w, v in zip(widths, row)]
    line = "  ".join(c.ljust(w) for c, w in zip(columns, widths))
    rule = "  ".join("-" * w for w in widths)
    body = ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in table]
    footer = f"({len(rows)} row{'s' if len(rows) != 1 else ''})"
    return "\n".join([line, rule, *body, footer])


# --------------------------------------------------------------------------- retention


def run_retention(args: argparse.Namespace) -> int:
    from collector.retention import cutoff_before, delete_older_than, parse_duration_s

    config = _config(args)
    older_than_s = parse_duration_s(args.older_than)
    cutoff = cutoff_before(datetime.now(timezone.utc).replace(tzinfo=None), older_than_s)
    result = delete_older_than(config.data_dir, cutoff)
    print(
        f"retention: deleted {result.num_rows_deleted} rows older than "
        f"{cutoff.isoformat(timespec='seconds')}Z, removed {result.num_files_removed} files"
    )
    return 0


# --------------------------------------------------------------------------- samples


def run_samples_generate(args: argparse.Namespace) -> int:
    from samples.generate import generate_samples

    if args.days < 1 or args.scale <= 0:
        raise TracewatchError("--days must be >= 1 and --scale > 0")
    summary = generate_samples(args.out, days=args.days, seed=args.seed, scale=args.scale)
    print(f"samples written to {args.out}: " + ", ".join(
        f"{key}={value}" for key, value in summary.items() if isinstance(value, (int, float, str))
    ))
    return 0


# --------------------------------------------------------------------------- demo


def _fingerprint(files: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in files:
        stat = path.stat()
        digest.update(f"{path.name}:{stat.st_size}".encode())
    return digest.hexdigest()[:16]


def print_summary(config: CollectorConfig) -> None:
    from analytics.views import open_store

    con = open_store(config.data_dir)
    row = con.execute(
        """
        SELECT count(*), count(DISTINCT service_name), min(start_time), max(start_time),
               sum(cost_usd), avg(CASE WHEN status_code = 'ERROR' THEN 1 ELSE 0 END),
               quantile_cont(duration_ms, 0.95), avg(has_fallback::INT)
        FROM traces
        """
    ).fetchone()
    spans = con.execute(
        "SELECT count(*), sum(redacted_count), count(*) FILTER (WHERE span_kind = 'LLM'), "
        "count(*) FILTER (WHERE span_kind = 'LLM' AND cost_usd IS NULL) FROM spans"
    ).fetchone()
    assert row is not None and spans is not None
    print("tracewatch store summary")
    print(f"  traces            {row[0]:,} from {row[1]} services, {row[2]} .. {row[3]} UTC")
    print(f"  spans             {spans[0]:,} ({spans[2]:,} LLM calls, {spans[3] or 0:,} unpriced)")
    print(f"  cost              ${(row[4] or 0):,.2f}")
    print(f"  error rate        {(row[5] or 0):.2%}   fallback rate {(row[7] or 0):.2%}")
    print(f"  p95 latency       {(row[6] or 0):,.0f} ms")
    print(f"  entities redacted {spans[1] or 0:,}")
    by_service = con.execute(
        "SELECT service_name, count(*), round(sum(cost_usd), 2) FROM traces GROUP BY 1 ORDER BY 1"
    ).fetchall()
    for service, count, cost in by_service:
        print(f"    {service:<20} {count:>8,} traces  ${cost or 0:,.2f}")


def prepare_demo_analytics(config: CollectorConfig) -> None:
    """Groundedness scores, failure-mode clusters and the alert history of the sample data."""
    from analytics.clusters import compute_clusters
    from analytics.groundedness import score_store
    from analytics.views import open_store
    from tracewatch.cli import main as cli_main

    scored = score_store(config.data_dir)
    print(f"demo: groundedness scored for {scored.num_scored:,} traces", flush=True)
    con = open_store(config.data_dir)
    first, last = con.execute("SELECT min(start_time), max(end_time) FROM traces").fetchone() or (None, None)
    con.close()
    if first is None or last is None:
        return
    result = compute_clusters(config.data_dir, first, last + timedelta(seconds=1))
    print(f"demo: {len(result.clusters)} failure modes found", flush=True)
    start = first.replace(minute=0, second=0, microsecond=0)
    end = last.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    with contextlib.redirect_stdout(io.StringIO()):  # the demo prints a count, not every event
        code = cli_main(["alerts", "replay", "--from", start.isoformat(), "--to", end.isoformat(),
                         "--record", "--data-dir", str(config.data_dir), "--format", "csv"])
    if code != 0:
        raise TracewatchError("demo: the alert replay over the sample data failed")
    con = open_store(config.data_dir)
    num_alerts = (con.execute("SELECT count(*) FROM alerts").fetchone() or (0,))[0]
    con.close()
    print(f"demo: {num_alerts} alerts recorded by replaying the rules over the samples", flush=True)


def run_demo(args: argparse.Namespace) -> int:
    from collector.ingest import list_input_files
    from tracewatch.app_command import DEFAULT_PORT, start_app

    config = _config(args)
    samples_dir: Path = args.samples
    if not samples_dir.is_dir() or not list_input_files([samples_dir]):
        from samples.generate import generate_samples

        print(f"demo: generating sample traces into {samples_dir} ...", flush=True)
        generate_samples(samples_dir)
    files = list_input_files([samples_dir])
    marker = config.data_dir / ".demo_ingested"
    fingerprint = _fingerprint(files)
    if not marker.is_file() or marker.read_text() != fingerprint:
        print(f"demo: ingesting {len(files)} sample files into {config.data_dir} "
              "(redaction on; the first run takes several minutes) ...", flush=True)
        report = ingest_paths(config, files, progress=sys.stderr.isatty())
        print(f"demo: {report.num_spans_written:,} spans stored, "
              f"{report.num_entities_redacted:,} entities redacted", flush=True)
        prepare_demo_analytics(config)
        marker.write_text(fingerprint)
    print_summary(config)
    if args.no_serve:
        return 0
    app = start_app(config.data_dir, DEFAULT_PORT)
    print(f"demo: dashboard on http://127.0.0.1:{DEFAULT_PORT}\n"
          "demo: starting the collector; point an exporter at it with\n"
          f"  OTEL_EXPORTER_OTLP_ENDPOINT=http://{config.http}\n"
          "Stop with Ctrl-C.", flush=True)
    from collector.serve import start_collector_process

    collector = start_collector_process(config.run_config())
    # SIGTERM (kill, a supervisor) and SIGINT (Ctrl-C, or sent to this pid only) both stop
    # the collector the way it stops on its own: it drains, then exits; then the dashboard.
    previous = signal.signal(signal.SIGTERM, lambda *_: collector.send_signal(signal.SIGTERM))
    try:
        while True:
            try:
                return collector.wait()
            except KeyboardInterrupt:
                collector.send_signal(signal.SIGINT)
    finally:
        signal.signal(signal.SIGTERM, previous)
        if collector.poll() is None:
            collector.terminate()
            try:
                collector.wait(timeout=60)
            except subprocess.TimeoutExpired:
                collector.kill()
        app.terminate()
        app.wait(timeout=30)
