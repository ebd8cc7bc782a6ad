"""A durable, private, bounded spool of raw export requests awaiting the writer.

Why: redaction is slow (milliseconds per span) and must stay off the request path, yet an
acknowledged export must survive ``kill -9``.  Each accepted request body (decompressed,
still unredacted) is written to its own file, fsynced, and only then acknowledged.  The
writer takes entries in sequence order and deletes each one once its redacted form is
committed; the committed sequence numbers are recorded in the Delta commit itself
(``COMMIT_SPOOL_SEQ_KEY``, as ranges), so on restart those entries are deleted, not replayed.

Privacy: the folder is 0700 and files 0600 (the collector's user only); the spool is bounded
by ``max_bytes`` and refuses (``SpoolFullError`` -> 503 with Retry-After) beyond it.
File names: ``{seq:020d}.{fmt}`` where fmt is ``pb`` or ``json``.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

from collector.decode import PayloadFormat
from collector.errors import RetryableError


class SpoolFullError(RetryableError):
    """The spool holds its maximum; the client should retry later."""


@dataclass(frozen=True, slots=True)
class SpoolEntry:
    seq: int
    fmt: PayloadFormat
    path: Path
    num_bytes: int
    num_spans: int

    def read(self) -> bytes:
        return self.path.read_bytes()


class Spool:
    """Thread-safe spool.  ``append`` from receivers, ``take``/``remove`` from the writer."""

    def __init__(self, directory: Path, max_bytes: int, fsync: bool = True) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.fsync = fsync
        directory.mkdir(parents=True, exist_ok=True)
        os.chmod(directory, 0o700)
        self._lock = threading.Lock()
        self._ready = threading.Condition(self._lock)
        self._entries: dict[int, SpoolEntry] = {}
        self._inflight: set[int] = set()
        self._bytes = 0
        self._spans = 0
        self._next_seq = 1
        self._load_existing()

    def _load_existing(self) -> None:
        for path in self.directory.iterdir():
            stem, _, suffix = path.name.partition(".")
            if path.name.endswith(".tmp"):
                path.unlink(missing_ok=True)  # a write that never completed was never acked
                continue
            if not stem.isdigit() or suffix not in ("pb", "json"):
                continue
            seq = int(stem)
            size = path.stat().st_size
            self._entries[seq] = SpoolEntry(seq, PayloadFormat(suffix), path, size, 0)
            self._bytes += size
            self._next_seq = max(self._next_seq, seq + 1)

    # -- receivers ---------------------------------------------------------------------

    def append(self, fmt: PayloadFormat, body: bytes | bytearray, num_spans: int) -> SpoolEntry:
        """Write one request durably; raises SpoolFullError when over the bound."""
        with self._lock:
            if self._bytes + len(body) > self.max_bytes and self._entries:
                raise SpoolFullError(
                    f"spool full ({self._bytes} of {self.max_bytes} bytes); retry later"
                )
            seq = self._next_seq
            self._next_seq += 1
            self._bytes += len(body)  # reserve before the write, released on failure
        path = self.directory / f"{seq:020d}.{fmt.value}"
        tmp = path.with_name(path.name + ".tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                view = memoryview(body)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
                if self.fsync:
                    os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
            if self.fsync:
                _fsync_directory(self.directory)
        except OSError:
            tmp.unlink(missing_ok=True)
            with self._lock:
                self._bytes -= len(body)
            raise
        entry = SpoolEntry(seq, fmt, path, len(body), num_spans)
        with self._ready:
            self._entries[seq] = entry
            self._spans += num_spans
            self._ready.notify_all()
        return entry

    # -- writer ------------------------------------------------------------------------

    def take(self, max_spans: int, timeout_s: float, max_bytes: int | None = None) -> list[SpoolEntry]:
        """Oldest entries not already taken, up to max_spans / max_bytes (at least one if
        any arrives within timeout_s).  Taken entries stay in the spool (and on disk) until
        ``remove``; ``release`` makes them available again after a failure."""
        with self._ready:
            if len(self._entries) == len(self._inflight):
                self._ready.wait(timeout_s)
            taken: list[SpoolEntry] = []
            total_spans = 0
            total_bytes = 0
            for seq in sorted(self._entries):
                if seq in self._inflight:
                    continue
                entry = self._entries[seq]
                if taken and (
                    total_spans + entry.num_spans > max_spans
                    or (max_bytes is not None and total_bytes + entry.num_bytes > max_bytes)
                ):
                    break
                taken.append(entry)
                total_spans += entry.num_spans
                total_bytes += entry.num_bytes
            self._inflight.update(entry.seq for entry in taken)
            return taken

    def release(self, entries: list[SpoolEntry]) -> None:
        """Entries taken but not committed go back to the front of the queue."""
        with self._ready:
            self._inflight.difference_update(entry.seq for entry in entries)
            self._ready.notify_all()

    def remove(self, entries: list[SpoolEntry]) -> None:
        """Delete entries whose spans are committed."""
        for entry in entries:
            entry.path.unlink(missing_ok=True)
        with self._lock:
            for entry in entries:
                self._inflight.discard(entry.seq)
                if self._entries.pop(entry.seq, None) is not None:
                    self._bytes -= entry.num_bytes
                    self._spans -= entry.num_spans

    def remove_committed(self, committed: set[int]) -> int:
        """Delete entries a commit already made durable (crash between commit and delete)."""
        with self._lock:
            done = [entry for seq, entry in self._entries.items() if seq in committed]
            if committed:
                self._next_seq = max(self._next_seq, max(committed) + 1)
        self.remove(done)
        return len(done)

    def wake(self) -> None:
        with self._ready:
            self._ready.notify_all()

    @property
    def num_bytes(self) -> int:
        return self._bytes

    @property
    def num_entries(self) -> int:
        return len(self._entries)

    @property
    def num_pending(self) -> int:
        """Entries not yet taken by the writer."""
        return len(self._entries) - len(self._inflight)

    @property
    def pending_bytes(self) -> int:
        """Payload bytes of the entries not yet taken by the writer."""
        with self._lock:
            return sum(entry.num_bytes for seq, entry in self._entries.items()
                       if seq not in self._inflight)

    @property
    def num_spans(self) -> int:
        return self._spans


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def format_seq_ranges(seqs: list[int]) -> str:
    """[1, 2, 3, 7] -> '1-3,7' (kept in the Delta commit's metadata)."""
    parts: list[str] = []
    ordered = sorted(seqs)
    index = 0
    while index < len(ordered):
        start = end = ordered[index]
        while index + 1 < len(ordered) and ordered[index + 1] == end + 1:
            index += 1
            end = ordered[index]
        parts.append(str(start) if start == end else f"{start}-{end}")
        index += 1
    return ",".join(parts)


def parse_seq_ranges(text: str) -> set[int]:
    seqs: set[int] = set()
    for part in text.split(","):
        if not part:
            continue
        start, _, end = part.partition("-")
        seqs.update(range(int(start), int(end or start) + 1))
    return seqs
