"""Slack delivery: Block Kit messages over an incoming webhook, retried, never lost.

``SlackNotifier(config).deliver(payload)``:
- posts with ``slack_sdk.webhook.WebhookClient`` (the URL comes from ``AlertsConfig``: env
  ``TRACEWATCH_SLACK_WEBHOOK_URL`` or the file named by ``slack_webhook_url_file``; it is
  never logged: log lines name the message id only);
- retries 5xx and connection errors with exponential backoff (``slack_backoff_s`` doubling),
  honours a 429's ``Retry-After`` (up to ``slack_max_retry_after_s``);
- a message still undelivered after ``slack_max_attempts`` (or with no webhook configured)
  is written to the outbox ``<data_dir>/alerts_outbox/<id>.json`` and resent first by the
  next ``deliver``/``flush_outbox`` call; a 4xx other than 429 (bad payload) is kept too,
  under ``rejected/``, for a human to look at, never silently dropped.

Message builders: ``build_alert_message(event, dashboard_url)`` and ``build_digest_message``.
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slack_sdk.webhook import WebhookClient

from alerts.cause import build_dashboard_link
from alerts.config import AlertsConfig
from alerts.evaluate import AlertEvent
from alerts.state import Transition

logger = logging.getLogger(__name__)
# slack-sdk logs the full request URL at DEBUG, and the webhook URL is the secret: give the
# client a logger of its own that never emits below WARNING.
_sdk_logger = logging.getLogger(__name__ + ".sdk")
_sdk_logger.setLevel(logging.WARNING)

_SEVERITY_EMOJI = {"critical": ":red_circle:", "warning": ":large_orange_circle:",
                   "info": ":large_blue_circle:"}


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    num_sent: int
    num_queued: int
    num_rejected: int


def outbox_dir(data_dir: Path) -> Path:
    return data_dir / "alerts_outbox"


class SlackNotifier:
    """Deliver Slack payloads with retries; what cannot be delivered waits in the outbox."""

    def __init__(self, config: AlertsConfig, sleep: Callable[[float], None] = time.sleep):
        self._config = config
        self._url = config.webhook_url()
        self._sleep = sleep
        self._outbox = outbox_dir(config.data_dir)
        self.counters = {"sent": 0, "retried": 0, "queued": 0, "rejected": 0}

    def deliver(self, payloads: list[dict[str, Any]]) -> DeliveryReport:
        """Send the outbox's messages first (oldest first), then ``payloads``."""
        for payload in payloads:
            self._enqueue(payload)
        return self.flush_outbox()

    def flush_outbox(self) -> DeliveryReport:
        sent = queued = rejected = 0
        files = sorted(self._outbox.glob("*.json")) if self._outbox.is_dir() else []
        for path in files:
            if not self._url:
                queued += 1
                continue
            payload = json.loads(path.read_text(encoding="utf-8"))
            outcome = self._post(payload, path.stem)
            if outcome == "sent":
                path.unlink()
                sent += 1
            elif outcome == "rejected":
                target = self._outbox / "rejected" / path.name
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(path, target)
                rejected += 1
            else:
                queued += 1
                queued += len(files) - files.index(path) - 1
                break  # Slack is down or throttling: keep the order, try again later
        self.counters["queued"] += queued
        return DeliveryReport(sent, queued, rejected)

    def _enqueue(self, payload: dict[str, Any]) -> None:
        self._outbox.mkdir(parents=True, exist_ok=True)
        os.chmod(self._outbox, 0o700)
        # Time-ordered names keep delivery in order across restarts.
        name = f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}"
        tmp = self._outbox / f".{name}.tmp"
        tmp.write_text(json.dumps(payload), encoding="utf-8")
        os.replace(tmp, self._outbox / f"{name}.json")

    def _post(self, payload: dict[str, Any], message_id: str) -> str:
        client = WebhookClient(self._url, timeout=int(max(1, self._config.slack_timeout_s)),
                               logger=_sdk_logger)
        delay = self._config.slack_backoff_s
        for attempt in range(1, self._config.slack_max_attempts + 1):
            try:
                response = client.send_dict(payload)
                status = response.status_code
                headers = response.headers or {}
            except Exception as exc:  # network errors: urllib raises several kinds
                logger.warning("slack message %s attempt %d failed: %s", message_id, attempt,
                               type(exc).__name__)
                status, headers = 0, {}
            if status == 200:
                self.counters["sent"] += 1
                return "sent"
            if 400 <= status < 500 and status != 429:
                logger.error("slack rejected message %s with HTTP %d; kept in outbox/rejected",
                             message_id, status)
                self.counters["rejected"] += 1
                return "rejected"
            if attempt == self._config.slack_max_attempts:
                break
            wait = delay
            if status == 429:
                retry_after = _retry_after(headers)
                if retry_after is not None:
                    if retry_after > self._config.slack_max_retry_after_s:
                        logger.warning("slack asks to wait %.0f s; message %s stays queued",
                                       retry_after, message_id)
                        return "queued"
                    wait = retry_after
            logger.info("slack message %s: HTTP %d, retry in %.1f s", message_id, status, wait)
            self.counters["retried"] += 1
            self._sleep(wait)
            delay *= 2
        logger.warning("slack message %s undelivered after %d attempts; kept in outbox",
                       message_id, self._config.slack_max_attempts)
        return "queued"


