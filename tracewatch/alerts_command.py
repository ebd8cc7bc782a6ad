"""``tracewatch alerts``: evaluate the alert rules once, forever, or over the past.

    tracewatch alerts check  [--rules F] [--dry-run] [--at T]
    tracewatch alerts watch  [--rules F] [--every 60s]
    tracewatch alerts replay --from T --to T [--step 5m] [--notify] [--record]
    tracewatch alerts digest [--week YYYY-Www] [--notify]

Each takes ``--data-dir`` and ``--format table|json|csv``.  check/watch persist the state and
the history (the ``alerts`` view) and send Slack messages (``--dry-run``: print only, change
nothing).  replay evaluates in data time with a fresh state and changes nothing unless
``--record`` (write to the history) or ``--notify`` (send to Slack).  Errors raise
``alerts.errors.AlertsError`` (the CLI prints one line).
"""

from __future__ import annotations

import argparse
import logging
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alerts.errors import AlertsError
from analytics.errors import AnalyticsError
from tracewatch.commands import write_rows

if TYPE_CHECKING:
    from alerts.config import AlertsConfig
    from alerts.evaluate import AlertEvent
    from alerts.rules import RuleSet

logger = logging.getLogger(__name__)

EVENT_COLUMNS = ["at", "transition", "rule", "group_key", "severity", "value", "baseline",
                 "verdict", "cause", "alert_id"]


def add_alerts_parser(subparsers: Any) -> None:
    """Register ``tracewatch alerts {check,watch,replay,digest}``."""
    alerts = subparsers.add_parser("alerts", help="drift alerts: check, watch, replay, digest")
    sub = alerts.add_subparsers(dest="alerts_command", required=True, metavar="ACTION")

    def common(parser: argparse.ArgumentParser, rules: bool = True) -> None:
        parser.add_argument("--data-dir", type=Path, default=None,
                            help="store directory (default: $TRACEWATCH_DATA_DIR or ./data)")
        if rules:
            parser.add_argument("--rules", type=Path, default=None,
                                help="rule file (default: alerts/rules.yaml)")
        parser.add_argument("--format", choices=("table", "json", "csv"), default="table")

    check = sub.add_parser("check", help="evaluate the rules once, now")
    common(check)
    check.add_argument("--dry-run", action="store_true",
                       help="print what would fire; save nothing, send nothing")
    check.add_argument("--at", default=None, help="evaluate as of this time (default now)")
    check.set_defaults(handler=run_check)

    watch = sub.add_parser("watch", help="evaluate every --every until stopped")
    common(watch)
    watch.add_argument("--every", default="60s", help="interval (e.g. 30s, 1m)")
    watch.set_defaults(handler=run_watch)

    rep = sub.add_parser("replay", help="evaluate over past data as if in real time")
    common(rep)
    rep.add_argument("--from", dest="since", required=True, help="start (ISO-8601 or 7d)")
    rep.add_argument("--to", dest="until", default="now", help="end (default now)")
    rep.add_argument("--step", default="5m", help="evaluation interval in data time")
    rep.add_argument("--notify", action="store_true", help="also send what fires to Slack")
    rep.add_argument("--record", action="store_true", help="also write to the alerts history")
    rep.set_defaults(handler=run_replay)

    digest = sub.add_parser("digest", help="weekly digest: KPIs vs last week, failure modes")
    common(digest, rules=False)
    digest.add_argument("--week", default=None, help="ISO week YYYY-Www (default last week)")
    digest.add_argument("--notify", action="store_true", help="send the digest to Slack")
    digest.set_defaults(handler=run_digest)


def _config(args: argparse.Namespace) -> AlertsConfig:
    from alerts.config import load_alerts_config

    return load_alerts_config(data_dir=args.data_dir, rules_file=getattr(args, "rules", None))


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def _time(text: str, now: datetime) -> datetime:
    from analytics.filters import parse_time

    try:
        return parse_time(text, now)
    except AnalyticsError as exc:
        raise AlertsError(str(exc)) from None


def _duration(text: str, flag: str) -> timedelta:
    from alerts.rules import parse_duration

    try:
        value = parse_duration(text)
    except ValueError as exc:
        raise AlertsError(f"{flag}: {exc}") from None
    if value <= timedelta(0):
        raise AlertsError(f"{flag} must be positive")
    return value


