"""Turn selected traces into texts and vectors for clustering (scikit-learn).

Contract:
- ``describe_trace`` builds three texts per trace from redacted fields only:
  * ``signals``: categorical tokens (selection reasons, where the failure happened: span kind
    of the failing spans, the failure concepts of their messages - ``concept_none`` when no
    concept matches - finish reasons, retrieval facts), weighted most;
  * ``error``: the messages and exception types of the failing leaf spans (ERROR spans with no
    ERROR child) and the names of those spans, masked;
  * ``context``: the root's error message and an output snippet, masked, weighted least.
- ``mask_text`` replaces what varies within one failure mode by tokens, so numbers, ids and
  placeholders never split a mode: redaction placeholders (``<EMAIL_ADDRESS>``) and raw emails
  become ``pii<type>``, URLs ``xurl``, UUIDs ``xuuid``, hex runs ``xhex``, identifiers mixing
  letters and digits ``xid``, numbers ``xnum``.  HTTP-like status codes (4xx/5xx after "code",
  "HTTP" or before a word) are kept as ``httpNNN`` because they name the failure.  CamelCase
  and snake_case are split into words ("RateLimitError" -> "rate limit error").  Results are
  cached (``MASK_CACHE_SIZE`` texts), as are the per-leaf descriptions.
- ``vectorize`` fits TF-IDF on word 1-2 grams and on character 3-5 grams (within words) of the
  error text, plus the signal and context blocks, each block L2-normalised and weighted, then
  reduces with TruncatedSVD and L2-normalises the rows.  It works on distinct descriptions only,
  and each block on its distinct texts (IDF still counted over all descriptions); character
  n-grams are cut once per distinct word.  That is what keeps 100k traces fast.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.preprocessing import normalize

_PLACEHOLDER = re.compile(r"<([A-Z][A-Z_]{2,40})>")
# The lookbehind makes a match start only at the beginning of a run of address characters (the
# leftmost match is the same, without rescanning the run from every position inside it).
_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[\w-]+\.[\w.-]+")
_URL = re.compile(r"\b(?:https?|wss?|grpc)://[^\s'\"<>)]+")
_UUID = re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b")
_HEX = re.compile(r"\b(?:0x)?(?=[0-9a-fA-F]*\d)(?=[0-9a-fA-F]*[a-fA-F])[0-9a-fA-F]{8,}\b")
_MIXED_ID = re.compile(r"\b(?=[\w-]*[A-Za-z])(?=[\w-]*\d)[A-Za-z0-9][\w-]{5,}\b")
_HTTP_CODE = re.compile(r"(?:(?<=[\s'\"(:])|^)([45]\d\d)(?=\s+(?:-|[A-Z])|['\"]?\s*$)")
_NUMBER = re.compile(r"(?<![A-Za-z0-9])[-+]?\d[\d,_]*(?:\.\d+)?(?:e[-+]?\d+)?")
# CamelCase boundaries: a space after the character that ends a word ("aB" -> "a B", "ABc" -> "A Bc").
_CAMEL = re.compile(r"([a-z0-9])(?=[A-Z])|([A-Z])(?=[A-Z][a-z])")
_DIGIT = re.compile(r"\d")
_UPPER = re.compile(r"[A-Z]")
# Separators and white space both become one space.
_SEPARATORS = re.compile(r"[\s_./\\:=|]+")
_NON_WORD = re.compile(r"\W+")
# Failure concepts that providers word differently: a message matching the pattern (on masked,
# lower-cased text) gets the concept token, so "504 Deadline Exceeded" and "Request timed out"
# land together.  Kept small and generic: HTTP semantics and common client exceptions.
ERROR_CONCEPTS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(pattern)) for name, pattern in (
        ("concept_timeout", r"time[ds]? ?out|deadline|did not (respond|answer)|took too long|no response"
                            r"|http504|http408"),
        ("concept_rate_limit", r"rate ?limit|too many requests|http429|quota|resource (has been )?exhausted"
                               r"|throttl|try again in"),
        ("concept_context_length", r"context (length|window|size|limit)|too (long|large|big)|too many tokens"
                                   r"|max(imum)? (model )?(len|length)|maximum number of tokens|token (count|limit)"
                                   r"|exceeds? (the )?max|tokens? > xnum|reduce the length|http413"),
        ("concept_server_error", r"http50[0-3]|http529|overloaded|server (had an )?error|internal error"
                                 r"|unavailable|bad gateway|connection error|not ready"),
        ("concept_schema", r"validation error|required property|not of type|valid (number|integer|string)"
                           r"|json ?decode|expecting (value|property|',')|unterminated string|field required"
                           r"|schema"),
        ("concept_auth", r"http40[13]|forbidden|unauthori[sz]ed|permission|scope|api key"),
        ("concept_connection", r"connection (refused|reset|aborted)|failed to establish|max retries"
                               r"|name or service not known|unreachable"),
        ("concept_not_found", r"http404|not found|no such|key ?error|missing key"),
    )
)
MASK_TOKENS = frozenset({"xurl", "xuuid", "xhex", "xid", "xnum"})
MAX_ERROR_CHARS = 600
MASK_CACHE_SIZE = 1 << 16


@lru_cache(maxsize=MASK_CACHE_SIZE)
def mask_text(text: str) -> str:
    """Mask the variable parts of a message (see the module docstring).

    Each rule runs only when the text holds what it needs (a digit, an "@", "://"...), and
    results are cached: the same messages recur across traces.
    """
    if "<" in text:
        text = _PLACEHOLDER.sub(lambda m: " pii" + m.group(1).lower().replace("_", "") + " ", text)
    if "@" in text:
        text = _EMAIL.sub(" piiemailaddress ", text)
    if "://" in text:
        text = _URL.sub(" xurl ", text)
    if text.count("-") >= 4:
        text = _UUID.sub(" xuuid ", text)
    if _DIGIT.search(text) is not None:
        text = _HTTP_CODE.sub(lambda m: " http" + m.group(1) + " ", text)
        text = _MIXED_ID.sub(lambda m: m.group(0) if m.group(0).startswith("http") else " xid ", text)
        text = _HEX.sub(" xhex ", text)
        text = _NUMBER.sub(" xnum ", text)
    if _UPPER.search(text) is not None:
        text = _CAMEL.sub(r"\1\2 ", text)
    return _SEPARATORS.sub(" ", text).strip().lower()


def _score_bucket(score: float | None) -> str:
    if score is None or score != score:
        return ""
    if score < 0.5:
        return "retrieval_top_low"
    if score < 0.8:
        return "retrieval_top_mid"
    return "retrieval_top_high"


@dataclass(frozen=True, slots=True)
class TraceDescription:
    """The three texts that represent one trace."""

    signals: str
    error: str
    context: str

    def key(self) -> str:
        return f"{self.signals}\x1f{self.error}\x1f{self.context}"

    def partition(self) -> str:
        """Why the trace was selected (its reason tokens): clusters never span two partitions.

        A trace selected for low groundedness is also partitioned by its retrieval facts (top
        score low / mid / high): an ungrounded answer over weak retrieval is a retrieval problem,
        over strong retrieval a generation problem, and the answers' texts alone cannot tell them
        apart.
        """
        tokens = self.signals.split()
        keep = ("reason_", "retrieval_") if "reason_low_groundedness" in tokens else ("reason_",)
        return " ".join(t for t in tokens if t.startswith(keep))


@lru_cache(maxsize=MASK_CACHE_SIZE)
def error_concepts(masked: str) -> tuple[str, ...]:
    """The ``ERROR_CONCEPTS`` a masked, lower-cased message mentions."""
    return tuple(concept for concept, pattern in ERROR_CONCEPTS if pattern.search(masked))


@lru_cache(maxsize=MASK_CACHE_SIZE)
def _describe_leaf(leaf: str) -> tuple[tuple[str, ...], str]:
    """Signal tokens and masked "name message" text of one ``kind|name|error type|message``."""
    kind, name, etype, message = (leaf.split("|", 3) + ["", "", "", ""])[:4]
    text = mask_text(f"{etype} {message[:MAX_ERROR_CHARS]}")
    # An error no concept recognises is its own kind ("concept_none"), not a weaker copy of the
    # nearest recognised one: reworded messages are not absorbed by the biggest cluster.
    return (f"failed_in_{kind.lower()}", *(error_concepts(text) or ("concept_none",))), f"{mask_text(name)} {text}"


def describe_trace(row: dict[str, Any]) -> TraceDescription:
    """Texts of one selected trace (a row of ``select_failing_traces``)."""
    signals: list[str] = [f"reason_{r}" for r in sorted(row.get("reasons") or [])]
    errors: list[str] = []
    seen: set[str] = set()
    for leaf in row.get("leaf_errors") or []:
        leaf_signals, named = _describe_leaf(leaf)
        signals.extend(leaf_signals)
        if named not in seen:
            seen.add(named)
            errors.append(named)
    if row.get("tool_names") and "failed_in_tool" in signals:
        signals.append("tool_call")
    for reason in row.get("finish_reasons") or []:
        if reason and reason != "stop":
            signals.append("finish_" + _NON_WORD.sub("_", reason.lower()))
    if row.get("num_documents") == 0:
        signals.append("retrieval_empty")
    bucket = _score_bucket(row.get("top_retrieval_score"))
    if bucket:
        signals.append(bucket)
    if row.get("uncited_reference"):
        signals.append("reason_cites_unretrieved_document")
    if not errors:
        signals.append("no_error")
    context = " ".join(mask_text(t) for t in (row.get("root_error"), row.get("output_snippet")) if t)
    return TraceDescription(" ".join(sorted(set(signals))), " ; ".join(errors), context)


@dataclass(frozen=True, slots=True)
class FeatureSettings:
    """Weights and sizes of the representation (set by developers)."""

    signal_weight: float = 1.5
    reason_weight: float = 0.0
    word_weight: float = 0.8
    char_weight: float = 0.8
    context_weight: float = 0.3
    svd_components: int = 48
    max_char_features: int = 50_000
    char_ngram_range: tuple[int, int] = (3, 5)
    svd_iterations: int = 5
    random_state: int = 0


@dataclass(frozen=True, slots=True)
class Vectors:
    """Reduced vectors of the distinct descriptions, and the word TF-IDF used for naming."""

    reduced: npt.NDArray[np.float64]
    words: sp.csr_matrix
    word_terms: list[str]


def _distinct(texts: Sequence[str]) -> tuple[list[str], npt.NDArray[np.int64]]:
    """Distinct texts and, for each input, the index of its distinct text."""
    index: dict[str, int] = {}
    inverse = np.fromiter((index.setdefault(t, len(index)) for t in texts), dtype=np.int64, count=len(texts))
    return list(index), inverse


def _tfidf(counts: sp.csr_matrix, multiplicity: npt.NDArray[np.int64], sublinear: bool) -> sp.csr_matrix:
    """L2-normalised TF-IDF rows of distinct texts, the IDF counted over all rows (each distinct text
    ``multiplicity`` times), as ``TfidfVectorizer`` (smooth IDF) computes it on the repeated rows."""
    n = float(multiplicity.sum())
    df = np.asarray((counts > 0).astype(np.float64).T @ multiplicity.astype(np.float64)).ravel()
    idf = (np.log((1.0 + n) / (1.0 + df)) + 1.0).astype(np.float32)
    matrix = sp.csr_matrix(counts, dtype=np.float32, copy=True)
    if sublinear:
        np.log(matrix.data, out=matrix.data)
        matrix.data += 1.0
    matrix.data *= idf[matrix.indices]
    return normalize(matrix)


def _block(texts: Sequence[str], counter: CountVectorizer, sublinear: bool,
           max_features: int | None = None) -> tuple[sp.csr_matrix, list[str]] | None:
    """TF-IDF block of ``texts`` (rows in input order), computed once per distinct text."""
    distinct, inverse = _distinct(texts)
    if not any(t.strip() for t in distinct):
        return None
    try:
        counts = sp.csr_matrix(counter.fit_transform(distinct))
    except ValueError:  # empty vocabulary
        return None
    terms = list(counter.get_feature_names_out())
    multiplicity = np.bincount(inverse, minlength=len(distinct))
    if max_features is not None and counts.shape[1] > max_features:
        keep = _top_columns(counts, multiplicity, max_features)
        counts, terms = counts[:, keep], [terms[j] for j in keep]
    return _tfidf(counts, multiplicity, sublinear)[inverse], terms


def _top_columns(counts: sp.csr_matrix, multiplicity: npt.NDArray[np.int64], limit: int) -> npt.NDArray[np.int64]:
    """The ``limit`` most frequent columns over all rows (``max_features``), in column order."""
    totals = np.asarray(counts.T @ multiplicity.astype(np.int64)).ravel()
    return np.sort((-totals).argsort(kind="stable")[:limit])


def _char_counts(texts: Sequence[str], ngram_range: tuple[int, int]) -> tuple[sp.csr_matrix, list[str]] | None:
    """Character n-gram counts within words (``analyzer="char_wb"``), computed per distinct word.

    ``char_wb`` cuts each white-space separated word on its own, so a text's n-gram counts are
    the sum of its words' n-gram counts: (text x word counts) @ (word x n-gram counts).  Texts
    repeat few distinct words (they are masked), so this is much faster than cutting every text.
    """
    words = CountVectorizer(tokenizer=str.split, token_pattern=None, lowercase=True)
    try:
        text_words = sp.csr_matrix(words.fit_transform(texts))
    except ValueError:  # no word at all
        return None
    grams = CountVectorizer(analyzer="char_wb", ngram_range=ngram_range, lowercase=False)
    word_grams = sp.csr_matrix(grams.fit_transform(list(words.get_feature_names_out())))
    return sp.csr_matrix(text_words @ word_grams), list(grams.get_feature_names_out())


def _char_block(texts: Sequence[str], settings: FeatureSettings) -> sp.csr_matrix | None:
    distinct, inverse = _distinct(texts)
    if not any(t.strip() for t in distinct):
        return None
    found = _char_counts(distinct, settings.char_ngram_range)
    if found is None:
        return None
    counts, _ = found
    multiplicity = np.bincount(inverse, minlength=len(distinct))
    if counts.shape[1] > settings.max_char_features:
        counts = counts[:, _top_columns(counts, multiplicity, settings.max_char_features)]
    return _tfidf(counts, multiplicity, sublinear=True)[inverse]


def vectorize(descriptions: Sequence[TraceDescription], settings: FeatureSettings) -> Vectors:
    """TF-IDF blocks -> weighted hstack -> TruncatedSVD -> L2-normalised rows.

    Each block is computed on its distinct texts (many descriptions share their error text or
    their signals), with IDF counted over all descriptions.
    """
    signals = [d.signals for d in descriptions]
    errors = [d.error for d in descriptions]
    contexts = [d.context for d in descriptions]
    token = r"(?u)\b[a-z][a-z0-9]+\b"
    blocks: list[sp.csr_matrix] = []
    sig = _block(signals, CountVectorizer(token_pattern=r"\S+", lowercase=False), sublinear=False)
    if sig is not None:
        blocks.append(sig[0] * settings.signal_weight)
    # What made the trace worth grouping, alone: two traces with the same signals but a different
    # reason (a fallback after a timeout vs a plain timeout) must stay apart.
    if settings.reason_weight > 0:
        reasons = [" ".join(t for t in d.signals.split() if t.startswith("reason_") and t != "reason_error")
                   or "reason_error_only" for d in descriptions]
        rsn = _block(reasons, CountVectorizer(token_pattern=r"\S+", lowercase=False), sublinear=False)
        if rsn is not None:
            blocks.append(rsn[0] * settings.reason_weight)
    found = _block(errors, CountVectorizer(token_pattern=token, ngram_range=(1, 2), lowercase=False),
                   sublinear=True)
    if found is not None:
        words, word_terms = found
        blocks.append(words * settings.word_weight)
    else:
        words, word_terms = sp.csr_matrix((len(descriptions), 0), dtype=np.float32), []
    chars = _char_block(errors, settings)
    if chars is not None:
        blocks.append(chars * settings.char_weight)
    ctx = _block(contexts, CountVectorizer(token_pattern=token, lowercase=False), sublinear=True)
    if ctx is not None:
        blocks.append(ctx[0] * settings.context_weight)
    if not blocks:
        return Vectors(np.ones((len(descriptions), 1)), words, word_terms)
    stacked = sp.hstack(blocks, format="csr")
    n_components = min(settings.svd_components, stacked.shape[1] - 1, len(descriptions) - 1)
    if n_components >= 2:
        reduced = TruncatedSVD(n_components=n_components, random_state=settings.random_state,
                               algorithm="randomized", n_iter=settings.svd_iterations).fit_transform(stacked)
    else:
        reduced = stacked.toarray()
    return Vectors(normalize(np.asarray(reduced, dtype=np.float64)), sp.csr_matrix(words), word_terms)
