"""Presidio recognizers that tracewatch adds to the predefined ones.

Secrets (entity types are part of the redaction config and of the placeholders written to
the store, e.g. ``<API_KEY>``):

- ``API_KEY``: OpenAI keys (``sk-...``, ``sk-proj-...``, ``sk-svcacct-...``), Anthropic keys
  (``sk-ant-...``) and generic high-entropy values written after a key-like name
  (``api_key=...``, ``"client_secret": "..."``, ``X-API-Key: ...``).  Only the value is
  replaced; the name stays, so ``api_key=<API_KEY>`` still tells the reader what was there.
- ``AWS_ACCESS_KEY``: access key ids (``AKIA...``, ``ASIA...``) and secret access keys
  (40 characters) after an ``aws_secret_access_key``-like name.
- ``GITHUB_TOKEN``: ``ghp_``/``gho_``/``ghu_``/``ghs_``/``ghr_`` tokens and ``github_pat_``.
- ``JWT``: three base64url parts, the first two starting ``eyJ`` (a JSON object).
- ``BEARER_TOKEN``: the credential after ``Bearer`` (the word itself stays).
- ``PRIVATE_KEY``: PEM ``-----BEGIN ... PRIVATE KEY-----`` blocks over several lines; a
  block without its END line (a truncated log line) is replaced up to the end of the text.

Personal data tuned here:

- ``PHONE_NUMBER``: a regex recognizer for the common written formats (``(555)123-4567``,
  ``555.123.4567x89``, ``+1-555-123-4567``, ``+44 20 7946 0958``); Presidio's
  ``phonenumbers`` recognizer only accepts numbers that are valid in a region, which misses
  test and fictional numbers that are still somebody's number in a trace.
- ``EMAIL_ADDRESS``: Presidio's recognizer, validated with a private ``tldextract``
  instance that never fetches the public suffix list and keeps its cache under the
  collector's data dir (the module-level one would write to ``~/.cache``).

Every recognizer here is a ``PatternRecognizer``; patterns run with the ``regex`` module
(Presidio's), so variable-length look-behinds are allowed.  The inline ``(?-i:...)`` groups
switch off Presidio's default IGNORECASE where the case of a prefix matters.
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import tldextract
from presidio_analyzer import Pattern, PatternRecognizer
from presidio_analyzer.predefined_recognizers import EmailRecognizer

from collector.redaction_config import SECRET_ENTITIES

# Characters that can follow a key name before its value: quotes, spaces, ':' or '='.
_ASSIGN = r"""["']?\s{0,3}[:=]\s{0,3}(?:["']|b["'])?"""
# Key names after which a value is a credential.
_KEY_NAMES = (
    r"(?:api[_\-. ]?key|apikey|x-api-key|access[_\-. ]?key|secret[_\-. ]?key|"
    r"client[_\-. ]?secret|secret|access[_\-. ]?token|auth[_\-. ]?token|refresh[_\-. ]?token|"
    r"token|password|passwd|pwd|private[_\-. ]?key|credentials?)"
)
# Where a token ends: anything that cannot be part of it.
_TOKEN_END = r"(?![A-Za-z0-9_\-])"


def shannon_entropy_bits(value: str) -> float:
    """Return the Shannon entropy of ``value`` in bits per character."""
    if not value:
        return 0.0
    counts = Counter(value)
    size = len(value)
    return -sum(n / size * math.log2(n / size) for n in counts.values())


class ContextSecretRecognizer(PatternRecognizer):
    """A value after a credential-like key name, kept only when it looks random.

    Random-looking: at least 16 characters, both letters and digits, and >= 3 bits of
    entropy per character, so ``token=refresh_every_hour`` or ``password: <redacted>``
    are left alone.
    """

    def validate_result(self, pattern_text: str) -> bool | None:
        value = pattern_text.strip("\"'")
        has_digit = any(ch.isdigit() for ch in value)
        has_alpha = any(ch.isalpha() for ch in value)
        if len(value) >= 16 and has_digit and has_alpha and shannon_entropy_bits(value) >= 3.0:
            return None  # keep the pattern's score
        return False


class BearerTokenRecognizer(PatternRecognizer):
    """The credential after ``Bearer``; plain words ("bearer of bad news") are not kept."""

    def validate_result(self, pattern_text: str) -> bool | None:
        if any(ch.isdigit() for ch in pattern_text) or len(pattern_text) >= 24:
            return None
        return False


class PrivateEmailRecognizer(EmailRecognizer):
    """Presidio's email recognizer with a ``tldextract`` that stays offline and private."""

    def __init__(self, cache_dir: Path) -> None:
        # suffix_list_urls=() : never fetch the public suffix list over HTTP; the snapshot
        # bundled with tldextract is used.  cache_dir: the parsed list is cached under the
        # collector's data dir instead of ~/.cache/python-tldextract.
        self._tld_extract = tldextract.TLDExtract(
            cache_dir=str(cache_dir), suffix_list_urls=(), fallback_to_snapshot=True
        )
        super().__init__()

    def validate_result(self, pattern_text: str) -> bool:
        return self._tld_extract(pattern_text).fqdn != ""


