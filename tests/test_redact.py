"""Redaction stage: every entity type removed, JSON kept valid, allow-list, fail closed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from collector.config import RedactionConfig
from collector.records import RetrievedDocument, Span, SpanBatch, SpanEvaluation, SpanKind
from collector.redact import WITHHELD, Redactor

PEM = (
    "-----BEGIN RSA PRIVATE KEY-----\n"
    "MIIEpAIBAAKCAQEA0Z3VS5JJcds3xfn/ygWyF8PbnGy0AHB7MhgHcTz6sE2I2yPB\n"
    "aFDrBz9vFqU4yvZ0pI1gQ0hmaH8N1pYnGDy7kGEBf8Bh5fYl3H1p2j9GKiHcXyRq\n"
    "-----END RSA PRIVATE KEY-----"
)
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4ifQ"
    ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)

# (entity type, text, the secret or personal value that must disappear)
CASES: list[tuple[str, str, str]] = [
    ("EMAIL_ADDRESS", "Write to maria.gonzalez@example.org today.", "maria.gonzalez@example.org"),
    ("PHONE_NUMBER", "Call me on (415) 555-0132 after six.", "555-0132"),
    ("PHONE_NUMBER", "Office line +44 20 7946 0958 is open.", "7946 0958"),
    ("CREDIT_CARD", "Charge card 4111 1111 1111 1111 please.", "4111 1111 1111 1111"),
    ("US_SSN", "My SSN is 536-22-8912.", "536-22-8912"),
    ("IP_ADDRESS", "The server at 192.168.10.42 is down.", "192.168.10.42"),
    ("IP_ADDRESS", "Client 2001:db8:85a3::8a2e:370:7334 connected.", "2001:db8:85a3::8a2e:370:7334"),
    ("PERSON", "Yesterday Jennifer Whitaker opened the ticket.", "Whitaker"),
    ("API_KEY", "Use sk-proj-4fXk9LmN2pQ7rS8tU1vW3xY5zA6bC0dE in the client.", "sk-proj-4fXk9LmN2pQ7rS8tU1vW3xY5zA6bC0dE"),
    ("API_KEY", "ANTHROPIC_API_KEY=sk-ant-api03-Zx8Yw7Vu6Ts5Rq4Po3Nm2Lk1Jh0Gf9Ed8CbA", "sk-ant-api03-Zx8Yw7Vu6Ts5Rq4Po3Nm2Lk1Jh0Gf9Ed8CbA"),
    ("API_KEY", 'config {"api_key": "9f8e7d6c5b4a39281706f5e4d3c2b1a0"}', "9f8e7d6c5b4a39281706f5e4d3c2b1a0"),
    ("AWS_ACCESS_KEY", "aws_access_key_id = AKIAIOSFODNN7EXAMPLE", "AKIAIOSFODNN7EXAMPLE"),
    ("AWS_ACCESS_KEY", "aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
    ("GITHUB_TOKEN", "token ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789 leaked", "ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789"),
    ("GITHUB_TOKEN", "github_pat_11ABCDEFG0123456789abcd_efghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVW", "github_pat_11ABCDEFG0123456789abcd"),
    ("JWT", f"session {JWT} expired", JWT),
    ("BEARER_TOKEN", "Authorization: Bearer 8d7f6a5e4c3b2a1908f7e6d5c4b3a291", "8d7f6a5e4c3b2a1908f7e6d5c4b3a291"),
    ("PRIVATE_KEY", f"key follows\n{PEM}\nend of message", "MIIEpAIBAAKCAQEA0Z3VS5JJcds3xfn"),
]


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("redact-cache")


@pytest.fixture(scope="module")
def redactor(cache_dir: Path) -> Iterator[Redactor]:
    with Redactor(RedactionConfig(workers=0), cache_dir) as built:
        yield built


def make_span(**fields: Any) -> Span:
    base = Span(
        trace_id="0af7651916cd43dd8448eb211c80319c",
        span_id="b7ad6b7169203331",
        parent_span_id=None,
        name="llm",
        span_kind=SpanKind.LLM,
        service_name="svc",
        start_time_unix_nano=1,
        end_time_unix_nano=2,
        status_code="OK",
    )
    return replace(base, **fields)


@pytest.mark.parametrize(("entity", "text", "secret"), CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_each_entity_type_is_replaced_by_its_placeholder(
    redactor: Redactor, entity: str, text: str, secret: str
) -> None:
    redacted, count = redactor.redact_text(text)
    assert secret not in redacted
    assert f"<{entity}>" in redacted
    assert count >= 1


def test_text_without_pii_is_unchanged(redactor: Redactor) -> None:
    text = "The deployment finished in 42 seconds with status ok."
    assert redactor.redact_text(text) == (text, 0)


def test_span_fields_are_redacted_and_counted(redactor: Redactor) -> None:
    span = make_span(
        input_text="My email is ana.lopez@example.com",
        output_text="I will call 415-555-0199.",
        status_message="auth failed for token ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789",
        prompt_template="Answer {question} for bob.stone@example.net",
        retrievals=(RetrievedDocument(0, "doc-1", 0.9, "Contact carol.king@example.org for refunds."),),
        evaluations=(SpanEvaluation("qa", 1.0, "ok", "Mentions dave.ross@example.com correctly"),),
        attributes={"free.text": "reach me at erin.holt@example.com", "llm.model_name": "gpt-4o"},
    )
    (out,) = redactor.redact(SpanBatch((span,))).spans
    assert out.input_text == "My email is <EMAIL_ADDRESS>"
    assert out.output_text == "I will call <PHONE_NUMBER>."
    assert out.status_message == "auth failed for token <GITHUB_TOKEN>"
    assert out.prompt_template == "Answer {question} for <EMAIL_ADDRESS>"
    assert out.retrievals[0].content == "Contact <EMAIL_ADDRESS> for refunds."
    assert out.retrievals[0].document_id == "doc-1"
    assert out.evaluations[0].explanation == "Mentions <EMAIL_ADDRESS> correctly"
    assert out.attributes == {"free.text": "reach me at <EMAIL_ADDRESS>", "llm.model_name": "gpt-4o"}
    assert out.redacted_count == 7
    assert out.text_withheld is False


def test_json_message_array_in_attribute_is_redacted_leaf_wise(redactor: Redactor) -> None:
    messages = [
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": "I am Jennifer Whitaker, mail jw@example.com", "n": 3},
    ]
    span = make_span(attributes={"llm.input_messages": json.dumps(messages), "tags": ["x@example.com", 5]})
    (out,) = redactor.redact(SpanBatch((span,))).spans
    parsed = json.loads(out.attributes["llm.input_messages"])
    assert parsed[0] == {"role": "system", "content": "You are helpful."}
    assert parsed[1]["n"] == 3
    assert "Whitaker" not in parsed[1]["content"] and "jw@example.com" not in parsed[1]["content"]
    assert "<PERSON>" in parsed[1]["content"] and "<EMAIL_ADDRESS>" in parsed[1]["content"]
    assert out.attributes["tags"] == ["<EMAIL_ADDRESS>", 5]
    assert out.redacted_count == 3


def test_allow_listed_keys_are_untouched(cache_dir: Path, redactor: Redactor) -> None:
    config = RedactionConfig(workers=0, allow_keys=["user.id", "custom.*"])
    allow = Redactor.__new__(Redactor)  # share the loaded engine: only the allow-list differs
    allow.__dict__.update(redactor.__dict__)
    allow._allow_keys = list(config.allow_keys)
    email = "frank.moss@example.com"
    span = make_span(attributes={"user.id": email, "custom.note": email, "other": email})
    (out,) = allow.redact(SpanBatch((span,))).spans
    assert out.attributes == {"user.id": email, "custom.note": email, "other": "<EMAIL_ADDRESS>"}


def test_fail_closed_withholds_text(redactor: Redactor, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("analyzer exploded")

    monkeypatch.setattr(redactor.engine.analyzer, "analyze", broken)
    before = redactor.num_spans_withheld
    span = make_span(
        input_text="unseen text for Gina Lowe 1",
        output_text="unseen answer 2",
        status_message="unseen status 3",
        attributes={"free": "unseen attr 4", "nested": ["unseen 5", 6], "llm.model_name": "m"},
        retrievals=(RetrievedDocument(0, "d", None, "unseen doc 6"),),
        evaluations=(SpanEvaluation("e", None, None, "unseen why 7"),),
    )
    batch = redactor.redact(SpanBatch((span, replace(span, span_id="c7ad6b7169203332"))))
    assert redactor.num_spans_withheld == before + 2
    for out in batch.spans:
        assert out.text_withheld is True
        assert (out.input_text, out.output_text, out.status_message) == (None, None, None)
        assert out.attributes == {"free": WITHHELD, "nested": [WITHHELD, 6], "llm.model_name": "m"}
        assert out.retrievals[0].content is None and out.retrievals[0].document_id == "d"
        assert out.evaluations[0].explanation is None


def test_counters_track_entities(redactor: Redactor) -> None:
    before_total = redactor.num_entities_redacted
    before_email = redactor.entity_counts["EMAIL_ADDRESS"]
    span = make_span(input_text="a@example.com and b@example.com", output_text="AKIAIOSFODNN7EXAMPLE")
    (out,) = redactor.redact(SpanBatch((span,))).spans
    assert out.redacted_count == 3
    assert redactor.num_entities_redacted == before_total + 3
    assert redactor.entity_counts["EMAIL_ADDRESS"] == before_email + 2


def test_disabled_passes_batch_through(tmp_path: Path) -> None:
    redactor = Redactor(RedactionConfig(enabled=False), tmp_path)
    batch = SpanBatch((make_span(input_text="ana@example.com"),))
    assert redactor.redact(batch) is batch
    assert redactor.redact_text("ana@example.com") == ("ana@example.com", 0)


@pytest.mark.parametrize("workers", [0, 1])
def test_nothing_written_outside_cache_dir_with_workers(tmp_path: Path, workers: int) -> None:
    _check_nothing_written_outside_cache_dir(tmp_path, workers)


def _check_nothing_written_outside_cache_dir(tmp_path: Path, workers: int) -> None:
    home = tmp_path / "home"
    home.mkdir()
    cache = tmp_path / "data" / "cache"
    script = textwrap.dedent(
        f"""
        from pathlib import Path
        from collector.config import RedactionConfig
        from collector.records import Span, SpanBatch, SpanKind
        from collector.redact import Redactor
        r = Redactor(RedactionConfig(workers={workers}), Path({str(cache)!r}))
        assert r.num_workers == {workers}
        span = Span("ab" * 16, "cd" * 8, None, "n", SpanKind.LLM, None, 1, 2, "OK",
                    input_text="mail jo@example.co.uk or visit https://example.com")
        (out,) = r.redact(SpanBatch((span,))).spans
        assert "<EMAIL_ADDRESS>" in out.input_text and out.redacted_count >= 1, out.input_text
        r.close()
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TLDEXTRACT", "XDG_"))}
    env["HOME"] = str(home)
    subprocess.run([sys.executable, "-c", script], check=True, env=env, cwd=tmp_path, timeout=300)
    assert list(home.rglob("*")) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "home"]


