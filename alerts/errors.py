"""Errors of the alerts package.

``AlertsError`` is what the CLI catches (one line on stderr, non-zero exit): a bad rule file,
a bad config, a bad time range.  Slack delivery failures are not errors: an undelivered
message goes to the outbox and is resent later (``alerts.slack``).
"""

from __future__ import annotations


class AlertsError(Exception):
    """Bad input to the alerts: rule file, configuration, time range."""


class RuleFileError(AlertsError):
    """A rule file that cannot be used; the message names the line and the field."""