def build_secret_recognizers() -> list[PatternRecognizer]:
    """Return one recognizer per secret pattern family (entity types in SECRET_ENTITIES)."""
    return [
        PatternRecognizer(
            supported_entity="API_KEY",
            name="ProviderApiKeyRecognizer",
            patterns=[
                Pattern("anthropic", r"(?-i:\bsk-ant-[A-Za-z0-9_\-]{20,})" + _TOKEN_END, 0.95),
                Pattern(
                    "openai",
                    r"(?-i:\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9][A-Za-z0-9_\-]{19,})"
                    + _TOKEN_END,
                    0.9,
                ),
            ],
        ),
        ContextSecretRecognizer(
            supported_entity="API_KEY",
            name="ContextApiKeyRecognizer",
            patterns=[
                Pattern(
                    "key=value",
                    r"(?<=\b" + _KEY_NAMES + _ASSIGN + r")[A-Za-z0-9_\-.+/=~]{16,512}",
                    0.8,
                ),
            ],
        ),
        PatternRecognizer(
            supported_entity="AWS_ACCESS_KEY",
            name="AwsAccessKeyRecognizer",
            patterns=[
                Pattern(
                    "access key id",
                    r"(?-i:\b(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AIPA|ANPA|ANVA|AROA|APKA)"
                    r"[A-Z0-9]{16}\b)",
                    0.9,
                ),
                Pattern(
                    "secret access key",
                    r"(?<=\baws[_\-. ]?(?:secret[_\-. ]?(?:access[_\-. ]?)?key|secret)"
                    + _ASSIGN
                    + r")[A-Za-z0-9/+=]{40}(?![A-Za-z0-9/+=])",
                    0.9,
                ),
            ],
        ),
        PatternRecognizer(
            supported_entity="GITHUB_TOKEN",
            name="GithubTokenRecognizer",
            patterns=[
                Pattern("classic", r"(?-i:\bgh[pousr]_[A-Za-z0-9]{36,255})" + _TOKEN_END, 0.95),
                Pattern("fine-grained", r"(?-i:\bgithub_pat_[A-Za-z0-9_]{22,255})" + _TOKEN_END, 0.95),
            ],
        ),
        PatternRecognizer(
            supported_entity="JWT",
            name="JwtRecognizer",
            patterns=[
                Pattern(
                    "jwt",
                    r"(?-i:\beyJ[A-Za-z0-9_\-]{6,}\.eyJ[A-Za-z0-9_\-]{6,}\.[A-Za-z0-9_\-]{6,})"
                    + _TOKEN_END,
                    0.95,
                ),
            ],
        ),
        BearerTokenRecognizer(
            supported_entity="BEARER_TOKEN",
            name="BearerTokenRecognizer",
            patterns=[
                Pattern("bearer", r"(?<=\bbearer\s{1,3})[A-Za-z0-9\-._~+/]{8,}=*", 0.85),
            ],
        ),
        PatternRecognizer(
            supported_entity="PRIVATE_KEY",
            name="PemPrivateKeyRecognizer",
            patterns=[
                Pattern(
                    "pem",
                    r"(?-i:-----BEGIN[A-Z0-9 ]{0,20} PRIVATE KEY(?: BLOCK)?-----"
                    r"[\s\S]*?(?:-----END[A-Z0-9 ]{0,20} PRIVATE KEY(?: BLOCK)?-----|\Z))",
                    1.0,
                ),
            ],
        ),
    ]


