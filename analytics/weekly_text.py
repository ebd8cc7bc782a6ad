"""Words for the weekly review: Markdown narrative and tables written from a ``WeeklyReview``.

Every function is pure (a review in, Markdown out), so the notebook, the HTML report and the
Slack summary say the same thing.  Numbers and verdicts are formatted by
``analytics.weekly_format``; narrative sentences name only what the data shows (the level,
the change against the previous week, its significance, the worst day).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import polars as pl

from analytics.weekly import WeeklyReview
from analytics.weekly_format import (
    LABELS, escape, format_change, format_interval, format_p, format_table, format_usd,
    format_value, verdict,
)

# Rows of the KPI table; those with a test come from ``review.comparisons``.
KPI_ROWS = ("num_requests", "cost_usd_total", "cost_usd_per_request", "error_rate",
            "fallback_rate", "grounded_rate", "groundedness_mean", "latency_p50_ms",
            "latency_p95_ms", "latency_p99_ms", "total_tokens_per_request")


def _comparisons(review: WeeklyReview) -> dict[str, dict[str, Any]]:
    return {row["metric"]: row for row in review.comparisons.iter_rows(named=True)}


def _scope(review: WeeklyReview) -> str:
    return f"service {review.service}" if review.service else "all services"


def describe_title(review: WeeklyReview) -> str:
    last_day = review.until - timedelta(days=1)
    return (f"# Weekly quality review {review.week} — {escape(_scope(review))}\n\n"
            f"{review.since:%a %d %b %Y} to {last_day:%a %d %b %Y} (UTC), compared with "
            f"{review.previous_week}.")


def describe_headline(review: WeeklyReview) -> str:
    """The summary paragraph: volume, spend, what changed significantly, what to look at."""
    k, p = review.kpis, review.previous_kpis
    parts = [f"In **{review.week}** ({escape(_scope(review))}) tracewatch saw "
             f"**{format_value('num_requests', k['num_requests'])} requests** "
             f"({format_change('num_requests', p['num_requests'], k['num_requests'])} vs "
             f"{review.previous_week}) costing "
             f"**{format_value('cost_usd_total', k['cost_usd_total'])}**"
             f" ({format_change('cost_usd_total', p['cost_usd_total'], k['cost_usd_total'])})."]
    changed, steady = [], []
    for metric, row in _comparisons(review).items():
        if row["status"] == "ok" and row["significant"]:
            changed.append(f"{LABELS[metric]} {format_value(metric, row['value_a'])} → "
                           f"{format_value(metric, row['value_b'])} "
                           f"({format_change(metric, row['value_a'], row['value_b'])}, "
                           f"{verdict(metric, row)})")
        elif row["status"] == "ok":
            steady.append(LABELS[metric])
    if changed:
        parts.append("Significant changes: " + "; ".join(changed) + ".")
    elif not p["num_requests"]:
        parts.append(f"{review.previous_week} has no traffic to compare with.")
    if steady:
        parts.append("No significant change in " + ", ".join(steady) + ".")
    moved = review.failure_modes.filter(pl.col("movement").is_in(["new", "growing"]))
    if moved.height:
        parts.append("Failure modes on the rise: " + ", ".join(
            f"{escape(r['name'])} ({r['movement']}, {r['num_traces']:,} traces)"
            for r in moved.head(3).iter_rows(named=True)) + ".")
    shipped = review.prompt_versions.unique(["service_name", "prompt_version"],
                                           maintain_order=True)
    if shipped.height:
        parts.append("Prompt versions shipped: " + ", ".join(
            f"{escape(r['service_name'])} {escape(r['prompt_version'])}"
            for r in shipped.iter_rows(named=True)) + ".")
    parts.append(f"{review.alerts.height} alert(s) fired.")
    return " ".join(parts)


def format_kpi_table(review: WeeklyReview) -> str:
    """KPIs of both weeks with the change, its 95% interval, p-value and verdict."""
    tests = _comparisons(review)
    rows = []
    for metric in KPI_ROWS:
        before, after = review.previous_kpis.get(metric), review.kpis.get(metric)
        row = tests.get(metric)
        rows.append([LABELS[metric], format_value(metric, before), format_value(metric, after),
                     format_change(metric, before, after),
                     format_interval(metric, row["ci_low"], row["ci_high"]) if row else "–",
                     format_p(row["p_value"]) if row else "–", verdict(metric, row)])
    note = ("Tests: two-proportion z-test for rates, Mann-Whitney U for p50, cost and mean "
            "groundedness, bootstrap for p95/p99 (`analytics.compare`); the interval is the "
            "95% interval of the change.")
    unpriced = review.kpis.get("num_unpriced_llm_calls") or 0
    if unpriced:
        note += (f" {unpriced:,} LLM calls this week have no known price, so costs are lower "
                 "bounds.")
    return format_table(["metric", review.previous_week, review.week, "change", "95% interval",
                   "p-value", "verdict"], rows) + "\n\n" + note


def describe_cost(review: WeeklyReview) -> str:
    k, p = review.kpis, review.previous_kpis
    text = (f"Spend was **{format_value('cost_usd_total', k['cost_usd_total'])}** "
            f"({format_value('cost_usd_total', p['cost_usd_total'])} in {review.previous_week},"
            f" {format_change('cost_usd_total', p['cost_usd_total'], k['cost_usd_total'])}), "
            f"{format_usd(k['cost_usd_per_request'] or 0)} per request.")
    priced = review.cost_by_model.filter(pl.col("cost_usd_total") > 0)
    if priced.height:
        top = priced.row(0, named=True)
        text += (f" The most expensive model was **{escape(top['model_name'])}** "
                 f"({escape(top['provider'])}) with {format_value('share', top['share_of_cost'])}"
                 f" of the spend on {top['num_requests']:,} requests.")
    services = review.cost_by_service.filter(pl.col("cost_usd_total") > 0)
    if services.height > 1:
        top = services.row(0, named=True)
        text += (f" By service, {escape(top['service_name'])} spent the most "
                 f"({format_value('share', top['share_of_cost'])}).")
    unpriced = review.cost_by_model.filter(pl.col("num_unpriced_llm_calls") > 0)
    if unpriced.height:
        text += (" Unpriced LLM calls (unknown model or price, counted as no cost): " + ", ".join(
            f"{escape(r['model_name'] or 'no model')} {r['num_unpriced_llm_calls']:,}"
            for r in unpriced.iter_rows(named=True)) + ".")
    return text


def format_cost_table(frame: pl.DataFrame, key: list[str]) -> str:
    rows = []
    for r in frame.iter_rows(named=True):
        rows.append([*(escape(r[c]) if r[c] is not None else "–" for c in key),
                     f"{r['num_requests']:,}", format_value("cost_usd_total", r["cost_usd_total"]),
                     format_value("share", r["share_of_cost"]),
                     format_value("cost_usd_per_request", r["cost_usd_per_request"]),
                     format_value("cost_usd_total", r["cost_usd_total_previous"]),
                     format_change("cost_usd_total", r["cost_usd_total_previous"],
                                   r["cost_usd_total"]),
                     f"{r['num_unpriced_llm_calls']:,}"])
    header = [k.replace("_name", "") for k in key]
    return format_table([*header, "requests", "cost", "share", "per request", "previous week",
                   "change", "unpriced calls"], rows)


def describe_latency(review: WeeklyReview) -> str:
    k, tests = review.kpis, _comparisons(review)
    text = (f"Request latency (root span duration): p50 "
            f"**{format_value('latency_p50_ms', k['latency_p50_ms'])}**, p95 "
            f"**{format_value('latency_p95_ms', k['latency_p95_ms'])}**, p99 "
            f"**{format_value('latency_p99_ms', k['latency_p99_ms'])}**.")
    row = tests.get("latency_p95_ms")
    if row and row["status"] == "ok":
        text += (f" p95 moved {format_change('latency_p95_ms', row['value_a'], row['value_b'])}"
                 f" vs {review.previous_week}: {verdict('latency_p95_ms', row)}.")
    if review.latency_by_service.height > 1:
        top = review.latency_by_service.row(0, named=True)
        text += (f" The slowest service at p95 is {escape(top['service_name'])} "
                 f"({format_value('latency_p95_ms', top['latency_p95_ms'])}).")
    worst = _worst_day(review, "latency_p95_ms", highest=True)
    if worst:
        text += f" The worst day for p95 was {worst}."
    return text


def format_latency_table(review: WeeklyReview) -> str:
    rows = [[escape(r["service_name"]), f"{r['num_requests']:,}",
             format_value("latency_p50_ms", r["latency_p50_ms"]),
             format_value("latency_p95_ms", r["latency_p95_ms"]),
             format_value("latency_p99_ms", r["latency_p99_ms"]),
             format_value("latency_p95_ms", r["latency_p95_ms_previous"]),
             format_change("latency_p95_ms", r["latency_p95_ms_previous"], r["latency_p95_ms"])]
            for r in review.latency_by_service.iter_rows(named=True)]
    return format_table(["service", "requests", "p50", "p95", "p99", "p95 previous week",
                   "p95 change"], rows)


def _worst_day(review: WeeklyReview, metric: str, highest: bool) -> str | None:
    week = review.daily.filter(pl.col("window_start") >= review.since).drop_nulls(metric)
    if week.is_empty():
        return None
    row = week.sort(metric, descending=highest).row(0, named=True)
    return f"{row['window_start']:%a %d %b} ({format_value(metric, row[metric])})"


def describe_quality(review: WeeklyReview) -> str:
    """Groundedness and fallback: the week's level, the change, and the worst day."""
    tests = _comparisons(review)
    sentences = []
    for metric, highest in (("grounded_rate", False), ("fallback_rate", True),
                            ("error_rate", True)):
        row = tests.get(metric)
        if row is None or row["value_b"] is None:
            continue
        sentence = (f"{LABELS[metric].capitalize()} {format_value(metric, row['value_b'])} "
                    f"({format_change(metric, row['value_a'], row['value_b'])}, "
                    f"{verdict(metric, row)})")
        worst = _worst_day(review, metric, highest)
        if worst:
            sentence += f"; worst day {worst}"
        sentences.append(sentence + ".")
    scored = review.kpis.get("num_scored") or 0
    sentences.append(f"Groundedness is scored on {scored:,} traces with retrieved context "
                     f"(grounded = score ≥ 0.5); fallback counts traces whose LLM call fell "
                     "back to another model or provider.")
    return " ".join(sentences)


