"""How the weekly review writes numbers: one formatter per kind of figure, and verdicts.

Counts with thousands separators, rates as percentages with one decimal, latencies in whole
ms, costs in dollars (cents for totals, three significant digits below a cent).  Changes of
rates are in percentage points, others relative.  A change is called better or worse only
when ``analytics.compare`` found it significant.  ``escape`` makes text that came from traces
(failure-mode names, alert causes) literal Markdown, so it cannot inject links or HTML.
"""

from __future__ import annotations

import math
import re
from typing import Any

LABELS = {
    "num_requests": "requests", "cost_usd_total": "cost", "cost_usd_per_request":
    "cost per request", "error_rate": "error rate", "fallback_rate": "fallback rate",
    "grounded_rate": "grounded rate", "groundedness_mean": "mean groundedness",
    "latency_p50_ms": "p50 latency", "latency_p95_ms": "p95 latency",
    "latency_p99_ms": "p99 latency", "total_tokens_per_request": "tokens per request",
    "num_unpriced_llm_calls": "unpriced LLM calls",
}
HIGHER_IS_BETTER = {"grounded_rate", "groundedness_mean"}
RATES = {"error_rate", "fallback_rate", "grounded_rate"}
_ESCAPE = re.compile(r"([\\`*_\[\]<>|#])")


def escape(text: object) -> str:
    """Text from the data as literal Markdown (no emphasis, links, HTML or table breaks)."""
    return _ESCAPE.sub(r"\\\1", str(text)).replace("\n", " ")


def format_value(metric: str, value: Any) -> str:
    """One figure as the review prints it ("–" when unknown).

    >>> format_value("latency_p95_ms", 3005.47), format_value("error_rate", 0.02572)
    ('3,005 ms', '2.6%')
    >>> format_value("cost_usd_total", 15.673), format_value("cost_usd_per_request", 0.000635)
    ('$15.67', '$0.000635')
    >>> format_change("error_rate", 0.0110, 0.0107), format_change("num_requests", 200, 190)
    ('+0.0 pp', '-5.0%')
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if metric in RATES or metric.startswith("share"):
        return f"{value:.1%}"
    if metric.endswith("_ms"):
        return f"{value:,.0f} ms"
    if metric == "cost_usd_total":
        return f"${value:,.2f}"
    if metric.startswith("cost_usd"):
        return format_usd(value)
    if metric == "groundedness_mean":
        return f"{value:.3f}"
    return f"{value:,.0f}"


def format_usd(value: float) -> str:
    """Dollars: cents from $0.01, else three significant digits ($0.000635)."""
    if value == 0:
        return "$0"
    digits = 2 if abs(value) >= 0.01 else max(2, 2 - math.floor(math.log10(abs(value))))
    return f"${value:,.{digits}f}"


def format_change(metric: str, before: Any, after: Any) -> str:
    """``+0.4 pp`` for rates, ``-2.8%`` otherwise; "–" when either side is unknown."""
    if not isinstance(before, (int, float)) or not isinstance(after, (int, float)):
        return "–"
    if metric in RATES:
        return f"{(after - before) * 100 + 0.0:+.1f} pp".replace("-0.0 ", "+0.0 ")
    if metric == "groundedness_mean":
        return f"{after - before:+.3f}".replace("-0.000", "+0.000")
    if before == 0:
        return "new" if after else "0%"
    return f"{(after - before) / abs(before):+.1%}"


def format_p(p_value: float | None) -> str:
    if p_value is None:
        return "–"
    return "p < 0.001" if p_value < 0.001 else f"p = {p_value:.3f}"


def format_interval(metric: str, low: float | None, high: float | None) -> str:
    if low is None or high is None:
        return "–"
    if metric in RATES:
        return f"{low * 100:+.1f} to {high * 100:+.1f} pp"
    if metric.endswith("_ms"):
        return f"{low:+,.0f} to {high:+,.0f} ms"
    if metric.startswith("cost_usd"):
        return f"{format_usd(low)} to {format_usd(high)}".replace("$-", "-$")
    return f"{low:+.3f} to {high:+.3f}"


def verdict(metric: str, row: dict[str, Any] | None) -> str:
    """better / worse / no significant change / insufficient data, from a comparison row."""
    if row is None:
        return "not tested"
    if row["status"] != "ok":
        return "insufficient data"
    if not row["significant"] or not row["difference"]:
        return "no significant change"
    up = row["difference"] > 0
    better = up == (metric in HIGHER_IS_BETTER)
    return "**better**" if better else "**worse**"


def format_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    return "\n".join(lines)
