"""Which allocator Arrow's C++ code uses in the collector's processes.

Arrow picks its default memory pool when pyarrow is first imported, from the
``ARROW_DEFAULT_MEMORY_POOL`` variable (otherwise mimalloc).  The Parquet reader and writer
allocate from that default whatever pool pyarrow is later told to use, so the choice has to
be made before any collector module imports pyarrow; worker processes inherit it through
their environment.

Why jemalloc (measured on the bench's requests, one pipeline worker, Pss_Anon):
- mimalloc, the default: +40 MB while writing a 12-request group and +30 MB kept after it;
  compacting 40 files of 6,120 spans took +110-128 MB.
- glibc malloc: +16 MB per group, but compaction still +55-68 MB (fragmentation).
- jemalloc: +17 MB per group and compaction +32-37 MB, with the least CPU of the three.
"""

from __future__ import annotations

import os

ARROW_POOL_VARIABLE = "ARROW_DEFAULT_MEMORY_POOL"
ARROW_POOL = "jemalloc"


def choose_arrow_allocator() -> None:
    """Call before pyarrow is imported (an explicit setting in the environment wins)."""
    os.environ.setdefault(ARROW_POOL_VARIABLE, ARROW_POOL)