def evaluate_once(config: AlertsConfig, rules: RuleSet, at: datetime,
                  dry_run: bool = False) -> list[AlertEvent]:
    """One check: load the data the rules need, evaluate at ``at``, persist and notify."""
    from alerts.evaluate import evaluate_rules, max_lookback
    from alerts.frame import load_trace_frame
    from alerts.history import load_states, save_states
    from analytics.views import open_store

    con = open_store(config.data_dir)
    try:
        frame = load_trace_frame(con, at - max_lookback(rules), at)
    finally:
        con.close()
    states = load_states(config.data_dir)
    events, new_states = evaluate_rules(frame, rules, at, states)
    if dry_run:
        return events
    save_states(config.data_dir, new_states)
    notify_and_record(config, events, notify=True, record=True)
    return events


def notify_and_record(config: AlertsConfig, events: list[AlertEvent], notify: bool,
                      record: bool) -> None:
    from alerts.history import record_events
    from alerts.slack import SlackNotifier, build_alert_message

    notified: dict[str, datetime] = {}
    if notify:
        notifier = SlackNotifier(config)
        for event in events:
            report = notifier.deliver([build_alert_message(event, config.dashboard_url)])
            if report.num_queued == 0 and report.num_rejected == 0:
                notified[event.alert_id] = _now()
        if not events:
            notifier.flush_outbox()
    if record:
        record_events(config.data_dir, events, notified)


def _print_events(events: list[AlertEvent], fmt: str) -> None:
    rows = [(e.at, e.transition.value, e.rule, e.group_key, e.severity, e.value, e.baseline,
             e.verdict, e.cause.describe() if e.cause else None, e.alert_id) for e in events]
    write_rows(EVENT_COLUMNS, rows, fmt)


def run_check(args: argparse.Namespace) -> int:
    from alerts.rules import load_rules

    config = _config(args)
    rules = load_rules(config.rules_file)
    at = _time(args.at, _now()) if args.at else _now()
    events = evaluate_once(config, rules, at, dry_run=args.dry_run)
    _print_events(events, args.format)
    return 0


def run_watch(args: argparse.Namespace) -> int:
    from alerts.rules import load_rules

    config = _config(args)
    rules = load_rules(config.rules_file)  # validated once: a bad file stops us here
    every = _duration(args.every, "--every")
    logger.info("alerts watch: data=%s rules=%s every=%ss", config.data_dir,
                config.rules_file, int(every.total_seconds()))
    num_failures = 0
    try:
        while True:
            started = time.monotonic()
            try:
                events = evaluate_once(config, rules, _now())
                if events:
                    _print_events(events, args.format)
            except Exception:  # loop boundary: one bad evaluation must not stop the watch
                num_failures += 1
                logger.exception("alerts evaluation failed (%d so far)", num_failures)
            time.sleep(max(0.0, every.total_seconds() - (time.monotonic() - started)))
    except KeyboardInterrupt:
        logger.info("alerts watch stopped after %d failed evaluations", num_failures)
        return 0


def run_replay(args: argparse.Namespace) -> int:
    from alerts.evaluate import max_lookback, replay
    from alerts.frame import load_trace_frame
    from alerts.rules import load_rules
    from analytics.views import open_store

    config = _config(args)
    rules = load_rules(config.rules_file)
    now = _now()
    since, until = _time(args.since, now), _time(args.until, now)
    if since >= until:
        raise AlertsError("--from must be before --to")
    step = _duration(args.step, "--step")
    con = open_store(config.data_dir)
    try:
        frame = load_trace_frame(con, since - max_lookback(rules), until)
    finally:
        con.close()
    events = replay(frame, rules, since, until, step)
    _print_events(events, args.format)
    if args.notify or args.record:
        notify_and_record(config, events, notify=args.notify, record=args.record)
    return 0


def run_digest(args: argparse.Namespace) -> int:
    from alerts.digest import build_weekly_digest
    from alerts.slack import SlackNotifier, build_digest_message
    from analytics.views import open_store

    config = _config(args)
    if args.week:
        try:
            week_start = datetime.strptime(args.week + "-1", "%G-W%V-%u")
        except ValueError:
            raise AlertsError(f"bad --week {args.week!r}: expected YYYY-Www") from None
    else:
        today = _now().replace(hour=0, minute=0, second=0, microsecond=0)
        week_start = today - timedelta(days=today.weekday() + 7)
    con = open_store(config.data_dir)
    try:
        title, sections = build_weekly_digest(con, config.data_dir, week_start)
    finally:
        con.close()
    rows = [(heading, line) for heading, lines in sections for line in lines or ["–"]]
    print(title)
    write_rows(["section", "line"], rows, args.format)
    if args.notify:
        SlackNotifier(config).deliver([build_digest_message(title, sections)])
    return 0
