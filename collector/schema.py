"""The store's layout and table schemas, owned by the writer.

Readers (analytics, alerts, app) may import this module and nothing else from collector/.

Layout of the data directory::

    data/
      spans/         Delta table, partitioned by ``day`` (UTC date of start_time)
      evaluations/   Delta table, partitioned by ``day`` (scores written by analytics/)
      alerts/        Delta table (alert history, written by alerts/)
      spool/         raw payloads awaiting redaction (0700, collector only)
      cache/         caches of libraries (tldextract), never user data
      writer.lock    held by the one process that writes spans

Timestamps are UTC ``TIMESTAMP`` (Arrow timestamp[us] without a zone), ids lowercase hex.
A span's retrieved documents and the evaluations it carries are nested list columns of the
span row, so one Delta commit makes a span and everything about it visible at once (the
``retrievals`` view unnests them).  ``span_key`` is a 64-bit digest of (trace_id, span_id) that the writer uses to store a span
once; it is not part of the SQL views.
"""

from __future__ import annotations

from hashlib import blake2b
from pathlib import Path

import pyarrow as pa

SPANS_TABLE = "spans"
EVALUATIONS_TABLE = "evaluations"
ALERTS_TABLE = "alerts"
PARTITION_COLUMN = "day"

_TS = pa.timestamp("us")

SPANS_SCHEMA = pa.schema(
    [
        ("trace_id", pa.string()),
        ("span_id", pa.string()),
        ("span_key", pa.int64()),
        ("parent_span_id", pa.string()),
        ("name", pa.string()),
        ("span_kind", pa.string()),
        ("service_name", pa.string()),
        ("start_time", _TS),
        ("end_time", _TS),
        ("duration_ms", pa.float64()),
        ("status_code", pa.string()),
        ("status_message", pa.string()),
        ("model_name", pa.string()),
        ("provider", pa.string()),
        ("prompt_version", pa.string()),
        ("prompt_template", pa.string()),
        ("prompt_tokens", pa.int64()),
        ("completion_tokens", pa.int64()),
        ("cached_prompt_tokens", pa.int64()),
        ("total_tokens", pa.int64()),
        ("cost_usd_reported", pa.float64()),
        ("fallback_marked", pa.bool_()),
        ("fallback_from", pa.string()),
        ("session_id", pa.string()),
        ("user_id", pa.string()),
        ("input_text", pa.string()),
        ("output_text", pa.string()),
        ("attributes", pa.string()),
        (
            "retrievals",
            pa.list_(
                pa.struct(
                    [
                        ("position", pa.int32()),
                        ("document_id", pa.string()),
                        ("score", pa.float64()),
                        ("content", pa.string()),
                    ]
                )
            ),
        ),
        (
            "evaluations",
            pa.list_(
                pa.struct(
                    [
                        ("name", pa.string()),
                        ("score", pa.float64()),
                        ("label", pa.string()),
                        ("explanation", pa.string()),
                    ]
                )
            ),
        ),
        ("redacted_count", pa.int32()),
        ("text_withheld", pa.bool_()),
        ("ingested_at", _TS),
        (PARTITION_COLUMN, pa.date32()),
    ]
)

# Parquet columns of the spans files that are dictionary-encoded: those with few distinct
# values in a file.  Encoding the others too (texts, ids: nearly every value distinct) only
# cost memory and CPU: a worker staging a 12-request group peaked 4 MB lower without, and
# the files grew 0.6 %.
SPANS_DICTIONARY_COLUMNS: list[str] = [
    "name", "span_kind", "service_name", "status_code", "model_name", "provider",
    "prompt_version", "prompt_template", "fallback_from", "session_id", "user_id",
    "retrievals.list.element.document_id", "retrievals.list.element.content",
    "evaluations.list.element.name", "evaluations.list.element.label",
]

EVALUATIONS_SCHEMA = pa.schema(
    [
        ("trace_id", pa.string()),
        ("span_id", pa.string()),
        ("name", pa.string()),
        ("score", pa.float64()),
        ("label", pa.string()),
        ("explanation", pa.string()),
        ("source", pa.string()),
        ("created_at", _TS),
        (PARTITION_COLUMN, pa.date32()),
    ]
)

ALERTS_SCHEMA = pa.schema(
    [
        ("alert_id", pa.string()),
        ("rule", pa.string()),
        ("fingerprint", pa.string()),
        ("state", pa.string()),
        ("severity", pa.string()),
        ("metric", pa.string()),
        ("group_key", pa.string()),
        ("value", pa.float64()),
        ("baseline", pa.float64()),
        ("started_at", _TS),
        ("resolved_at", _TS),
        ("notified_at", _TS),
        ("detail", pa.string()),
    ]
)

TABLE_SCHEMAS: dict[str, pa.Schema] = {
    SPANS_TABLE: SPANS_SCHEMA,
    EVALUATIONS_TABLE: EVALUATIONS_SCHEMA,
    ALERTS_TABLE: ALERTS_SCHEMA,
}

PARTITIONED_TABLES = frozenset({SPANS_TABLE, EVALUATIONS_TABLE})

# Commit metadata key holding the spool sequence numbers (ranges) a commit made durable.
COMMIT_SPOOL_SEQ_KEY = "tracewatch.spool_seq"


def table_path(data_dir: Path, table: str) -> Path:
    """Folder of one Delta table inside the data directory."""
    return data_dir / table


def spool_path(data_dir: Path) -> Path:
    return data_dir / "spool"


def cache_path(data_dir: Path) -> Path:
    return data_dir / "cache"


def writer_lock_path(data_dir: Path) -> Path:
    return data_dir / "writer.lock"


def span_key(trace_id: str, span_id: str) -> int:
    """64-bit signed BLAKE2b digest of a span's identity (trace_id, span_id).

    A hash rather than bits of the ids themselves, because some SDKs and tests use
    sequential ids.  Two distinct spans collide with probability ~n^2 / 2^65 (3e-6 at 10M
    spans).
    """
    digest = blake2b(f"{trace_id}{span_id}".encode("ascii"), digest_size=8).digest()
    return int.from_bytes(digest, "little", signed=True)
