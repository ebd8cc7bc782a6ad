"""Packages a collector process must not load (one finder on ``sys.meta_path``).

Imports nothing heavy itself: a pipeline worker installs its guard before anything imports
pyarrow (collector.worker_start).
"""

from __future__ import annotations

import importlib.abc
import sys
from typing import Any


class ImportGuard(importlib.abc.MetaPathFinder):
    """Refuses the import of the given top-level packages with an ImportError, which the
    libraries that load them optionally (pyarrow: pandas, numpy) take as "not installed"."""

    def __init__(self) -> None:
        self.packages: set[str] = set()

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> None:
        if fullname.partition(".")[0] in self.packages:
            raise ImportError(f"{fullname} is not loaded in this tracewatch collector process")
        return None


def keep_out(*packages: str) -> None:
    """From now on, importing any of ``packages`` (or their submodules) raises ImportError."""
    guard = next((finder for finder in sys.meta_path if isinstance(finder, ImportGuard)), None)
    if guard is None:
        guard = ImportGuard()
        sys.meta_path.insert(0, guard)
    guard.packages.update(packages)
