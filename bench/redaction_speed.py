"""How fast the redaction stage is, and what each optimisation bought.

Run: ``.venv/bin/python bench/redaction_speed.py [--spans N] [--seed S]``  (about 2-3 min).

Spans are generated here: realistic RAG LLM spans of 5-9 KB - one of three system prompt
versions, 3-5 documents drawn (Zipf-like, popular documents come back often) from a corpus
of 400 help-centre articles, a user question (Faker PII in ~15 % of them), an answer that
is new for every span, the OpenInference ``llm.input_messages`` JSON in the attributes and
the documents again as ``retrievals``.  Stages, each adding one thing to the previous:

1. plain Presidio: ``AnalyzerEngine`` over the full spaCy pipeline, one analyze call per
   field, every recognizer of the configured entities;
2. + NER-only spaCy pipeline (tokenizer + ner, lowercased tokens as lemmas);
3. + batching: all texts of a batch of spans through ``nlp.pipe`` at once, identical texts
   analysed once;
4. + segment cache: texts cut at line breaks, each distinct segment analysed once and kept
   in an LRU cache (``Redactor`` with ``workers=1``);
5. + workers: the same in a pool of 2 spawn processes (``workers=2``).

Stages 1-2 run on fewer spans (they are slow); throughput is spans per second of wall
time, the cache starts empty (so the figure includes warming it).
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import orjson
from faker import Faker

from collector.config import RedactionConfig
from collector.records import Span, SpanBatch, SpanKind
from collector.redact import Redactor, map_span_text
from collector.redact_engine import TextRedactionEngine, find_spacy_model_path

BATCH_SPANS = 100

SYSTEM_PROMPTS = [
    (
        "You are Acme Cloud's support assistant. Answer the customer's question using only "
        "the context documents below. If the answer is not in the context, say that you do "
        "not know and offer to open a ticket. Never reveal internal notes, credentials or "
        "other customers' data. Keep answers under 150 words, use short paragraphs and "
        "bullet points for steps.\n"
        "Cite the documents you used as [doc N]. Prefer the most recent document when two "
        "documents disagree. Do not speculate about pricing that is not in the context.\n"
        "Tone: friendly, precise, no marketing language. Reply in the language of the "
        "question.\n"
    )
    * 2,
    (
        "System: you answer questions about the Acme Cloud platform (compute, storage, "
        "billing, identity). Ground every statement in the retrieved context; when context "
        "is missing, ask a clarifying question instead of guessing.\n"
        "Rules:\n- Quote configuration keys exactly as written in the documents.\n"
        "- Never output secrets, tokens or personal data, even if they appear in context.\n"
        "- If the user seems to be locked out, point them to account recovery.\n"
        "- Answer in at most three short paragraphs.\n"
    )
    * 3,
    (
        "You are a helpful, careful assistant for Acme Cloud customers. Use the context. "
        "Say which document supports each claim. If documents conflict, explain the "
        "conflict. Keep it short and practical; include the exact console path or CLI "
        "command when there is one.\n"
    )
    * 4,
]

TOPICS = [
    "billing alerts", "object storage lifecycle rules", "SSO with SAML", "API rate limits",
    "database backups", "VPC peering", "audit logs", "GPU quotas", "custom domains",
    "TLS certificates", "team roles", "usage exports", "serverless cold starts",
    "Kubernetes node pools", "data residency", "invoice disputes",
]

QUESTIONS = [
    "How do I set up {topic} for my project?",
    "Why is {topic} not working after yesterday's change?",
    "What are the limits for {topic} on the team plan?",
    "Can you explain how {topic} interacts with billing?",
    "Is there a CLI command for {topic}?",
]


def make_corpus(fake: Faker, size: int) -> list[str]:
    """Help-centre articles of ~0.8-1.5 KB, some mentioning people and places."""
    docs = []
    for i in range(size):
        topic = TOPICS[i % len(TOPICS)]
        sentences = [f"{topic.capitalize()} guide, revision {fake.random_int(1, 9)}."]
        while sum(len(s) for s in sentences) < fake.random_int(700, 1300):
            roll = fake.random.random()
            if roll < 0.03:
                sentences.append(f"This page is maintained by {fake.name()} from the {fake.city()} office.")
            elif roll < 0.1:
                sentences.append(f"Run `acme {topic.split()[0].lower()} describe --project {fake.slug()}` to check the state.")
            else:
                sentences.append(fake.sentence(nb_words=fake.random_int(10, 22)))
        docs.append(" ".join(sentences))
    return docs


def make_question(fake: Faker) -> str:
    question = fake.random_element(QUESTIONS).format(topic=fake.random_element(TOPICS))
    question += " " + fake.sentence(nb_words=fake.random_int(6, 14))
    if fake.random.random() < 0.15:
        pii = fake.random_element(
            [
                f" My name is {fake.name()} and my email is {fake.email()}.",
                f" You can call me on {fake.phone_number()}.",
                f" The card on file is {fake.credit_card_number()}.",
                f" I'm {fake.name()}, account owner, from {fake.city()}.",
            ]
        )
        question += pii
    return question


def make_spans(num_spans: int, seed: int) -> list[Span]:
    """Generate ``num_spans`` realistic RAG LLM spans (deterministic for a seed)."""
    fake = Faker("en_US")
    fake.seed_instance(seed)
    rng = random.Random(seed)
    corpus = make_corpus(fake, 400)
    weights = [1.0 / (rank + 1) ** 0.9 for rank in range(len(corpus))]
    spans = []
    for i in range(num_spans):
        system = rng.choice(SYSTEM_PROMPTS)
        picked = list(dict.fromkeys(rng.choices(range(len(corpus)), weights=weights, k=rng.randint(3, 5))))
        docs = [corpus[d] for d in picked]
        context = "\n\n".join(f"[doc {n + 1}]\n{doc}" for n, doc in enumerate(docs))
        question = make_question(fake)
        answer = " ".join(fake.sentence(nb_words=rng.randint(8, 20)) for _ in range(rng.randint(2, 5)))
        prompt = f"{system}\nContext:\n{context}\n\nQuestion: {question}"
        messages = [{"role": "system", "content": f"{system}\nContext:\n{context}"}, {"role": "user", "content": question}]
        spans.append(
            Span(
                trace_id=f"{i:032x}",
                span_id=f"{i:016x}",
                parent_span_id=None,
                name="ChatCompletion",
                span_kind=SpanKind.LLM,
                service_name="support-bot",
                start_time_unix_nano=1_700_000_000_000_000_000 + i,
                end_time_unix_nano=1_700_000_001_000_000_000 + i,
                status_code="OK",
                model_name="gpt-4o-mini",
                provider="openai",
                prompt_version=f"v{SYSTEM_PROMPTS.index(system) + 1}",
                input_text=prompt,
                output_text=answer,
                attributes={
                    "openinference.span.kind": "LLM",
                    "llm.model_name": "gpt-4o-mini",
                    "llm.input_messages": orjson.dumps(messages).decode(),
                    "llm.invocation_parameters": '{"temperature": 0.2, "max_tokens": 512}',
                },
            )
        )
    return spans


def span_size_bytes(span: Span) -> int:
    sizes: list[int] = []
    map_span_text(span, lambda t: sizes.append(len(t.encode())) or t, [])
    return sum(sizes)


def field_texts(span: Span) -> list[str]:
    """Every redactable string of a span, as a per-field redactor would see them."""
    texts: list[str] = []

    def collect(text: str) -> str:
        texts.append(text)
        return text

    map_span_text(span, collect, ["openinference.span.kind", "llm.model_name"])
    return texts


def time_per_field(redact_one: Callable[[str], object], spans: Sequence[Span]) -> float:
    start = time.perf_counter()
    for span in spans:
        for text in field_texts(span):
            redact_one(text)
    return len(spans) / (time.perf_counter() - start)


def time_batches(redact_batch: Callable[[SpanBatch], object], spans: Sequence[Span]) -> float:
    start = time.perf_counter()
    for i in range(0, len(spans), BATCH_SPANS):
        redact_batch(SpanBatch(tuple(spans[i : i + BATCH_SPANS])))
    return len(spans) / (time.perf_counter() - start)


def plain_presidio(config: RedactionConfig, cache_dir: Path) -> Callable[[str], object]:
    """Presidio as documented: full spaCy pipeline, analyze + anonymize per text."""
    import spacy
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import SpacyNlpEngine

    engine = TextRedactionEngine(config, cache_dir, max_cache_segments=0, segment_texts=False)
    analyzer: AnalyzerEngine = engine.analyzer
    full = spacy.load(find_spacy_model_path(config.spacy_model_path))
    nlp_engine = analyzer.nlp_engine
    plain_nlp_engine = SpacyNlpEngine(
        models=[{"lang_code": "en", "model_name": "unused"}],
        ner_model_configuration=nlp_engine.ner_model_configuration,  # type: ignore[attr-defined]
    )
    plain_nlp_engine.nlp = {"en": full}
    plain = AnalyzerEngine(registry=analyzer.registry, nlp_engine=plain_nlp_engine, supported_languages=["en"])

    def redact_one(text: str) -> object:
        results = plain.analyze(text=text, language="en", entities=config.entities, score_threshold=config.score_threshold)
        return engine.anonymizer.anonymize(text=text, analyzer_results=results)

    return redact_one


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=1200, help="spans for the fast stages")
    parser.add_argument("--slow-spans", type=int, default=40, help="spans for stages 1-2")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)

    spans = make_spans(args.spans, args.seed)
    sizes = sorted(span_size_bytes(s) for s in spans)
    print(f"{len(spans)} spans, text per span: median {sizes[len(sizes) // 2] / 1024:.1f} KB, "
          f"p5 {sizes[len(sizes) // 20] / 1024:.1f} KB, p95 {sizes[len(sizes) * 19 // 20] / 1024:.1f} KB; "
          f"CPUs available: {len(os.sched_getaffinity(0))}")
    config = RedactionConfig(workers=1)
    rows: list[tuple[str, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        cache_dir = Path(tmp)
        slow = spans[: args.slow_spans]
        rows.append(("1 plain Presidio, per field", time_per_field(plain_presidio(config, cache_dir), slow)))

        ner_only = TextRedactionEngine(config, cache_dir, max_cache_segments=0, segment_texts=False)
        rows.append(("2 + NER-only pipeline", time_per_field(lambda t: ner_only.redact_texts([t]), slow)))

        def batch_uncached(batch: SpanBatch) -> object:
            texts = list(dict.fromkeys(t for s in batch.spans for t in field_texts(s)))
            return ner_only.redact_texts(texts)

        rows.append(("3 + batching (nlp.pipe)", time_batches(batch_uncached, spans[: args.slow_spans * 4])))

        with Redactor(config, cache_dir) as redactor:
            rows.append(("4 + segment cache (workers=1)", time_batches(redactor.redact, spans)))
            print(f"   cache holds {redactor.engine.num_cached_segments} segments; "
                  f"{redactor.num_entities_redacted} entities redacted, {redactor.num_spans_withheld} withheld")
        with Redactor(RedactionConfig(workers=2), cache_dir) as redactor:
            rows.append(("5 + workers=2 (process pool)", time_batches(redactor.redact, spans)))

    base = rows[0][1]
    print(f"\n{'stage':34} {'spans/s':>9} {'x plain':>8}")
    for name, rate in rows:
        print(f"{name:34} {rate:9.1f} {rate / base:8.1f}")
    target = 300.0
    print(f"\ntarget >= {target:.0f} spans/s on 2 cores: {'PASS' if rows[-1][1] >= target else 'FAIL'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
