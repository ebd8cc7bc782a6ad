"""Coerce attribute values of unknown type into column values.

Contract: every function takes any Python value that decode can produce (str, bool, int,
float, list, dict, None) and returns the column type or ``None``.  None of them raises.

Edge cases:
- ``bool`` is an ``int`` in Python; a bool is never a token count or a cost.
- Counts accept ints, integral finite floats and decimal strings (``"12"``, ``" 12 "``,
  ``"12.0"``); negatives, NaN, infinities and other strings give ``None`` (never 0).
- Text accepts strings as they are (``""`` counts as absent); lists and dicts become compact
  JSON so that nothing is lost; numbers become their ``str``.
"""

from __future__ import annotations

import math
from typing import Any

import orjson


def to_count(value: Any) -> int | None:
    """A non-negative integer count, or None."""
    if type(value) is int:  # fast path; excludes bool
        return value if value >= 0 else None
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, float):
        if math.isfinite(value) and value >= 0 and value.is_integer():
            return int(value)
        return None
    if isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            return int(text)
        try:
            number = float(text)
        except ValueError:
            return None
        return to_count(number)
    if isinstance(value, int):  # int subclasses
        return int(value) if value >= 0 else None
    return None


def to_money(value: Any) -> float | None:
    """A finite, non-negative amount, or None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) and number >= 0 else None


def to_score(value: Any) -> float | None:
    """A finite number (any sign), or None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def to_label(value: Any) -> str | None:
    """A short identifier-like string (model, provider, ids, versions), or None."""
    if type(value) is str:
        return value if value else None
    if value is None or isinstance(value, (bool, list, dict)):
        return None
    if isinstance(value, (int, float)):
        return str(value)
    return None


def to_text(value: Any) -> str | None:
    """Free text; lists and dicts are kept as compact JSON.  Empty gives None."""
    if type(value) is str:
        return value if value else None
    if value is None:
        return None
    if isinstance(value, (list, dict)):
        return dump_json(value)
    return str(value)


def dump_json(value: Any) -> str:
    """Compact JSON text; values JSON cannot hold become their ``str``."""
    return orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS).decode()


def load_json(value: Any) -> Any:
    """Parse JSON text; a non-string is returned as it is, bad JSON gives None."""
    if not isinstance(value, str):
        return value
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
