"""Errors of the collector.  Messages hold ids and counts, never span text."""

from __future__ import annotations


class TracewatchError(Exception):
    """Base of every error the command line reports as one line."""


class ConfigError(TracewatchError):
    """The configuration (flags, env, tracewatch.yaml) is invalid."""


class PermanentError(TracewatchError):
    """The request can never succeed: HTTP 400 / gRPC INVALID_ARGUMENT."""


class RetryableError(TracewatchError):
    """The request may succeed later: HTTP 503 / gRPC UNAVAILABLE."""


class PayloadTooLargeError(PermanentError):
    """Body over the size limit (before or after decompression): HTTP 413."""


class RedactionError(TracewatchError):
    """Redaction failed; the caller withholds the span's text (fail closed)."""


class StoreError(TracewatchError):
    """The store cannot be opened or written."""
