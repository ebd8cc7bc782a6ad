"""The set of span keys already in the store, so that a span is stored once.

Kept by the single writer process as sorted NumPy runs of 64-bit keys (8 bytes a span: 80
MB at 10M spans), built at start-up from the ``span_key`` column of the store.  Each commit
adds one small run; runs of similar size are merged, up to ``RUN_CAP`` keys, and full runs
are never merged again.  So memory never spikes: merging everything into one array (the
former design, ``np.union1d`` every 200,000 keys) took ~50 MB for a moment at 1.5M keys,
and a Python set of the recent keys another ~15 MB.  A lookup searches each run (about
N / RUN_CAP + log2(RUN_CAP / keys per commit) of them).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import numpy.typing as npt

RUN_CAP = 1 << 19  # keys (4 MB): a merge holds at most about three times this for a moment

Keys = npt.NDArray[np.int64]


class SpanKeyIndex:
    def __init__(self, keys: Keys | None = None, run_cap: int = RUN_CAP) -> None:
        """``keys`` (the stored ones) is sorted in place and kept, not copied."""
        self._run_cap = run_cap
        self._runs: list[Keys] = []
        if keys is not None and len(keys):
            stored = keys.astype(np.int64, copy=False)
            if not stored.flags.writeable:  # e.g. a zero-copy view of an Arrow column
                stored = stored.copy()
            stored.sort()
            if len(stored) > 1 and not bool(np.all(stored[1:] != stored[:-1])):
                stored = np.unique(stored)
            # Views of one array: full runs, never merged again.
            self._runs = [stored[i : i + run_cap] for i in range(0, len(stored), run_cap)]

    def __len__(self) -> int:
        return sum(len(run) for run in self._runs)

    @property
    def num_runs(self) -> int:
        return len(self._runs)

    def select_new(self, keys: Keys | Sequence[int]) -> npt.NDArray[np.bool_]:
        """For each key, True when it is neither stored nor earlier in ``keys``."""
        array = np.asarray(keys, dtype=np.int64)
        new = np.zeros(len(array), dtype=bool)
        if not len(array):
            return new
        _, first = np.unique(array, return_index=True)
        new[first] = True
        for run in self._runs:
            positions = np.searchsorted(run, array)
            positions[positions == len(run)] = 0
            new &= run[positions] != array
        return new

    def add(self, keys: Keys | Iterable[int]) -> None:
        """Record keys that ``select_new`` found new (so not in any run)."""
        run = np.unique(keys if isinstance(keys, np.ndarray) else np.fromiter(keys, dtype=np.int64))
        if not len(run):
            return
        self._runs.append(run)
        while len(self._runs) >= 2:
            older, newer = self._runs[-2], self._runs[-1]
            if len(older) > 2 * len(newer) or len(older) + len(newer) > self._run_cap:
                break
            merged = np.concatenate((older, newer))
            merged.sort(kind="stable")  # two sorted runs: a linear merge
            self._runs[-2:] = [merged]