def describe_failure_modes(review: WeeklyReview) -> str:
    modes = review.failure_modes
    if modes.is_empty():
        return "No failing or low-quality trace this week or the week before."
    share = review.num_failing_traces / review.kpis["num_requests"]
    text = (f"{review.num_failing_traces:,} traces this week ({share:.1%} of requests) failed "
            "or scored low; the largest failure modes, clustered over both weeks so a mode keeps"
            " its id, are below.")
    for movement in ("new", "growing", "shrinking", "gone"):
        chosen = modes.filter(pl.col("movement") == movement)
        if chosen.height:
            text += f" **{movement.capitalize()}**: " + "; ".join(
                f"{escape(r['name'])} ({r['cluster_id']}, "
                f"{format_value('share', r['share_previous'])} → "
                f"{format_value('share', r['share'])} of requests)"
                for r in chosen.iter_rows(named=True)) + "."
    if modes.filter(pl.col("movement") == "no baseline").height:
        text += f" {review.previous_week} has no traffic, so movement cannot be judged."
    return text


def format_failure_table(review: WeeklyReview) -> str:
    rows = []
    for r in review.failure_modes.iter_rows(named=True):
        rep = r["representative_trace_id"]
        link = f"[{rep[:12]}]({review.trace_link(rep)})" if rep else "–"
        rows.append([r["cluster_id"], escape(r["name"]), f"{r['num_traces_previous']:,}",
                     f"{r['num_traces']:,}",
                     format_change("share", r["share_previous"], r["share"]),
                     r["movement"], escape(r["where"] or "–"), link])
    return format_table(["id", "failure mode", review.previous_week, review.week,
                   "share change", "movement", "concentrated in", "example"], rows)


