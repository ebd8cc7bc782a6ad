"""The support copilot's help-centre documents, user questions and answer writers.

Contract:
- Each topic holds facts. A fact has a document sentence and an answer sentence sharing one
  slot ``{v}``: the document states the true value; answers state the true value (grounded) or a
  plausible wrong one (ungrounded). Grounded and ungrounded answers therefore share vocabulary,
  sentence shapes, openers, closers and citation style, and have the same length distribution:
  only what they claim differs.
- ``KB_DOCUMENTS`` are built once, deterministically: 3 documents per topic, each with 2-3 of the
  topic's facts, ids ``kb-1000`` upwards.
- ``write_answer`` returns the answer text; the caller labels it grounded when it asked for no
  wrong value and the retrieved documents are on the question's topic.
- The facts, questions and phrases themselves live in ``samples.support_content``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from samples.support_content import (
    CLOSERS,
    EXTRA_DETAIL,
    NO_CONTEXT_ANSWERS,
    OPENERS,
    OUT_OF_SCOPE_QUESTIONS,
    TOPIC_QUESTIONS,
    TOPICS,
    Fact,
)

__all__ = [
    "KB_DOCUMENTS",
    "NO_CONTEXT_ANSWERS",
    "OUT_OF_SCOPE_QUESTIONS",
    "TOPIC_NAMES",
    "TOPIC_QUESTIONS",
    "Document",
    "pick_fake_doc_id",
    "write_answer",
]


@dataclass(frozen=True, slots=True)
class Document:
    """One help-centre article chunk."""

    doc_id: str
    topic: str
    content: str
    facts: tuple[Fact, ...]


def _build_documents() -> tuple[Document, ...]:
    rng = random.Random("nimbus-kb")
    docs: list[Document] = []
    titles = ("Overview", "FAQ", "Admin guide")
    for topic, facts in TOPICS.items():
        for i, title in enumerate(titles):
            chosen = tuple(facts[j % len(facts)] for j in range(i, i + 2 + (i == 0)))
            head = f"{topic.replace('_', ' ').title()} - {title}. "
            body = " ".join(f.doc.format(v=f.value) for f in chosen)
            docs.append(
                Document(
                    f"kb-{1000 + len(docs) * 7 + rng.randrange(7)}", topic, head + body, chosen
                )
            )
    return tuple(docs)


KB_DOCUMENTS = _build_documents()
DOCS_BY_TOPIC: dict[str, tuple[Document, ...]] = {
    topic: tuple(d for d in KB_DOCUMENTS if d.topic == topic) for topic in TOPICS
}
TOPIC_NAMES = tuple(TOPICS)


def pick_fake_doc_id(rng: random.Random) -> str:
    """Return a document id that looks real but is not in the knowledge base."""
    known = {d.doc_id for d in KB_DOCUMENTS}
    while True:
        candidate = f"kb-{rng.randint(1000, 1300)}"
        if candidate not in known:
            return candidate


def write_answer(
    rng: random.Random,
    topic: str,
    retrieved: list[Document],
    *,
    num_wrong: int,
    cite_id: str | None,
    extra_sentences: int,
) -> str:
    """Compose an answer about ``topic`` from the facts of the retrieved documents.

    ``num_wrong`` facts are stated with a wrong value (0 gives a grounded answer). When none of
    the retrieved documents is about ``topic`` the answer uses the topic's facts anyway (the
    model answering from memory), which is unsupported by the retrieved context.
    ``cite_id`` adds "(see <id>)" after the first claim. ``extra_sentences`` adds generic detail
    (the slow answer-length drift).
    """
    facts: list[Fact] = []
    for doc in retrieved:
        if doc.topic == topic:
            facts.extend(f for f in doc.facts if f not in facts)
    if not facts:
        facts = list(TOPICS[topic])
    rng.shuffle(facts)
    facts = facts[: rng.randint(2, 3)]
    wrong_idx = set(rng.sample(range(len(facts)), min(num_wrong, len(facts))))
    sentences = []
    for i, fact in enumerate(facts):
        value = rng.choice(fact.wrong) if i in wrong_idx else fact.value
        sentence = fact.answer.format(v=value)
        if i == 0 and cite_id:
            sentence = sentence[:-1] + f" (see {cite_id})."
        sentences.append(sentence)
    extras = "".join(rng.sample(EXTRA_DETAIL, min(extra_sentences, len(EXTRA_DETAIL))))
    return rng.choice(OPENERS) + " ".join(sentences) + extras + rng.choice(CLOSERS)
