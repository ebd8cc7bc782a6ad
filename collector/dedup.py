"""The set of span keys already in the store, so that a span is stored once.

Kept by the single writer process: a sorted NumPy array of 64-bit keys (8 bytes a span:
80 MB at 10M spans) plus a small Python set of keys added since the last merge.  Built at
start-up from the ``span_key`` column of the store.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import numpy.typing as npt

_MERGE_AT = 200_000


class SpanKeyIndex:
    def __init__(self, keys: npt.NDArray[np.int64] | None = None) -> None:
        self._sorted: npt.NDArray[np.int64] = (
            np.unique(keys) if keys is not None and len(keys) else np.empty(0, dtype=np.int64)
        )
        self._recent: set[int] = set()

    def __len__(self) -> int:
        return len(self._sorted) + len(self._recent)

    def select_new(self, keys: list[int]) -> list[bool]:
        """For each key, True when it is neither stored nor earlier in ``keys``."""
        if not keys:
            return []
        array = np.fromiter(keys, dtype=np.int64, count=len(keys))
        if len(self._sorted):
            positions = np.searchsorted(self._sorted, array)
            positions[positions == len(self._sorted)] = 0
            stored = self._sorted[positions] == array
        else:
            stored = np.zeros(len(keys), dtype=bool)
        seen: set[int] = set()
        result: list[bool] = []
        recent = self._recent
        for key, in_store in zip(keys, stored.tolist()):
            is_new = not in_store and key not in recent and key not in seen
            if is_new:
                seen.add(key)
            result.append(is_new)
        return result

    def add(self, keys: Iterable[int]) -> None:
        self._recent.update(keys)
        if len(self._recent) >= _MERGE_AT:
            self._merge()

    def _merge(self) -> None:
        recent = np.fromiter(self._recent, dtype=np.int64, count=len(self._recent))
        self._sorted = np.union1d(self._sorted, recent)
        self._recent = set()