def describe_prompt_versions(review: WeeklyReview) -> str:
    frame = review.prompt_versions
    if frame.is_empty():
        return "No new prompt version was first seen this week."
    lines = []
    for (svc, version), group in frame.group_by(["service_name", "prompt_version"],
                                                maintain_order=True):
        first = group.row(0, named=True)
        line = (f"- **{escape(svc)} {escape(version)}**, first seen "
                f"{first['first_seen']:%a %d %b %H:%M}Z, {first['num_traces']:,} traces "
                "this week")
        if first["previous_version"] is None:
            lines.append(line + "; no earlier version of this service to compare with.")
            continue
        effects = [f"{LABELS[r['metric']]} {format_change(r['metric'], r['value_a'], r['value_b'])}"
                   f" ({verdict(r['metric'], r)})"
                   for r in group.iter_rows(named=True)
                   if r["status"] == "ok" and r["significant"]]
        line += (f". Against {escape(first['previous_version'])} (its traffic in the 7 days "
                 "before): " + ("; ".join(effects) if effects
                                else "no significant difference") + ".")
        lines.append(line)
    return "\n".join(lines)


def format_prompt_table(review: WeeklyReview, service: str, version: str) -> str:
    group = review.prompt_versions.filter((pl.col("service_name") == service)
                                          & (pl.col("prompt_version") == version))
    rows = [[LABELS[r["metric"]], format_value(r["metric"], r["value_a"]),
             format_value(r["metric"], r["value_b"]),
             format_change(r["metric"], r["value_a"], r["value_b"]),
             format_interval(r["metric"], r["ci_low"], r["ci_high"]), format_p(r["p_value"]),
             verdict(r["metric"], r)]
            for r in group.iter_rows(named=True) if r["metric"] is not None]
    if not rows:
        return ""
    previous = group["previous_version"][0]
    return (f"**{escape(service)}: {escape(previous)} → {escape(version)}**\n\n"
            + format_table(["metric", escape(previous), escape(version), "change", "95% interval",
                      "p-value", "verdict"], rows))