def build_phone_recognizer() -> PatternRecognizer:
    """Return a regex phone recognizer for the formats people and test data write."""
    sep = r"[ .\-]?"
    ext = r"(?:\s{0,2}(?:x|ext\.?|extension)\s{0,2}\d{1,6})?"
    north_american = (
        r"(?<![\w+.\-])(?:\+?1" + sep + r"|001" + sep + r")?"
        r"(?:\(\d{3}\)\s?|\d{3}" + sep + r")\d{3}" + sep + r"\d{4}" + ext + r"(?![\w\-])"
    )
    formatted_north_american = (
        r"(?<![\w+.\-])(?:\+?1[ .\-]|001[ .\-])?"
        r"(?:\(\d{3}\)\s?|\d{3}[ .\-])\d{3}[ .\-]\d{4}" + ext + r"(?![\w\-])"
    )
    international = (
        r"(?<![\w+])(?:\+|00)[1-9]\d{0,2}[ .\-]?(?:\(\d{1,4}\)[ .\-]?)?\d{1,4}"
        r"(?:[ .\-]?\d{2,4}){2,4}" + ext + r"(?![\w\-])"
    )
    return PatternRecognizer(
        supported_entity="PHONE_NUMBER",
        name="WrittenPhoneRecognizer",
        patterns=[
            Pattern("north american, separators", formatted_north_american, 0.6),
            Pattern("international", international, 0.55),
            # "00" + country code reads like an SSN ("006-94-7686") without context.
            Pattern("international 00", international.replace(r"(?:\+|00)", "00"), 0.3),
            # National formats with a trunk 0: "(0621) 123456", "030 1234567", "0621/12345".
            Pattern("national trunk 0", r"(?<![\w+])(?:\(0\d{2,5}\)\s?|0\d{2,5}[ /\-])\d{3,8}(?![\w\-])", 0.45),
            # Eight-digit local numbers ("4728 7665", "87551219"): only with a context word.
            Pattern("local 8 digits", r"(?<![\w+.\-])\d{4}[ \-]?\d{4}(?![\w\-])", 0.1),
            # Ten bare digits are as likely an order id as a phone: needs a context word.
            Pattern("north american, bare", north_american, 0.2),
        ],
        context=["phone", "telephone", "tel", "cell", "mobile", "call", "text", "fax",
                 "contact", "reach", "number", "dial", "ring", "whatsapp"],
    )


def luhn_checksum_ok(digits: str) -> bool:
    """True when ``digits`` passes the Luhn check used by payment card numbers."""
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


class LuhnCardRecognizer(PatternRecognizer):
    """Card numbers of any network (Mastercard 2-series, Maestro, UnionPay, JCB, ...).

    13-19 digits, optionally in groups separated by spaces or dashes, kept only when the
    Luhn check passes and the first digit is a card network's (2-6).
    """

    def validate_result(self, pattern_text: str) -> bool:
        digits = "".join(ch for ch in pattern_text if ch.isdigit())
        return 13 <= len(digits) <= 19 and digits[0] in "23456" and luhn_checksum_ok(digits)


def build_card_recognizer() -> PatternRecognizer:
    """Return the Luhn-validated card recognizer (CREDIT_CARD)."""
    return LuhnCardRecognizer(
        supported_entity="CREDIT_CARD",
        name="LuhnCardRecognizer",
        patterns=[
            Pattern("grouped", r"(?<![\d\-])\d{4}(?:[ \-]\d{3,6}){2,4}(?![\d\-])", 0.3),
            Pattern("plain", r"(?<!\d)\d{13,19}(?!\d)", 0.3),
        ],
    )