def _retry_after(headers: dict[str, Any]) -> float | None:
    for key, value in headers.items():
        if key.lower() == "retry-after":
            raw = value[0] if isinstance(value, list) else value
            try:
                return max(0.0, float(raw))
            except (TypeError, ValueError):
                return None
    return None


def build_alert_message(event: AlertEvent, dashboard_url: str) -> dict[str, Any]:
    """Block Kit payload: title, value vs baseline with the verdict, cause, examples, link."""
    group = f" · {event.group_key}" if event.group_key else ""
    if event.transition is Transition.RESOLVED:
        title = f":white_check_mark: Resolved: {event.rule}{group}"
        text = (f"{title}\nNow {event.verdict}. Fired at "
                f"{event.started_at:%Y-%m-%d %H:%M}Z, resolved at {event.at:%Y-%m-%d %H:%M}Z.")
        return {"text": text, "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": text}}]}
    emoji = _SEVERITY_EMOJI.get(event.severity, "")
    title = f"{emoji} {event.severity.upper()}: {event.rule}{group}"
    since, until = event.window[0] - (event.window[1] - event.window[0]), event.at
    slice_ = event.cause.slice if event.cause else dict(event.detail.get("group", {}))
    link = build_dashboard_link(dashboard_url, slice_, since, until)
    fields = [
        f"*{event.metric}*: {event.verdict}",
        f"*Window*: {event.window[0]:%Y-%m-%d %H:%M}–{event.window[1]:%H:%M}Z"
        + (f" vs {event.baseline_range[0]:%m-%d %H:%M}–{event.baseline_range[1]:%m-%d %H:%M}Z"
           if event.baseline_range else ""),
    ]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": title[:150], "emoji": True}},
        {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(fields)}},
    ]
    if event.cause is not None:
        lines = [f"*Likely cause*: {event.cause.describe()}"]
        for change in event.cause.changes:
            if change["dimension"] == "prompt_version":  # open the template diff
                diff = build_dashboard_link(dashboard_url, {}, since, until,
                                            extra={"page": "prompt_versions", "b": change["value"]})
            else:
                diff = build_dashboard_link(dashboard_url, {change["dimension"]: change["value"]},
                                            since, until)
            lines.append(f"• new {change['dimension']} `{change['value']}` first seen "
                         f"{change['first_seen']} (<{diff}|compare>)")
        examples = [f"<{build_dashboard_link(dashboard_url, slice_, since, until, tid)}|"
                    f"{tid[:12]}>" for tid in event.cause.example_trace_ids]
        if examples:
            lines.append("*Example traces*: " + ", ".join(examples))
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)}})
    blocks.append({"type": "actions", "elements": [
        {"type": "button", "text": {"type": "plain_text", "text": "Open dashboard"},
         "url": link}]})
    context = f"alert {event.alert_id} · fingerprint {event.fingerprint}"
    if event.channel:
        context += f" · {event.channel}"
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": context}]})
    return {"text": f"{title}: {event.verdict}", "blocks": blocks}


def build_digest_message(title: str, sections: list[tuple[str, list[str]]]) -> dict[str, Any]:
    """Block Kit payload of the weekly digest: a header and one section per list."""
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": title[:150]}}]
    for heading, lines in sections:
        body = f"*{heading}*\n" + ("\n".join(lines) if lines else "_none_")
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": body[:2900]}})
    return {"text": title, "blocks": blocks}