def describe_alerts(review: WeeklyReview) -> str:
    alerts = review.alerts
    if alerts.is_empty():
        return "No alert fired this week."
    by_severity = alerts.group_by("severity").len().sort("len", descending=True)
    counts = ", ".join(f"{n} {escape(s)}" for s, n in by_severity.iter_rows())
    firing = alerts.filter(pl.col("state") == "firing").height
    by_rule = alerts.group_by("rule").len().sort(["len", "rule"], descending=[True, False])
    text = (f"{alerts.height} alert(s) started this week ({counts}); {firing} still firing. "
            "Most frequent: " + ", ".join(f"{escape(r)} ×{n}" for r, n in
                                         by_rule.head(3).iter_rows()) + ".")
    critical = alerts.filter(pl.col("severity") == "critical")
    for r in critical.iter_rows(named=True):
        text += (f" Critical: {escape(r['rule'])} on {escape(r['group_key'])} at "
                 f"{r['started_at']:%a %H:%M}Z — {escape(r['cause'] or 'cause unknown')}.")
    return text


def format_alert_table(review: WeeklyReview) -> str:
    rows = []
    for r in review.alerts.iter_rows(named=True):
        example = (f"[{r['example_trace_ids'][0][:12]}]"
                   f"({review.trace_link(r['example_trace_ids'][0])})"
                   if r["example_trace_ids"] else "–")
        ended = f"{r['resolved_at']:%a %H:%M}Z" if r["resolved_at"] else "still firing"
        rows.append([f"{r['started_at']:%a %d %b %H:%M}Z", ended, escape(r["rule"]),
                     escape(r["severity"]), escape(r["group_key"] or "–"),
                     escape(r["verdict"] or "–"), escape(r["cause"] or "–"), example])
    return format_table(["started", "ended", "rule", "severity", "group", "verdict", "likely cause",
                   "example"], rows)


