"""The built-in groundedness scorer: per-claim rules, and score_store through the real store."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest

from analytics.groundedness import score_answer, score_store, split_sentences
from analytics.views import open_store
from collector.records import RetrievedDocument, Span, SpanBatch, SpanEvaluation, SpanKind
from collector.writer import StoreWriter

DOCS = [
    "Refunds - Policy. Annual plans can be refunded within 14 days of purchase. "
    "Refunds are returned to the original payment method in 5-10 business days.",
    "SSO. SAML single sign-on is available on the Enterprise plan. "
    "The public API allows 1,000 requests per minute per workspace.",
]
IDS = ["kb-1", "kb-2"]


@pytest.mark.parametrize(
    ("answer", "score"),
    [
        ("You can get a refund on an annual plan within 14 days of purchase.", 1.0),
        ("Annual plans are refundable within 30 days of purchase.", 0.0),  # wrong number
        ("SAML single sign-on is included in the Team plan.", 0.0),  # wrong entity
        ("SAML single sign-on is included in the Enterprise plan (see kb-2).", 1.0),
        ("SAML single sign-on is included in the Enterprise plan (see kb-9).", 0.0),  # cited
        ("The API allows 1000 requests per minute for each workspace.", 1.0),  # 1,000 = 1000
        ("Happy to help! Annual plans can be refunded within 14 days of purchase. "
         "Refunds go back to your card within 24 hours.", 0.5),
        ("Your refunds are returned to the original payment method in 5-10 business days.\n"
         "- SAML single sign-on is available on the Pro plan.", 0.5),
    ],
)
def test_score_answer_rules(answer: str, score: float) -> None:
    assert score_answer(answer, DOCS, IDS).score == pytest.approx(score)


def test_answer_without_claims_or_documents_is_not_scored() -> None:
    assert score_answer("Thanks! Hope that helps.", DOCS, IDS).score is None
    assert score_answer("", DOCS, IDS).score is None
    result = score_answer("Annual plans can be refunded within 14 days of purchase.", [], [])
    assert result.score == 0.0 and result.num_claims == 1


def test_split_sentences() -> None:
    text = "First one is here. Second one, v2.5 of it! Third?\n- a bullet item here\n2) numbered"
    assert split_sentences(text) == [
        "First one is here.", "Second one, v2.5 of it!", "Third?", "a bullet item here",
        "numbered",
    ]


def _ns(moment: datetime) -> int:
    return int((moment - datetime(1970, 1, 1)).total_seconds() * 1e6) * 1000


def _trace(trace_id: str, start: datetime, answer: str | None, docs: list[str],
           evaluation: float | None = None) -> list[Span]:
    root = Span(
        trace_id=trace_id, span_id="1" * 16, parent_span_id=None, name="rag",
        span_kind=SpanKind.CHAIN, service_name="copilot", start_time_unix_nano=_ns(start),
        end_time_unix_nano=_ns(start + timedelta(seconds=2)), status_code="OK",
        output_text=answer,
        evaluations=(() if evaluation is None
                     else (SpanEvaluation("groundedness", evaluation, None, None),)),
    )
    retriever = Span(
        trace_id=trace_id, span_id="2" * 16, parent_span_id="1" * 16, name="retrieve",
        span_kind=SpanKind.RETRIEVER, service_name="copilot",
        start_time_unix_nano=_ns(start), end_time_unix_nano=_ns(start + timedelta(seconds=1)),
        status_code="OK",
        retrievals=tuple(RetrievedDocument(i, f"kb-{i + 1}", 0.5, d) for i, d in enumerate(docs)),
    )
    return [root, retriever]


def test_score_store_writes_builtin_evaluations_once(tmp_path: Path) -> None:
    data_dir = tmp_path / "store"
    start = datetime(2025, 3, 3, 9, 0)
    spans = [
        *_trace("a" * 32, start, "Annual plans can be refunded within 14 days of purchase.", DOCS),
        *_trace("b" * 32, start, "Annual plans can be refunded within 60 days of purchase.", DOCS),
        # A score from an evaluator span takes precedence over the built-in one.
        *_trace("c" * 32, start + timedelta(days=1),
                "Annual plans can be refunded within 60 days of purchase.", DOCS, evaluation=0.9),
        *_trace("d" * 32, start, None, DOCS),  # no answer
        *_trace("e" * 32, start, "Annual plans can be refunded within 14 days.", []),  # no docs
    ]
    writer = StoreWriter(data_dir)
    try:
        writer.write(SpanBatch(tuple(spans)), [])
    finally:
        writer.close()

    first = score_store(data_dir)
    assert (first.num_scored, first.num_without_claims) == (3, 0)
    assert score_store(data_dir).num_scored == 0  # nothing is scored twice

    con = open_store(data_dir)
    try:
        rows = dict(con.execute(
            "SELECT trace_id, groundedness FROM traces ORDER BY trace_id").fetchall())
        evals = con.execute(
            "SELECT trace_id, span_id, score, label, explanation, source FROM evaluations "
            "WHERE source = 'builtin' ORDER BY trace_id").fetchall()
    finally:
        con.close()
    assert rows == {"a" * 32: 1.0, "b" * 32: 0.0, "c" * 32: 0.9, "d" * 32: None, "e" * 32: None}
    assert evals == [
        ("a" * 32, "1" * 16, 1.0, "grounded", "1 of 1 claims supported", "builtin"),
        ("b" * 32, "1" * 16, 0.0, "ungrounded", "0 of 1 claims supported", "builtin"),
        ("c" * 32, "1" * 16, 0.0, "ungrounded", "0 of 1 claims supported", "builtin"),
    ]
