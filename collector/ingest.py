"""``tracewatch ingest``: OTLP files through the same pipeline as the collector.

Accepted files (gzip-compressed or not, recognised by content, not by name):
- JSON lines as written by the OpenTelemetry file exporter: one ``ExportTraceServiceRequest``
  in the OTLP/JSON mapping per line;
- protobuf: one serialized ``ExportTraceServiceRequest``, or a stream of them each preceded
  by its length as a 4-byte big-endian integer (the Collector's file exporter framing).
Folders are walked for files.  Spans are committed in chunks; re-running the same files
stores nothing twice.  A line or message that does not decode is counted and skipped (the
error names the file and line), the rest of the file still goes in.
"""

from __future__ import annotations

import gzip
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from collector.decode import PayloadFormat, parse_protobuf
from collector.errors import PermanentError, TracewatchError
from collector.workers import PipelineExecutor, ProcessedPayload
from collector.staging import StagedFile
from collector.writer import StoreWriter

_COMMIT_EVERY_SPANS = 50_000


@dataclass
class IngestReport:
    num_files: int = 0
    num_payloads: int = 0
    num_spans_read: int = 0
    num_spans_written: int = 0
    num_spans_rejected: int = 0
    num_entities_redacted: int = 0
    num_spans_withheld: int = 0
    errors: list[str] = field(default_factory=list)


def list_input_files(paths: list[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(
                sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")
                       and p.suffix not in (".md", ".txt") and p.name != "ground_truth.json"
                       and not p.name.startswith("ground_truth"))
            )
        elif path.is_file():
            files.append(path)
        else:
            raise TracewatchError(f"no such file or folder: {path}")
    return files


def iter_payloads(path: Path) -> Iterator[tuple[PayloadFormat, bytes, int]]:
    """(format, body, line or message number) for each request in a file."""
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError):
            raise TracewatchError(f"{path}: not a valid gzip file") from None
    stripped = data.lstrip()
    if stripped[:1] in (b"{", b""):
        for number, line in enumerate(data.splitlines(), start=1):
            if line.strip():
                yield PayloadFormat.JSON, line, number
        return
    frames = _split_length_prefixed(data)
    if frames is None:
        yield PayloadFormat.PROTOBUF, data, 1
    else:
        for number, frame in enumerate(frames, start=1):
            yield PayloadFormat.PROTOBUF, frame, number


def _split_length_prefixed(data: bytes) -> list[bytes] | None:
    frames: list[bytes] = []
    offset = 0
    while offset < len(data):
        if offset + 4 > len(data):
            return None
        size = int.from_bytes(data[offset : offset + 4], "big")
        offset += 4
        if offset + size > len(data):
            return None
        frames.append(data[offset : offset + size])
        offset += size
    if not frames:
        return None
    try:
        parse_protobuf(frames[0])
    except PermanentError:
        return None
    return frames


def ingest_files(
    paths: list[Path], executor: PipelineExecutor, writer: StoreWriter, progress: bool = True
) -> IngestReport:
    """Run every payload of the files through the pipeline workers and commit in chunks."""
    report = IngestReport()
    files = list_input_files(paths)
    report.num_files = len(files)
    max_inflight = max(2 * executor.num_workers, 1) + 2
    inflight: deque[tuple[str, Future[ProcessedPayload]]] = deque()
    pending: list[StagedFile] = []
    pending_rows = 0

    def flush() -> None:
        nonlocal pending_rows
        if pending:
            report.num_spans_written += writer.commit_files(pending, [])
            pending.clear()
            pending_rows = 0
            writer.compact_due()
            writer.maintain()

    def collect_one() -> None:
        nonlocal pending_rows
        where, future = inflight.popleft()
        try:
            result = future.result()
        except PermanentError as exc:
            report.errors.append(f"{where}: {exc}")
            return
        report.num_spans_read += result.num_spans + result.num_rejected
        report.num_spans_rejected += result.num_rejected
        report.num_entities_redacted += result.num_entities_redacted
        report.num_spans_withheld += result.num_spans_withheld
        pending.extend(result.files)
        pending_rows += result.num_spans
        if pending_rows >= _COMMIT_EVERY_SPANS:
            flush()

    total_bytes = sum(path.stat().st_size for path in files)
    with tqdm(total=total_bytes, unit="B", unit_scale=True, desc="ingest",
              disable=not progress, leave=False) as bar:
        for path in files:
            for fmt, body, number in iter_payloads(path):
                report.num_payloads += 1
                inflight.append((f"{path}:{number}", executor.submit_body(fmt, body)))
                while len(inflight) >= max_inflight:
                    collect_one()
            bar.update(path.stat().st_size)
            bar.set_postfix(spans=report.num_spans_read)
        while inflight:
            collect_one()
    flush()
    return report
