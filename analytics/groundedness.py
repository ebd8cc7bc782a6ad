"""Built-in groundedness scorer: is the answer supported by the trace's retrieved documents?

No LLM and no model download: a lexical method that runs at thousands of traces per second.

Method, per trace (answer = ``traces.output_text``, documents = the trace's ``retrievals``):

1. Split the answer into sentences (``.``, ``!``, ``?`` followed by space and a capital or
   digit; line breaks and list bullets also split).  A sentence with fewer than
   ``MIN_CLAIM_TOKENS`` content words ("Thanks for asking!") is not a claim and is ignored;
   so is a sentence with no number, entity or citation that shares less than
   ``MIN_TOPICAL_COVERAGE`` (20%) of its words with the documents (chatter such as "reply
   here if anything is unclear" — the price: an invented sentence on an unrelated subject
   is not counted against the answer).
2. Normalise words: lower case, drop stop words, strip common English suffixes (a light
   Porter-style stemmer: plural ``s``/``es``/``ies``, ``ing``, ``ed``, ``ly``), so "refunded"
   matches "refund".  Numbers are compared with thousands separators removed ("1,000" =
   "1000").
3. A claim is **supported** when all of these hold:
   - every number in it appears in the documents (a wrong figure is the commonest
     hallucination and changes only one token, so overlap alone cannot catch it);
   - every named entity in it appears in the documents — entities are capitalised words not
     at the start of the sentence and all-capital acronyms (SAML, HTTP);
   - every document id it cites ("(see kb-1042)", "[doc-7]") is one of the retrieved
     documents' ids (a citation of a document that was not retrieved is hallucinated);
   - at least ``MIN_COVERAGE`` (60%) of its distinct content words (stemmed) appear in one
     single sentence of the documents (a wrong value often uses words found elsewhere in the
     documents, rarely in the sentence that states the fact).
4. Trace score = share of claims that are supported, in [0, 1].  Traces without retrieved
   content or without an answer, and answers without any claim, get no score (NULL): the
   ``traces`` view then reports no groundedness for them.

Limits: paraphrases with different words ("cancel" vs "terminate") count as unsupported;
a claim that recombines true facts from different documents can pass; negation is not
modelled.  Scores posted by humans, LLM judges or evaluator spans take precedence over this
one (``traces.groundedness`` ranks sources).

``score_store(data_dir)`` scores every trace not yet scored by this scorer and appends the
results to the ``evaluations`` Delta table (source ``builtin``, name ``groundedness``, label
``grounded`` when score >= 0.5, explanation "k of n claims supported").
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path

import pyarrow as pa
from deltalake import write_deltalake

from analytics.views import open_store
from collector.schema import EVALUATIONS_SCHEMA, EVALUATIONS_TABLE, PARTITION_COLUMN, table_path

SOURCE = "builtin"
NAME = "groundedness"
MIN_COVERAGE = 0.6
MIN_CLAIM_TOKENS = 3
MIN_TOPICAL_COVERAGE = 0.2
GROUNDED_THRESHOLD = 0.5
WRITE_BATCH_ROWS = 100_000

_STOP_WORDS = frozenset("""
a about above after again against all also am an and any are as at be because been before
being below between both but by can could did do does doing down during each few for from
further had has have having he her here hers herself him himself his how i if in into is it
its itself just me more most my myself no nor not of off on once only or other our ours
ourselves out over own same she should so some such than that the their theirs them
themselves then there these they this those through to too under until up very was we were
what when where which while who whom why will with would you your yours yourself
yourselves usually please thanks thank hi hello sure yes let us may might must shall get
got go goes going one ones s t don doesn isn aren wasn weren won can't don't it's you're
""".split())
# "not" is a stop word for overlap, but kept as a content word so negations count.
_STOP_WORDS = _STOP_WORDS - {"not", "no", "nor"}

_SENTENCE_SPLIT = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])|\n+\s*(?:[-*•]|\d+[.)])?\s*")
_WORD = re.compile(r"[A-Za-z0-9]+(?:[.,'’\-][A-Za-z0-9]+)*")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_CITATION = re.compile(
    r"\((?:see|source|sources|ref|cf\.?)[:\s]+([A-Za-z0-9_.:/\-]+)\)|\[([A-Za-z0-9_.:/\-]+)\]",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class GroundednessResult:
    """Score of one answer: ``score`` is None when the answer makes no claim."""

    score: float | None
    num_claims: int
    num_supported: int


@dataclass(frozen=True, slots=True)
class ScoreReport:
    num_scored: int
    num_without_claims: int
    elapsed_s: float


def split_sentences(text: str) -> list[str]:
    """Sentences of an answer (see the module docstring, step 1)."""
    return [part.strip() for part in _SENTENCE_SPLIT.split(text) if part and part.strip()]


@lru_cache(maxsize=65536)
def _stem(word: str) -> str:
    stem = word
    if len(word) >= 5 and word.endswith("ies"):
        stem = word[:-3] + "y"
    elif len(word) >= 6 and word.endswith("ing"):
        stem = word[:-3]
    elif len(word) >= 5 and word.endswith("ed"):
        stem = word[:-2]
    elif len(word) >= 5 and word.endswith("ly"):
        stem = word[:-2]
    elif len(word) >= 5 and word.endswith(("ches", "shes", "sses", "xes", "zes")):
        stem = word[:-2]
    elif len(word) >= 4 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        stem = word[:-1]
    if len(stem) >= 4 and stem.endswith("e"):
        stem = stem[:-1]  # "expire", "expires", "expired" -> "expir"
    return stem


def _normalise_number(token: str) -> str:
    return token.replace(",", "").rstrip(".")


def _content_words(text: str) -> list[str]:
    words = []
    for match in _WORD.finditer(text):
        word = match.group().lower().replace("’", "'")
        if word in _STOP_WORDS or len(word) < 2 and not word.isdigit():
            continue
        words.append(_normalise_number(word) if word[0].isdigit() else _stem(word))
    return words


@dataclass(frozen=True, slots=True)
class _Sentence:
    words: frozenset[str]  # distinct content words, stemmed
    numbers: frozenset[str]
    entities: frozenset[str]
    cited: tuple[str, ...]


@lru_cache(maxsize=65536)
def _analyse_sentence(sentence: str) -> _Sentence:
    """Words, numbers, entities and citations of one answer sentence (cached: answers
    repeat boilerplate sentences)."""
    cited = tuple(a or b for a, b in _CITATION.findall(sentence))
    plain = _CITATION.sub(" ", sentence)
    return _Sentence(
        frozenset(_content_words(plain)),
        frozenset(_normalise_number(m.group()) for m in _NUMBER.finditer(plain)),
        frozenset(_entities(plain)),
        cited,
    )


@dataclass(frozen=True, slots=True)
class _DocIndex:
    words: frozenset[str]
    numbers: frozenset[str]
    sentences: tuple[frozenset[str], ...]


@lru_cache(maxsize=16384)
def _index_document(content: str) -> _DocIndex:
    words = set(_content_words(content))
    # Every word, stemmed, also stop words: entities like "Team" may be common words.
    words.update(_stem(m.group().lower()) for m in _WORD.finditer(content))
    numbers = frozenset(_normalise_number(m.group()) for m in _NUMBER.finditer(content))
    sentences = tuple(frozenset(_content_words(part)) for part in split_sentences(content))
    return _DocIndex(frozenset(words), numbers, sentences)


def _entities(sentence: str) -> list[str]:
    found = []
    for i, match in enumerate(_WORD.finditer(sentence)):
        word = match.group()
        if "'" in word or "’" in word:
            continue  # contractions ("I'll", "Here's") are not names
        if word[0].isupper() and (i > 0 or (len(word) > 1 and word.isupper())):
            if word.lower() not in _STOP_WORDS or word.isupper():
                found.append(_stem(word.lower()))
    return found


def score_answer(answer: str, documents: Sequence[str],
                 document_ids: Iterable[str | None] = (), *,
                 min_claim_tokens: int = MIN_CLAIM_TOKENS,
                 min_topical_coverage: float = MIN_TOPICAL_COVERAGE) -> GroundednessResult:
    """Score one answer against its retrieved documents (contents and ids).

    ``min_claim_tokens`` and ``min_topical_coverage`` decide which sentences are claims
    (module docstring, step 1); short-answer QA sets want 1 and 0.

    >>> docs = ["Annual plans can be refunded within 14 days of purchase."]
    >>> score_answer("You can get a refund on an annual plan within 14 days of purchase.", docs).score
    1.0
    >>> score_answer("You can get a refund on an annual plan within 30 days of purchase.", docs).score
    0.0
    """
    indexes = [_index_document(doc) for doc in documents if doc]
    doc_words: set[str] = set().union(*(ix.words for ix in indexes)) if indexes else set()
    doc_numbers: set[str] = set().union(*(ix.numbers for ix in indexes)) if indexes else set()
    doc_sentences = [sentence for ix in indexes for sentence in ix.sentences]
    known_ids = {doc_id.lower() for doc_id in document_ids if doc_id}
    num_claims = num_supported = 0
    for sentence in split_sentences(answer):
        claim = _analyse_sentence(sentence)
        words = claim.words
        if len(words) < min_claim_tokens or not words:
            continue
        coverage = len(words & doc_words) / len(words)
        cited, numbers, entities = claim.cited, claim.numbers, claim.entities
        if not (cited or numbers or entities or coverage >= min_topical_coverage):
            continue  # chatter that makes no checkable statement about the documents
        num_claims += 1
        if any(doc_id.lower() not in known_ids for doc_id in cited):
            continue
        if not numbers <= doc_numbers:
            continue
        if any(entity not in doc_words for entity in entities):
            continue
        # Coverage by the best single document sentence: a wrong value often uses words
        # found elsewhere in the documents, rarely in the sentence that states the fact.
        best = max((len(words & sentence) for sentence in doc_sentences), default=0)
        if best / len(words) >= MIN_COVERAGE:
            num_supported += 1
    if num_claims == 0:
        return GroundednessResult(None, 0, 0)
    return GroundednessResult(num_supported / num_claims, num_claims, num_supported)


_UNSCORED_SQL = f"""
WITH docs AS (
    SELECT trace_id, list(document_id) AS document_ids, list(content) AS contents
    FROM retrievals WHERE content IS NOT NULL GROUP BY trace_id
),
done AS (
    SELECT DISTINCT trace_id FROM evaluations WHERE name = '{NAME}' AND source = '{SOURCE}'
),
roots AS (
    SELECT trace_id, arg_min(span_id, start_time) AS span_id
    FROM spans WHERE parent_span_id IS NULL GROUP BY trace_id
)
SELECT t.trace_id, r.span_id, t.start_time, t.output_text, d.document_ids, d.contents
FROM traces t
JOIN docs d ON d.trace_id = t.trace_id
LEFT JOIN roots r ON r.trace_id = t.trace_id
WHERE t.output_text IS NOT NULL AND t.output_text <> ''
  AND t.trace_id NOT IN (SELECT trace_id FROM done)
