"""The slice and time model shared by metrics, comparisons, the app and the alerts.

A *slice* is a set of traces: those whose ``traces.start_time`` lies in ``[since, until)``
(either bound may be open) and whose dimensions match ``Filters``.  Every metric is computed
per trace and then aggregated, so each trace belongs to exactly one group of a cut and one
figure never differs between two screens.

Dimensions (``--by`` and filter keys) and where their value comes from, per trace:

- ``service_name``: ``traces.service_name`` (the root span's service; the earliest span's
  when the root never arrived).
- ``model_name``: ``traces.model_name``, the model of the trace's last successful LLM span.
  A trace's cost and tokens are attributed to that model as a whole (a trace that fell back
  from model A to model B counts under B).  NULL when the trace has no successful LLM call.
- ``provider``: the provider of that same span (last successful LLM span by end time).
- ``prompt_version``: ``traces.prompt_version`` (the latest span that carries one).
- ``attr:<key>``: ``json_extract_string(attributes, '$."<key>"')`` of the **root span**;
  when the root does not carry the key (or never arrived), the value of the **latest LLM
  span** (by end time) that carries it.  Keys may contain letters, digits and ``_ . - : /``.

Times are UTC ``TIMESTAMP``; timezone-aware datetimes are converted to UTC, naive ones are
taken as UTC.  Windows for time series go from one minute to one week (``time_bucket``;
weeks start on Monday).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from analytics.errors import AnalyticsError

BUILTIN_DIMENSIONS: dict[str, str] = {
    "service_name": "t.service_name",
    "model_name": "t.model_name",
    "provider": "l.provider",
    "prompt_version": "t.prompt_version",
}
ATTRIBUTE_PREFIX = "attr:"
_ATTRIBUTE_KEY = re.compile(r"^[A-Za-z0-9_.\-:/]{1,200}$")

MIN_WINDOW = timedelta(minutes=1)
MAX_WINDOW = timedelta(weeks=1)
_DURATION = re.compile(r"^\s*(\d+)\s*(s|sec|m|min|minute|h|hour|d|day|w|week)s?\s*$", re.IGNORECASE)
_UNIT_S = {"s": 1, "sec": 1, "m": 60, "min": 60, "minute": 60, "h": 3600, "hour": 3600,
           "d": 86400, "day": 86400, "w": 604800, "week": 604800}
_NAMED_WINDOWS = {"minute": "1m", "hour": "1h", "day": "1d", "week": "1w"}


@dataclass(frozen=True, slots=True)
class Filters:
    """Which traces a slice keeps: for each dimension, the accepted values (any of them).

    ``dimensions`` maps a dimension name (see module docstring) to accepted values; an
    accepted value ``None`` matches traces where the dimension is NULL.  Different
    dimensions are combined with AND.

    >>> Filters.of(prompt_version="v3").dimensions
    (('prompt_version', ('v3',)),)
    """

    dimensions: tuple[tuple[str, tuple[str | None, ...]], ...] = field(default=())

    @classmethod
    def of(cls, **values: str | None | Sequence[str | None]) -> Filters:
        """Filters from keyword arguments (``attr:`` keys via ``from_mapping``)."""
        return cls.from_mapping(values)

    @classmethod
    def from_mapping(cls, values: Mapping[str, str | None | Sequence[str | None]]) -> Filters:
        items: list[tuple[str, tuple[str | None, ...]]] = []
        for dim, accepted in sorted(values.items()):
            dimension_sql(dim)  # validates
            if accepted is None or isinstance(accepted, str):
                items.append((dim, (accepted,)))
            else:
                items.append((dim, tuple(accepted)))
        return cls(tuple(items))

    def with_(self, dim: str, *accepted: str | None) -> Filters:
        """A copy that also requires ``dim`` to be one of ``accepted``."""
        merged = dict(self.dimensions)
        merged[dim] = tuple(accepted)
        return Filters.from_mapping(merged)


NO_FILTERS = Filters()


def dimension_sql(dim: str) -> str:
    """The SQL expression of a dimension over the metrics base query (aliases t, l, r)."""
    if dim in BUILTIN_DIMENSIONS:
        return BUILTIN_DIMENSIONS[dim]
    if dim.startswith(ATTRIBUTE_PREFIX):
        key = dim[len(ATTRIBUTE_PREFIX):]
        if not _ATTRIBUTE_KEY.match(key):
            raise AnalyticsError(
                f"bad attribute key in {dim!r}: use letters, digits and _ . - : / only"
            )
        column = quote_identifier(dim)
        return f"coalesce(r.{column}, l.{column})"
    known = ", ".join([*BUILTIN_DIMENSIONS, "attr:<key>"])
    raise AnalyticsError(f"unknown dimension {dim!r}: expected one of {known}")


def attribute_keys(dims: Iterable[str]) -> list[str]:
    """The distinct ``attr:`` dimensions among ``dims`` (validated), in order."""
    keys = [d for d in dims if d.startswith(ATTRIBUTE_PREFIX)]
    for key in keys:
        dimension_sql(key)
    return list(dict.fromkeys(keys))


def attribute_value_sql(dim: str) -> str:
    """``json_extract_string`` of an ``attr:<key>`` dimension over a span's attributes."""
    key = dim[len(ATTRIBUTE_PREFIX):]
    return f"json_extract_string(attributes, '$.\"{key}\"')"


def quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def column_name(dim: str) -> str:
    """Output column name of a dimension: ``attr:tenant`` -> ``attr:tenant`` (kept as is)."""
    return dim


def where_sql(since: datetime | None, until: datetime | None,
              filters: Filters) -> tuple[str, list[object]]:
    """A WHERE clause (without the keyword) and its positional parameters."""
    clauses: list[str] = []
    params: list[object] = []
    if since is not None:
        clauses.append("t.start_time >= ?")
        params.append(to_utc_naive(since))
    if until is not None:
        clauses.append("t.start_time < ?")
        params.append(to_utc_naive(until))
    if since is not None and until is not None and to_utc_naive(since) >= to_utc_naive(until):
        raise AnalyticsError("--since must be before --until")
    for dim, accepted in filters.dimensions:
        expr = dimension_sql(dim)
        values = [v for v in accepted if v is not None]
        parts = []
        if values:
            parts.append(f"{expr} IN ({', '.join('?' for _ in values)})")
            params.extend(values)
        if len(values) < len(accepted):
            parts.append(f"{expr} IS NULL")
        clauses.append("(" + " OR ".join(parts or ["false"]) + ")")
    return (" AND ".join(clauses) or "true"), params


def to_utc_naive(moment: datetime) -> datetime:
    """A naive UTC datetime (the store's TIMESTAMP); aware datetimes are converted."""
    if moment.tzinfo is not None:
        return moment.astimezone(timezone.utc).replace(tzinfo=None)
    return moment


def parse_duration(text: str) -> timedelta:
    """``90s``, ``5m``, ``1h``, ``7d``, ``2w`` (also ``hour``, ``days``...) as a timedelta.

    >>> parse_duration("15m")
    datetime.timedelta(seconds=900)
    """
    match = _DURATION.match(text)
    if not match:
        raise AnalyticsError(f"bad duration {text!r}: expected e.g. 30s, 5m, 1h, 7d, 1w")
    return timedelta(seconds=int(match.group(1)) * _UNIT_S[match.group(2).lower()])


def parse_window(text: str) -> timedelta:
    """A time-series window between one minute and one week (``1m`` .. ``1w``, ``hour``...)."""
    window = parse_duration(_NAMED_WINDOWS.get(text.strip().lower(), text))
    if not MIN_WINDOW <= window <= MAX_WINDOW:
        raise AnalyticsError(f"window {text!r} is out of range: use 1m to 1w")
    return window


def parse_time(text: str, now: datetime | None = None) -> datetime:
    """An ISO-8601 time (UTC if no offset), ``now``, or a duration ago (``24h`` = 24 h ago).

    Returns a naive UTC datetime.
    """
    now = to_utc_naive(now or datetime.now(timezone.utc))
    stripped = text.strip()
    if stripped.lower() == "now":
        return now
    if _DURATION.match(stripped):
        return now - parse_duration(stripped)
    try:
        parsed = datetime.fromisoformat(stripped.replace("Z", "+00:00"))
    except ValueError:
        raise AnalyticsError(
            f"bad time {text!r}: expected ISO-8601 (2025-01-31T14:05Z), 'now' or a duration ago (24h)"
        ) from None
    return to_utc_naive(parsed)