# -- NER gate ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("unit", "expected"),
    [
        ("Yesterday Jennifer Whitaker opened the ticket.", True),
        ("my name is john smith and i need a refund.", True),  # cue word
        ("i live in boston now.", True),
        ("JOHN SMITH CALLED ABOUT THE INVOICE", True),
        ("The export finished in about forty seconds.", False),  # only sentence-initial
        ("retries are capped at five with exponential backoff", False),
        ("for (i = 0; i < n; i++) { total += x[i]; }", False),
        ("1234 5678 9012", False),
        ("Jennifer reported the bug.", False),  # the known trade-off (quality bench prints it)
    ],
)
def test_ner_gate(unit: str, expected: bool) -> None:
    from collector.redact_engine import needs_ner

    assert needs_ner(unit) is expected


def test_gated_units_skip_the_model_but_patterns_still_run(redactor: Redactor) -> None:
    engine = redactor.engine
    before = engine.stats.units_gated
    text = "please send the logs to ops.team@example.com, the export job keeps failing."
    redacted, count = redactor.redact_text(text)
    assert redacted == "please send the logs to <EMAIL_ADDRESS>, the export job keeps failing."
    assert count == 1
    assert engine.stats.units_gated > before


def test_lowercase_name_after_a_cue_is_still_redacted(redactor: Redactor) -> None:
    redacted, _ = redactor.redact_text("hi, my name is john smith and i live in boston.")
    assert "john smith" not in redacted and "<PERSON>" in redacted


