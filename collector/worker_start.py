"""The first code a pipeline worker process runs (its pool initializer).

It decides what the process may load before collector.workers imports pyarrow.  With
redaction off a worker decodes, normalises and writes Parquet: pyarrow would still load
numpy, only because it is installed (+8.5 MB of anonymous memory a process), and nothing
there needs it.  With redaction on, spaCy needs numpy.  pydantic (+8 MB) is kept out by
the workers' imports themselves: it loads only to validate a redaction configuration.
"""

from __future__ import annotations

import os
import threading
import time

from collector.import_guard import keep_out


def start_worker(data_dir: str, redaction_json: str | None) -> None:
    """``redaction_json``: the collector's RedactionConfig as JSON, None when redaction is
    off (RunConfig.redaction_json)."""
    _exit_with_parent(os.getppid())
    keep_out("pandas", *(() if redaction_json is not None else ("numpy",)))
    from collector.workers import init_worker

    init_worker(data_dir, redaction_json)


def _exit_with_parent(parent_pid: int) -> None:
    """Exit when the collector is gone (kill -9, the OOM killer): a worker blocked reading
    its task queue would otherwise stay idle forever with its memory (~200 MB with the
    spaCy model), and every restart of the collector would leave two more."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="tracewatch-parent-watch", daemon=True).start()