"""


def score_store(data_dir: Path, now: datetime | None = None) -> ScoreReport:
    """Score the traces the built-in scorer has not scored yet; append to ``evaluations``.

    Answers without claims are not written (they stay unscored and are looked at again next
    time, which costs little).  Returns counts and the elapsed time.
    """
    started = time.perf_counter()
    created_at = (now or datetime.now(timezone.utc)).replace(tzinfo=None)
    con = open_store(data_dir)
    try:
        reader = con.sql(_UNSCORED_SQL).to_arrow_reader(50_000)
        num_scored = num_empty = 0
        pending: list[pa.Table] = []
        pending_rows = 0
        for batch in reader:
            table = _score_batch(batch, created_at)
            num_scored += table.num_rows
            num_empty += batch.num_rows - table.num_rows
            pending.append(table)
            pending_rows += table.num_rows
            if pending_rows >= WRITE_BATCH_ROWS:
                _append(data_dir, pending)
                pending, pending_rows = [], 0
        _append(data_dir, pending)
    finally:
        con.close()
    return ScoreReport(num_scored, num_empty, time.perf_counter() - started)


def _score_batch(batch: pa.RecordBatch, created_at: datetime) -> pa.Table:
    columns = batch.to_pydict()
    out: dict[str, list[object]] = {name: [] for name in EVALUATIONS_SCHEMA.names}
    for trace_id, span_id, start, answer, ids, contents in zip(
        columns["trace_id"], columns["span_id"], columns["start_time"], columns["output_text"],
        columns["document_ids"], columns["contents"],
    ):
        result = score_answer(answer, contents, ids)
        if result.score is None:
            continue
        out["trace_id"].append(trace_id)
        out["span_id"].append(span_id)
        out["name"].append(NAME)
        out["score"].append(result.score)
        out["label"].append("grounded" if result.score >= GROUNDED_THRESHOLD else "ungrounded")
        out["explanation"].append(
            f"{result.num_supported} of {result.num_claims} claims supported")
        out["source"].append(SOURCE)
        out["created_at"].append(created_at)
        out[PARTITION_COLUMN].append(start.date())
    return pa.table(out, schema=EVALUATIONS_SCHEMA)


def _append(data_dir: Path, tables: list[pa.Table]) -> None:
    tables = [t for t in tables if t.num_rows]
    if not tables:
        return
    write_deltalake(
        str(table_path(data_dir, EVALUATIONS_TABLE)), pa.concat_tables(tables),
        mode="append", partition_by=[PARTITION_COLUMN],
    )
