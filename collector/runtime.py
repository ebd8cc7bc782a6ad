"""Process settings for the collector and its pipeline workers (memory and GC).

They build many short-lived objects per export request (MBs of text) and run for days, so
the allocator and the garbage collector decide much of their memory and CPU.  Measured with
``bench/ingest.py`` and per-worker RSS after a request group.
"""

from __future__ import annotations

import ctypes
import gc
import sys

import pyarrow as pa

from collector.import_guard import keep_out


def tune_runtime() -> None:
    """Settings for a process that builds many short-lived, acyclic objects per request.

    - Fewer, cheaper garbage collections (a request's spans are freed by reference
      counting): with the default thresholds a collection ran every 700 allocations and
      the older generations were rescanned often (77 -> 60 us per span in a worker);
      ``gc.freeze`` moves what start-up loaded (modules, the spaCy model) out of every scan.
    - No pandas: pyarrow imports it (~70 MB) on the first ``pa.array()`` call, only to
      check whether it was handed a DataFrame; the collector never hands it one.
    - Arrow buffers that pyarrow allocates from jemalloc, like the Parquet code's
      (collector.allocator), also where pyarrow was imported before that choice.
    """
    keep_out("pandas")
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    pa.set_memory_pool(_arrow_pool())


_M_ARENA_MAX = -8  # glibc's mallopt parameters
_M_MMAP_THRESHOLD = -3


def tune_receiver_malloc(arenas: int = 2, mmap_threshold: int = 1 << 20) -> None:
    """glibc malloc settings for the receiving process (bench/ingest.py, HTTP protobuf).

    - At most ``arenas`` arenas: glibc gives each thread that allocates an arena of its own
      (up to 8 per core), and the request threads each kept several MB of freed request
      bodies in theirs (receiver ~130-150 -> ~110 MB of anonymous memory).
    - Blocks from ``mmap_threshold`` up (request bodies, their parse) are mapped and
      returned when freed.  By default glibc raises that threshold to the largest block
      freed so far, so 2.6 MB bodies came from the heap and left it fragmented (receiver
      peak -8 MB, ~+2 us of CPU per span).
    Not for the pipeline workers: fewer arenas cost them ~8 % more CPU, and the threshold
    did not lower their peak.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        mallopt = ctypes.CDLL(None).mallopt
        mallopt(_M_ARENA_MAX, arenas)
        mallopt(_M_MMAP_THRESHOLD, mmap_threshold)
    except (OSError, AttributeError):  # not glibc
        pass


def release_free_memory() -> None:
    """Hand the receiving process's free heap memory back to the OS (glibc malloc_trim).

    Called when requests stop coming (the writer has nothing in flight): a burst left
    ~20 MB of freed request bodies and parses in glibc's arenas, kept as the process's own
    until reused (bench/ingest.py, gRPC phase: 95 MB anonymous after the burst without it,
    73-76 MB with it), beside the compaction that follows a burst.  Not during load: then
    the memory is reused at once, and trimming after every commit did not lower the peak.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def _arrow_pool() -> pa.MemoryPool:
    try:
        return pa.jemalloc_memory_pool()
    except NotImplementedError:  # a pyarrow built without jemalloc
        return pa.system_memory_pool()
