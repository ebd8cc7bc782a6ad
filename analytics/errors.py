"""Errors of the analytics package (reported by the CLI as one line)."""

from __future__ import annotations


class AnalyticsError(Exception):
    """Bad input to an analytics call: an unknown column, a bad prices file, a bad window."""
