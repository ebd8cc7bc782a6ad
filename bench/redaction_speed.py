"""How fast the redaction stage is, and what each optimisation bought.

Run: ``.venv/bin/python bench/redaction_speed.py [--spans N] [--seed S] [--workers N]``
(about 2-3 min on an idle 2-core machine).

Workload (issue 2): RAG traces of three spans - CHAIN (input = question, output = answer),
RETRIEVER (the question, 3-5 documents drawn Zipf-like from a shared corpus of 400
help-centre articles as ``retrievals``), LLM (input inlines one of three shared system
prompts, the documents and ``Question: <question>``; the OpenInference message JSON in
the attributes; output = the answer).  LLM spans carry 8-14 KB of text.  ~15 % of the
questions hold Faker PII; answers are new for every trace and about half their sentences
name console pages/products (capitalised words mid-sentence, so the NER gate cannot skip
them).  Throughput counts every span (a trace counts 3).  Stages, each adding one thing:

1. plain Presidio: full spaCy pipeline, one analyze call per field;
2. + NER-only spaCy pipeline (tokenizer + ner, lowercased tokens as lemmas);
3. + batching: the texts of a batch through ``nlp.pipe`` at once, identical texts once;
4. + line cache: texts cut at line breaks, each distinct line analysed once, LRU cache
   (what the stage did before; ``ner_units=False``);
5. + sentence NER cache: NER runs per sentence (a line label like ``Question:`` split
   off), distinct sentences of a batch once, results in a second LRU cache; the pattern
   recognizers still run on whole lines;
6. + NER gate: sentences with no capitalised word after the first, no upper-case pair and
   no cue word skip the model;
7. + workers: 2 worker processes, spans sharded by a stable hash of the trace id.

Measured on 2026-11 on the 2-core machine while other jobs ran (load average 9): spans/s
of wall time are depressed and vary run to run, so the table also prints spans per
CPU-second (this process + its workers), which moved least.  One run (1800 spans, seed 7):

    stage                         spans/s  warm half  per CPU-s
    4 line cache (before)            30.2       35.8      150.8
    5 + sentence NER cache           34.8       61.7      157.1
    6 + NER gate                     59.4       81.1      326.9
    7 + workers=2                   102.7      149.5      254.7

(an earlier run at lower load: stage 4 at 71 spans/s, stage 6 at 87, stage 7 at 75-116).
Stage 6 sends 1,800 of 9,006 sentences to the model (5,188 gated out, 2,018 cache/dedup
hits).  Workers cost ~20 % CPU (pickling, each warming its own cache) but use both cores:
on an idle machine ~2 x 255 = ~500 spans/s is the expected ceiling, not a measurement.
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
from collector.records import RetrievedDocument, Span, SpanBatch, SpanKind
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


# Answer sentences that name console pages and products (capitalised words mid-sentence,
# so they go through the NER gate); each ends with words new for every trace.
ANSWER_SENTENCES = [
    "Open the {page} page in the Acme Console and select {item}, then {tail}.",
    "According to [doc {n}], {topic} is configured per project, so {tail}.",
    "In the Acme Console go to Settings > {page} and turn on {item}; {tail}.",
    "Run `acme {cmd} list --project {slug}` to see the current state, and {tail}.",
    "If you use the Terraform provider, set `{key}` in the {page} resource so {tail}.",
    "The Team plan allows {num} {topic} per project and {tail}.",
    "Support can raise the limit from the Help Center if {tail}.",
]
PAGES = ["Billing", "Storage", "Identity", "Networking", "Audit Logs", "Quotas", "Domains"]
ITEMS = ["Alerts", "Lifecycle Rules", "SAML", "Rate Limits", "Backups", "Peering", "Exports"]


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


def make_answer(fake: Faker, rng: random.Random) -> str:
    """2-5 sentences, new for every trace; about half name console pages or products."""
    sentences = []
    for _ in range(rng.randint(2, 5)):
        if rng.random() < 0.5:
            sentences.append(rng.choice(ANSWER_SENTENCES).format(
                page=rng.choice(PAGES), item=rng.choice(ITEMS), n=rng.randint(1, 5),
                topic=rng.choice(TOPICS), cmd=rng.choice(TOPICS).split()[0].lower(),
                slug=fake.slug(), key=fake.word() + "_" + fake.word(), num=rng.randint(2, 50),
                tail=fake.sentence(nb_words=rng.randint(5, 10)).rstrip('.').lower()))
        else:
            sentences.append(fake.sentence(nb_words=rng.randint(8, 20)))
    return " ".join(sentences)


def _span(trace: int, index: int, kind: SpanKind, name: str, **fields: object) -> Span:
    return Span(
        trace_id=f"{trace:032x}",
        span_id=f"{trace:012x}{index:04x}",
        parent_span_id=None if index == 0 else f"{trace:012x}{0:04x}",
        name=name,
        span_kind=kind,
        service_name="support-bot",
        start_time_unix_nano=1_700_000_000_000_000_000 + trace,
        end_time_unix_nano=1_700_000_001_000_000_000 + trace,
        status_code="OK",
        **fields,  # type: ignore[arg-type]
    )


def make_spans(num_spans: int, seed: int) -> list[Span]:
    """Generate RAG traces (CHAIN, RETRIEVER, LLM), ``num_spans // 3`` of them, in order."""
    fake = Faker("en_US")
    fake.seed_instance(seed)
    rng = random.Random(seed)
    corpus = make_corpus(fake, 400)
    weights = [1.0 / (rank + 1) ** 0.9 for rank in range(len(corpus))]
    spans = []
    for trace in range(num_spans // 3):
        system = rng.choice(SYSTEM_PROMPTS)
        picked = list(dict.fromkeys(rng.choices(range(len(corpus)), weights=weights, k=rng.randint(3, 5))))
        docs = [corpus[d] for d in picked]
        context = "\n\n".join(f"[doc {n + 1}]\n{doc}" for n, doc in enumerate(docs))
        question = make_question(fake)
        answer = make_answer(fake, rng)
        prompt = f"{system}\nContext:\n{context}\n\nQuestion: {question}"
        messages = [{"role": "system", "content": f"{system}\nContext:\n{context}"}, {"role": "user", "content": question}]
        spans.append(_span(trace, 0, SpanKind.CHAIN, "rag", input_text=question, output_text=answer,
                           attributes={"openinference.span.kind": "CHAIN"}))
        spans.append(_span(trace, 1, SpanKind.RETRIEVER, "retrieve", input_text=question,
                           attributes={"openinference.span.kind": "RETRIEVER"},
                           retrievals=tuple(RetrievedDocument(n, f"kb-{d}", 0.9 - n / 10, corpus[d])
                                            for n, d in enumerate(picked))))
        spans.append(_span(
            trace, 2, SpanKind.LLM, "ChatCompletion",
            model_name="gpt-4o-mini", provider="openai",
            prompt_version=f"v{SYSTEM_PROMPTS.index(system) + 1}",
            input_text=prompt, output_text=answer,
            attributes={
                "openinference.span.kind": "LLM",
                "llm.model_name": "gpt-4o-mini",
                "llm.input_messages": orjson.dumps(messages).decode(),
                "llm.output_messages": orjson.dumps([{"role": "assistant", "content": answer}]).decode(),
                "llm.invocation_parameters": '{"temperature": 0.2, "max_tokens": 512}',
            },
        ))
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


def process_cpu_seconds(pids: Sequence[int]) -> float:
    """CPU time (user + system) used so far by this process and the processes ``pids``."""
    total = time.process_time()
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def time_batches(
    redact_batch: Callable[[SpanBatch], object], spans: Sequence[Span], pids: Sequence[int] = ()
) -> tuple[float, float, float]:
    """Spans/s over all the spans (cold cache first), over the second half, and per CPU-second."""
    cpu_start = process_cpu_seconds(pids)
    start = time.perf_counter()
    half_at = start
    half = len(spans) // 2
    for i in range(0, len(spans), BATCH_SPANS):
        if i >= half and half_at == start:
            half_at = time.perf_counter()
        redact_batch(SpanBatch(tuple(spans[i : i + BATCH_SPANS])))
    end = time.perf_counter()
    cpu = process_cpu_seconds(pids) - cpu_start
    return len(spans) / (end - start), (len(spans) - half) / max(end - half_at, 1e-9), len(spans) / cpu


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


def engine_stats_line(engine: TextRedactionEngine) -> str:
    st = engine.stats
    return (f"lines analysed {st.lines_analysed} (line cache hits {st.line_cache_hits}); "
            f"NER units {st.units_seen}: cache/dedup hits {st.unit_cache_hits}, gated out "
            f"{st.units_gated}, through the model {st.units_through_ner} "
            f"({st.chars_through_ner / max(1, st.units_through_ner):.0f} chars each)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=1800, help="spans for the fast stages (a multiple of 3)")
    parser.add_argument("--slow-spans", type=int, default=30, help="spans for stages 1-2 (x2 for stage 3)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)

    spans = make_spans(args.spans, args.seed)
    sizes = sorted(span_size_bytes(s) for s in spans if s.span_kind is SpanKind.LLM)
    print(f"{len(spans)} spans ({len(spans) // 3} RAG traces: CHAIN, RETRIEVER, LLM), LLM span text: "
          f"median {sizes[len(sizes) // 2] / 1024:.1f} KB, p5 {sizes[len(sizes) // 20] / 1024:.1f} KB, "
          f"p95 {sizes[len(sizes) * 19 // 20] / 1024:.1f} KB; batches of {BATCH_SPANS} spans; "
          f"CPUs available: {len(os.sched_getaffinity(0))}")
    in_process = RedactionConfig(workers=0)
    rows: list[tuple[str, float, float | None, float | None]] = []
    with tempfile.TemporaryDirectory() as tmp:
        cache_dir = Path(tmp)
        slow = spans[: args.slow_spans]
        rows.append(("1 plain Presidio, per field", time_per_field(plain_presidio(in_process, cache_dir), slow), None, None))

        ner_only = TextRedactionEngine(in_process, cache_dir, max_cache_segments=0, segment_texts=False, ner_units=False)
        rows.append(("2 + NER-only pipeline", time_per_field(lambda t: ner_only.redact_texts([t]), slow), None, None))

        def batch_uncached(batch: SpanBatch) -> object:
            texts = list(dict.fromkeys(t for s in batch.spans for t in field_texts(s)))
            return ner_only.redact_texts(texts)

        rows.append(("3 + batching (nlp.pipe)", time_batches(batch_uncached, spans[: args.slow_spans * 2])[0], None, None))

        stages = [
            ("4 + line cache (before)", {"ner_units": False, "ner_gate": False}),
            ("5 + sentence NER cache", {"ner_units": True, "ner_gate": False}),
            ("6 + NER gate", {"ner_units": True, "ner_gate": True}),
        ]
        for name, options in stages:
            with Redactor(in_process, cache_dir, engine_options=options) as redactor:
                rate, warm, per_cpu = time_batches(redactor.redact, spans)
                rows.append((name, rate, warm, per_cpu))
                print(f"   {name.split('+')[1].strip()}: {engine_stats_line(redactor.engine)}")
        started = time.perf_counter()
        with Redactor(RedactionConfig(workers=args.workers), cache_dir) as redactor:
            print(f"   pool of {args.workers} started in {time.perf_counter() - started:.1f} s")
            pids = [w._process.pid for w in redactor._workers if w is not None]
            rate, warm, per_cpu = time_batches(redactor.redact, spans, pids)
            rows.append((f"7 + workers={args.workers}, by trace_id", rate, warm, per_cpu))
            print(f"   {redactor.num_entities_redacted} entities redacted, {redactor.num_spans_withheld} withheld")

    base = rows[0][1]
    print(f"\n{'stage (each adds to the one above)':36} {'spans/s':>8} {'x plain':>8} {'warm half':>10} {'per CPU-s':>10}")
    for name, rate, warm, per_cpu in rows:
        warm_text = f"{warm:10.1f}" if warm is not None else f"{'':>10}"
        cpu_text = f"{per_cpu:10.1f}" if per_cpu is not None else f"{'':>10}"
        print(f"{name:36} {rate:8.1f} {rate / base:8.1f} {warm_text} {cpu_text}")
    print(f"load average now: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (other processes share them; "
          "'per CPU-s' = spans per CPU-second of this process and its workers, the figure noise moves least)")
    target = 300.0
    print(f"\nspans/s counts every span of the traces; the cache starts empty ('warm half': the "
          f"second half of the spans).\ntarget >= {target:.0f} spans/s on 2 cores: "
          f"{'PASS' if rows[-1][1] >= target else 'FAIL'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
