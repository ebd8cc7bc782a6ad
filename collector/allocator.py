"""Which allocators the native libraries use in the collector's processes.

Both choices are read from the environment when a library loads, so ``choose_allocators``
runs before any collector module imports pyarrow or deltalake; worker processes inherit
them through their environment.  A value already in the environment wins.

Arrow picks its default memory pool from ``ARROW_DEFAULT_MEMORY_POOL`` (otherwise
mimalloc), and the Parquet reader and writer allocate from that default whatever pool
pyarrow is later told to use.  Measured on the bench's requests, one pipeline worker,
Pss_Anon:
- mimalloc, the default: +40 MB while writing a 12-request group and +30 MB kept after it;
  compacting 40 files of 6,120 spans took +110-128 MB.
- glibc malloc: +16 MB per group, but compaction still +55-68 MB (fragmentation).
- jemalloc: +17 MB per group and compaction +32-37 MB, with the least CPU of the three.

deltalake brings its own jemalloc, configured by ``_RJEM_MALLOC_CONF``.  Its defaults
(four arenas per core, freed pages kept 10 s) let the writer's commits grow the receiving
process by ~20 MB over a 60 s burst; one arena and a 1 s decay keep that near zero.  Its
per-thread caches (tcache) held on to more as commits went on: 500 commits with
checkpoints and compactions grew the process by 21 MB with them and by 8 MB without, for
~2 ms more per commit (a commit happens at most once a second).
"""

from __future__ import annotations

import os

ALLOCATOR_SETTINGS = {
    "ARROW_DEFAULT_MEMORY_POOL": "jemalloc",
    "_RJEM_MALLOC_CONF": "narenas:1,tcache:false,dirty_decay_ms:1000,muzzy_decay_ms:0",
}


def choose_allocators() -> None:
    """Call before pyarrow or deltalake is imported."""
    for name, value in ALLOCATOR_SETTINGS.items():
        os.environ.setdefault(name, value)
