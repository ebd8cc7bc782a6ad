"""Process settings for the collector and its pipeline workers (memory and GC).

They build many short-lived objects per export request (MBs of text) and run for days, so
the allocator and the garbage collector decide much of their memory and CPU.  Measured with
``bench/ingest.py`` and per-worker RSS after a request group.
"""

from __future__ import annotations

import ctypes
import gc
import importlib.abc
import sys
from typing import Any

import pyarrow as pa

class _NoPandas(importlib.abc.MetaPathFinder):
    """pyarrow imports pandas (~70 MB) on the first ``pa.array()`` call, only to check
    whether it was handed a DataFrame; the collector never hands it one."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> None:
        if fullname == "pandas" or fullname.startswith("pandas."):
            raise ImportError("pandas is not loaded in the tracewatch collector")
        return None


def tune_runtime() -> None:
    """Settings for a process that builds many short-lived, acyclic objects per request.

    - Fewer, cheaper garbage collections (a request's spans are freed by reference
      counting): with the default thresholds a collection ran every 700 allocations and
      the older generations were rescanned often (77 -> 60 us per span in a worker);
      ``gc.freeze`` moves what start-up loaded (modules, the spaCy model) out of every scan.
    - No pandas: see ``_NoPandas``.
    - Arrow buffers that pyarrow allocates from jemalloc, like the Parquet code's
      (collector.allocator), also where pyarrow was imported before that choice.
    """
    if not any(isinstance(finder, _NoPandas) for finder in sys.meta_path):
        sys.meta_path.insert(0, _NoPandas())
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    pa.set_memory_pool(_arrow_pool())


_M_ARENA_MAX = -8  # glibc's mallopt parameter


def limit_malloc_arenas(count: int = 2) -> None:
    """For the receiving process: glibc gives each thread that allocates an arena of its
    own (up to 8 per core), and the request threads each kept several MB of freed request
    bodies in theirs (bench/ingest.py, HTTP protobuf: receiver ~130-150 -> ~110 MB of
    anonymous memory).  Not for the pipeline workers: it cost them ~8 % more CPU."""
    if not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL(None).mallopt(_M_ARENA_MAX, count)
    except (OSError, AttributeError):  # not glibc
        pass


def _arrow_pool() -> pa.MemoryPool:
    try:
        return pa.jemalloc_memory_pool()
    except NotImplementedError:  # a pyarrow built without jemalloc
        return pa.system_memory_pool()
