"""The collector's configuration as its running processes use it: plain, validated values.

``CollectorConfig`` (collector.config, pydantic-settings) reads and validates what the user
set, once, when ``tracewatch collector`` starts; ``CollectorConfig.run_config()`` copies the
result into a ``RunConfig``.  The command then replaces itself (exec, same pid) with
``python -m collector.serve``, which gets the RunConfig as JSON (collector.serve).  So the
process that receives spans for days, and the pipeline workers it spawns, load neither
pydantic, pydantic-settings and YAML nor the command line's modules (measured: 8 MB of
anonymous memory in the receiving process, 3 MB in each worker, and 4 MB of library pages).

Field names and meanings are those of ``CollectorConfig`` (a test keeps the two in step),
except that the redaction settings travel as their validated JSON, or None when redaction
is off: only a worker that redacts needs them, and it validates them again with pydantic.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any


@dataclass(frozen=True, slots=True)
class RunConfig:
    data_dir: Path
    http: str
    grpc: str
    max_request_bytes: int
    max_decompressed_bytes: int
    max_concurrent_requests: int
    body_timeout_s: float
    max_spool_bytes: int
    spool_fsync: bool
    commit_interval_s: float
    max_batch_spans: int
    compact_min_files: int
    vacuum_retention_s: int
    retry_after_s: int
    workers: int
    log_level: str
    # RedactionConfig as JSON, with its own `workers` set to 0 (inside a pipeline worker,
    # redaction runs in that worker: no nested pool); None when redaction is off.
    redaction_json: str | None
    # Bearer token clients must send; empty = no authentication.  A secret: not in repr.
    auth_token: str = field(default="", repr=False)

    @property
    def redaction_enabled(self) -> bool:
        return self.redaction_json is not None

    def to_json(self) -> bytes:
        """For ``collector.serve`` only (it holds the token in clear)."""
        values: dict[str, Any] = asdict(self)
        values["data_dir"] = str(self.data_dir)
        return json.dumps(values).encode()

    @classmethod
    def from_json(cls, data: bytes) -> RunConfig:
        values = json.loads(data)
        names = {each.name for each in fields(cls)}
        if set(values) != names:
            raise ValueError("run configuration fields do not match this version of tracewatch")
        values["data_dir"] = Path(values["data_dir"])
        return cls(**values)