def test_question_repeated_in_prompt_is_analysed_once(cache_dir: Path) -> None:
    with Redactor(RedactionConfig(workers=0), cache_dir) as fresh:
        question = "How do I reset my password? I'm Maria Gonzalez from Denver."
        prompt = f"System prompt.\nContext:\n[doc 1]\nSome doc.\n\nQuestion: {question}"
        results = fresh.engine.redact_texts([question, prompt])
        stats = fresh.engine.stats
        assert stats.units_through_ner == 1  # the name sentence, once; the rest is gated
        assert "Maria Gonzalez" not in results[0].text and "Maria Gonzalez" not in results[1].text
        assert results[1].text.endswith("Question: " + results[0].text)


# -- worker processes -------------------------------------------------------------------


def rag_batch(num_traces: int) -> SpanBatch:
    spans = []
    for trace in range(num_traces):
        trace_id = f"{trace + 1:032x}"
        question = f"Why does export {trace} fail? I am Jennifer Whitaker, mail jw{trace}@example.com."
        spans.append(make_span(trace_id=trace_id, span_id=f"{trace:015x}0", input_text=question,
                               output_text=f"Open Settings in the Acme Console, then retry job {trace}."))
        spans.append(make_span(trace_id=trace_id, span_id=f"{trace:015x}1", input_text=question,
                               retrievals=(RetrievedDocument(0, "d", 0.5, "Call 415-555-0199 for help."),)))
        spans.append(make_span(trace_id=trace_id, span_id=f"{trace:015x}2",
                               input_text=f"You help.\nContext:\nCall 415-555-0199 for help.\n\nQuestion: {question}",
                               attributes={"llm.input_messages": json.dumps([{"role": "user", "content": question}])}))
    return SpanBatch(tuple(spans))