def format_examples(review: WeeklyReview) -> str:
    if review.examples.is_empty():
        return "Nothing to read this week."
    lines = []
    for r in review.examples.iter_rows(named=True):
        when = f"{r['start_time']:%a %d %b %H:%M}Z" if r["start_time"] else ""
        duration = (format_value("latency_p50_ms", r["duration_ms"])
                    if r["duration_ms"] is not None else "")
        facts = ", ".join(x for x in (escape(r["service_name"] or ""), when, duration,
                                      escape(r["status_code"] or "")) if x)
        lines.append(f"- [{r['trace_id']}]({r['link']}) — {escape(r['why'])} ({facts})")
    return "\n".join(lines)


def build_summary(review: WeeklyReview, report_location: str | None = None
                  ) -> tuple[str, list[tuple[str, list[str]]]]:
    """Title and sections of the short Slack summary (``alerts.slack.build_digest_message``)."""
    k, p = review.kpis, review.previous_kpis
    title = f"tracewatch weekly quality review {review.week} ({_scope(review)})"
    headline = [f"• {format_value('num_requests', k['num_requests'])} requests "
                f"({format_change('num_requests', p['num_requests'], k['num_requests'])}), "
                f"cost {format_value('cost_usd_total', k['cost_usd_total'])} "
                f"({format_change('cost_usd_total', p['cost_usd_total'], k['cost_usd_total'])}),"
                f" p95 {format_value('latency_p95_ms', k['latency_p95_ms'])}"]
    for metric, row in _comparisons(review).items():
        if row["status"] == "ok" and row["significant"]:
            headline.append(f"• {LABELS[metric]} {format_value(metric, row['value_a'])} → "
                            f"{format_value(metric, row['value_b'])} "
                            f"({verdict(metric, row).strip('*')}, {format_p(row['p_value'])})")
    modes = [f"• {r['name']} ({r['cluster_id']}): {r['movement']}, "
             f"{r['num_traces_previous']:,} → {r['num_traces']:,} traces"
             for r in review.failure_modes.filter(
                 pl.col("movement").is_in(["new", "growing", "shrinking", "gone"])
             ).head(5).iter_rows(named=True)]
    shipped = review.prompt_versions.unique(["service_name", "prompt_version"],
                                           maintain_order=True)
    versions = []
    for r in shipped.iter_rows(named=True):
        line = f"• {r['service_name']} `{r['prompt_version']}`"
        if r["previous_version"]:
            effects = review.prompt_versions.filter(
                (pl.col("service_name") == r["service_name"])
                & (pl.col("prompt_version") == r["prompt_version"]) & pl.col("significant"))
            line += f" vs `{r['previous_version']}`: " + (", ".join(
                f"{LABELS[e['metric']]} {format_change(e['metric'], e['value_a'], e['value_b'])}"
                for e in effects.iter_rows(named=True)) or "no significant difference")
        versions.append(line)
    firing = review.alerts.filter(pl.col("state") == "firing").height
    alerts = ([f"• {review.alerts.height} fired, {firing} still firing"]
              if review.alerts.height else [])
    sections = [("Headline", headline), ("Failure modes that moved", modes),
                ("Prompt versions shipped", versions), ("Alerts", alerts)]
    if report_location:
        sections.append(("Report", [f"• {report_location}"]))
    return title, sections
