"""A small store for the dashboard tests: the metrics test store plus what the app shows
beyond KPIs (prompt templates for a diff, a chat-message trace, alerts history).

Written with the real ``StoreWriter`` and ``deltalake`` (no mocks).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import pyarrow as pa
from deltalake import write_deltalake

from collector.records import RetrievedDocument, Span, SpanBatch, SpanKind
from collector.schema import ALERTS_SCHEMA, ALERTS_TABLE, table_path
from collector.writer import StoreWriter
from tests.metrics_store import T0, _ns, build_metrics_store

TEMPLATE_V1 = "You are a support assistant.\nAnswer from the articles.\nBe brief."
TEMPLATE_V2 = ("You are a support assistant.\nAnswer only from the articles below.\nBe brief.\n"
               "Cite the article id.")
NUM_CHANGED_LINES = 2  # line 2 replaced, line 4 added
CHAT_TRACE_ID = "c" * 32
CHAT_MESSAGES = [{"role": "system", "content": "You are a support assistant."},
                 {"role": "user", "content": "How do I get a refund?"}]
ALERT_START = T0 + timedelta(days=1, hours=3)


def _template_spans() -> list[Span]:
    spans = []
    for i, (version, template) in enumerate((("v1", TEMPLATE_V1), ("v2", TEMPLATE_V2))):
        start = T0 + timedelta(hours=1 + i)
        spans.append(Span(
            trace_id="d" * 31 + str(i), span_id="d" * 15 + str(i), parent_span_id=None,
            name="template-carrier", span_kind=SpanKind.LLM, service_name="copilot",
            start_time_unix_nano=_ns(start),
            end_time_unix_nano=_ns(start + timedelta(milliseconds=200)), status_code="OK",
            model_name="gpt-4o-mini", provider="openai", prompt_version=version,
            prompt_template=template, prompt_tokens=100, completion_tokens=10,
            total_tokens=110))
    return spans


def _chat_trace() -> list[Span]:
    start = T0 + timedelta(hours=2, minutes=30)
    root = Span(
        trace_id=CHAT_TRACE_ID, span_id="c0" * 8, parent_span_id=None, name="answer_question",
        span_kind=SpanKind.CHAIN, service_name="copilot", start_time_unix_nano=_ns(start),
        end_time_unix_nano=_ns(start + timedelta(milliseconds=900)), status_code="OK",
        input_text="How do I get a refund?", output_text="Refunds go back to your card.",
        attributes={"tenant": "t1"})
    retriever = Span(
        trace_id=CHAT_TRACE_ID, span_id="c1" * 8, parent_span_id=root.span_id,
        name="retrieve", span_kind=SpanKind.RETRIEVER, service_name="copilot",
        start_time_unix_nano=_ns(start + timedelta(milliseconds=10)),
        end_time_unix_nano=_ns(start + timedelta(milliseconds=60)), status_code="OK",
        retrievals=(RetrievedDocument(0, "kb-1003", 0.91, "Refunds go to the card."),
                    RetrievedDocument(1, "kb-1143", 0.42, "Invoices are monthly.")))
    llm = Span(
        trace_id=CHAT_TRACE_ID, span_id="c2" * 8, parent_span_id=root.span_id, name="chat",
        span_kind=SpanKind.LLM, service_name="copilot",
        start_time_unix_nano=_ns(start + timedelta(milliseconds=70)),
        end_time_unix_nano=_ns(start + timedelta(milliseconds=880)), status_code="OK",
        model_name="gpt-4o-mini", provider="openai", prompt_version="v2",
        prompt_tokens=500, completion_tokens=40, total_tokens=540,
        input_text=json.dumps(CHAT_MESSAGES), output_text="Refunds go back to your card.")
    return [root, retriever, llm]


def write_alerts(data_dir: Path) -> None:
    rows = [
        {"alert_id": "a1", "rule": "p95 latency drift", "fingerprint": "f1", "state": "firing",
         "severity": "critical", "metric": "latency_p95_ms", "group_key": "service_name=copilot",
         "value": 2400.0, "baseline": 1100.0, "started_at": ALERT_START, "resolved_at": None,
         "notified_at": ALERT_START, "detail": json.dumps({"window": "1h"})},
        {"alert_id": "a2", "rule": "error rate", "fingerprint": "f2", "state": "resolved",
         "severity": "warning", "metric": "error_rate", "group_key": "model_name=gpt-4o",
         "value": 0.2, "baseline": 0.05, "started_at": T0 + timedelta(hours=10),
         "resolved_at": T0 + timedelta(hours=11), "notified_at": None, "detail": None},
    ]
    write_deltalake(str(table_path(data_dir, ALERTS_TABLE)),
                    pa.Table.from_pylist(rows, schema=ALERTS_SCHEMA), mode="append")


def build_app_store(data_dir: Path) -> None:
    build_metrics_store(data_dir)
    writer = StoreWriter(data_dir)
    try:
        writer.write(SpanBatch(tuple(_template_spans() + _chat_trace())), [])
    finally:
        writer.close()
    write_alerts(data_dir)


def last_trace_start(data_dir: Path) -> datetime:
    from analytics.views import open_store

    con = open_store(data_dir)
    try:
        value: datetime = con.execute("SELECT max(start_time) FROM traces").fetchone()[0]
        return value
    finally:
        con.close()