@pytest.fixture(scope="module")
def pooled(cache_dir: Path) -> Iterator[Redactor]:
    with Redactor(RedactionConfig(workers=2), cache_dir) as built:
        assert built.num_workers == 2
        yield built


def test_sharding_by_trace_id_gives_the_in_process_result(pooled: Redactor, redactor: Redactor) -> None:
    from collector.redact import shard_of

    batch = rag_batch(12)
    assert len({shard_of(span.trace_id, 2) for span in batch.spans}) == 2  # both workers used
    assert shard_of("0af7651916cd43dd8448eb211c80319c", 2) == shard_of("0af7651916cd43dd8448eb211c80319c", 2)
    before = pooled.num_entities_redacted
    assert pooled.redact(batch) == redactor.redact(batch)  # same spans, same order
    assert pooled.num_entities_redacted - before == sum(s.redacted_count for s in redactor.redact(batch).spans)


def test_dead_worker_is_replaced_and_a_failed_shard_is_withheld(
    pooled: Redactor, monkeypatch: pytest.MonkeyPatch
) -> None:
    batch = rag_batch(6)
    victim = pooled._workers[0]
    assert victim is not None
    victim._process.kill()
    victim._process.wait()
    out = pooled.redact(batch)  # dead before the send: replaced, shard sent again
    assert not any(span.text_withheld for span in out.spans)
    assert pooled.num_workers == 2 and pooled._workers[0] is not victim
    failing = pooled._workers[1]
    assert failing is not None

    def broken_receive(timeout_s: float) -> None:
        raise EOFError("worker died mid-batch")

    monkeypatch.setattr(failing, "receive", broken_receive)
    before = pooled.num_spans_withheld
    out = pooled.redact(batch)
    withheld = [span for span in out.spans if span.text_withheld]
    assert withheld and len(withheld) < len(out.spans)
    assert all(span.input_text is None for span in withheld)
    assert pooled.num_spans_withheld == before + len(withheld)
    assert pooled._workers[1] is not failing and pooled.num_workers == 2
    assert not any(span.text_withheld for span in pooled.redact(batch).spans)


def test_pool_that_cannot_start_falls_back_to_in_process(
    cache_dir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(sys, "executable", str(cache_dir / "no-such-python"))
    with caplog.at_level("WARNING", logger="collector.redact"):
        fallback = Redactor(RedactionConfig(workers=2), cache_dir)
    assert fallback.num_workers == 0
    assert any("redacting in the calling process" in r.getMessage() for r in caplog.records)
    (out,) = fallback.redact(SpanBatch((make_span(input_text="mail ana@example.com"),))).spans
    assert out.input_text == "mail <EMAIL_ADDRESS>"
    fallback.close()


def test_worker_that_fails_at_start_falls_back_and_config_errors_surface(cache_dir: Path) -> None:
    # The worker fails to build its engine -> fallback to in-process, which raises the
    # configuration error itself (a bad model path stops the collector at start-up).
    config = RedactionConfig(workers=1, spacy_model_path=str(cache_dir / "no-such-model"))
    with pytest.raises(Exception, match="spaCy pipeline"):  # the config error itself is the parent's
        Redactor(config, cache_dir)
