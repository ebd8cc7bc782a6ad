"""Turn selected traces into texts and vectors for clustering (scikit-learn).

Contract:
- ``describe_trace`` builds three texts per trace from redacted fields only:
  * ``signals``: categorical tokens (selection reasons, where the failure happened: span kind
    of the failing spans, finish reasons, retrieval facts), weighted most;
  * ``error``: the messages and exception types of the failing leaf spans (ERROR spans with no
    ERROR child) and the names of those spans, masked;
  * ``context``: the root's error message and an output snippet, masked, weighted least.
- ``mask_text`` replaces what varies within one failure mode by tokens, so numbers, ids and
  placeholders never split a mode: redaction placeholders (``<EMAIL_ADDRESS>``) and raw emails
  become ``pii<type>``, URLs ``xurl``, UUIDs ``xuuid``, hex runs ``xhex``, identifiers mixing
  letters and digits ``xid``, numbers ``xnum``.  HTTP-like status codes (4xx/5xx after "code",
  "HTTP" or before a word) are kept as ``httpNNN`` because they name the failure.  CamelCase
  and snake_case are split into words ("RateLimitError" -> "rate limit error").
- ``vectorize`` fits TF-IDF on word 1-2 grams and on character 3-5 grams (within words) of the
  error text, plus the signal and context blocks, each block L2-normalised and weighted, then
  reduces with TruncatedSVD and L2-normalises the rows.  It works on distinct descriptions only
  (``unique_index``), which is what keeps 100k traces fast.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import normalize

_PLACEHOLDER = re.compile(r"<([A-Z][A-Z_]{2,40})>")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+")
_URL = re.compile(r"\b(?:https?|wss?|grpc)://[^\s'\"<>)]+")
_UUID = re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b")
_HEX = re.compile(r"\b(?:0x)?(?=[0-9a-fA-F]*\d)(?=[0-9a-fA-F]*[a-fA-F])[0-9a-fA-F]{8,}\b")
_MIXED_ID = re.compile(r"\b(?=[\w-]*[A-Za-z])(?=[\w-]*\d)[A-Za-z0-9][\w-]{5,}\b")
_HTTP_CODE = re.compile(r"(?:(?<=[\s'\"(:])|^)([45]\d\d)(?=\s+(?:-|[A-Z])|['\"]?\s*$)")
_NUMBER = re.compile(r"(?<![A-Za-z0-9])[-+]?\d[\d,_]*(?:\.\d+)?(?:e[-+]?\d+)?")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_SEPARATORS = re.compile(r"[_./\\:=|]+")
_SPACES = re.compile(r"\s+")
# Failure concepts that providers word differently: a message matching the pattern (on masked,
# lower-cased text) gets the concept token, so "504 Deadline Exceeded" and "Request timed out"
# land together.  Kept small and generic: HTTP semantics and common client exceptions.
ERROR_CONCEPTS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(pattern)) for name, pattern in (
        ("concept_timeout", r"time[ds]? ?out|deadline|did not (respond|answer)|took too long|no response"
                            r"|http504|http408"),
        ("concept_rate_limit", r"rate ?limit|too many requests|http429|quota|resource (has been )?exhausted"
                               r"|throttl|try again in"),
        ("concept_context_length", r"context (length|window)|too long|max(imum)? (model )?(len|length)"
                                   r"|maximum number of tokens|token count|exceeds? (the )?max"),
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


def mask_text(text: str) -> str:
    """Mask the variable parts of a message (see the module docstring)."""
    text = _PLACEHOLDER.sub(lambda m: " pii" + m.group(1).lower().replace("_", "") + " ", text)
    text = _EMAIL.sub(" piiemailaddress ", text)
    text = _URL.sub(" xurl ", text)
    text = _UUID.sub(" xuuid ", text)
    text = _HTTP_CODE.sub(lambda m: " http" + m.group(1) + " ", text)
    text = _MIXED_ID.sub(lambda m: m.group(0) if m.group(0).startswith("http") else " xid ", text)
    text = _HEX.sub(" xhex ", text)
    text = _NUMBER.sub(" xnum ", text)
    text = _CAMEL.sub(" ", text)
    text = _SEPARATORS.sub(" ", text)
    return _SPACES.sub(" ", text).strip().lower()


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
        """Why the trace was selected (its reason tokens): clusters never span two partitions."""
        return " ".join(t for t in self.signals.split() if t.startswith("reason_"))


def describe_trace(row: dict[str, Any]) -> TraceDescription:
    """Texts of one selected trace (a row of ``select_failing_traces``)."""
    signals: list[str] = [f"reason_{r}" for r in sorted(row.get("reasons") or [])]
    errors: list[str] = []
    seen: set[str] = set()
    for leaf in row.get("leaf_errors") or []:
        kind, name, etype, message = (leaf.split("|", 3) + ["", "", "", ""])[:4]
        signals.append(f"failed_in_{kind.lower()}")
        text = mask_text(f"{etype} {message[:MAX_ERROR_CHARS]}")
        signals.extend(concept for concept, pattern in ERROR_CONCEPTS if pattern.search(text))
        named = f"{mask_text(name)} {text}"
        if named not in seen:
            seen.add(named)
            errors.append(named)
    if row.get("tool_names") and any(s == "failed_in_tool" for s in signals):
        signals.append("tool_call")
    for reason in row.get("finish_reasons") or []:
        if reason and reason != "stop":
            signals.append("finish_" + re.sub(r"\W+", "_", reason.lower()))
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
    random_state: int = 0


@dataclass(frozen=True, slots=True)
class Vectors:
    """Reduced vectors of the distinct descriptions, and the word TF-IDF used for naming."""

    reduced: npt.NDArray[np.float64]
    words: sp.csr_matrix
    word_terms: list[str]


def _fit_block(vectorizer: TfidfVectorizer, texts: Sequence[str]) -> sp.csr_matrix | None:
    if not any(t.strip() for t in texts):
        return None
    try:
        matrix = vectorizer.fit_transform(texts)
    except ValueError:  # empty vocabulary
        return None
    return normalize(sp.csr_matrix(matrix))


def vectorize(descriptions: Sequence[TraceDescription], settings: FeatureSettings) -> Vectors:
    """TF-IDF blocks -> weighted hstack -> TruncatedSVD -> L2-normalised rows."""
    signals = [d.signals for d in descriptions]
    errors = [d.error for d in descriptions]
    contexts = [d.context for d in descriptions]
    token = r"(?u)\b[a-z][a-z0-9]+\b"
    word_vec = TfidfVectorizer(token_pattern=token, ngram_range=(1, 2), sublinear_tf=True,
                               lowercase=False, dtype=np.float32)
    blocks: list[sp.csr_matrix] = []
    sig = _fit_block(TfidfVectorizer(token_pattern=r"\S+", lowercase=False, dtype=np.float32), signals)
    if sig is not None:
        blocks.append(sig * settings.signal_weight)
    # What made the trace worth grouping, alone: two traces with the same signals but a different
    # reason (a fallback after a timeout vs a plain timeout) must stay apart.
    reasons = [" ".join(t for t in d.signals.split() if t.startswith("reason_") and t != "reason_error")
               or "reason_error_only" for d in descriptions]
    rsn = _fit_block(TfidfVectorizer(token_pattern=r"\S+", lowercase=False, dtype=np.float32), reasons)
    if rsn is not None and settings.reason_weight > 0:
        blocks.append(rsn * settings.reason_weight)
    words = _fit_block(word_vec, errors)
    if words is not None:
        blocks.append(words * settings.word_weight)
        word_terms = list(word_vec.get_feature_names_out())
    else:
        words, word_terms = sp.csr_matrix((len(descriptions), 0), dtype=np.float32), []
    chars = _fit_block(TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True,
                                       max_features=settings.max_char_features, dtype=np.float32), errors)
    if chars is not None:
        blocks.append(chars * settings.char_weight)
    ctx = _fit_block(TfidfVectorizer(token_pattern=token, sublinear_tf=True, lowercase=False,
                                     dtype=np.float32), contexts)
    if ctx is not None:
        blocks.append(ctx * settings.context_weight)
    if not blocks:
        return Vectors(np.ones((len(descriptions), 1)), words, word_terms)
    stacked = sp.hstack(blocks, format="csr")
    n_components = min(settings.svd_components, stacked.shape[1] - 1, len(descriptions) - 1)
    if n_components >= 2:
        reduced = TruncatedSVD(n_components=n_components, random_state=settings.random_state,
                               algorithm="randomized", n_iter=5).fit_transform(stacked)
    else:
        reduced = stacked.toarray()
    return Vectors(normalize(np.asarray(reduced, dtype=np.float64)), words, word_terms)
